"""What a retriever is: it ranks each example's whole profile, and says how it was configured.

Every retriever reads an example's query and corpus the same way, through `query_and_corpus`, which takes
both from the task table (`longlamp_tasks.Task.query` and `Task.corpus_text`), so that on-the-fly prompts
and pre-ranked data can never disagree about what was retrieved.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from longlamp_tasks import Task


@dataclass(frozen=True)
class Ranking:
    """One example's profile, ranked.

    order: positions of the profile items, most relevant first (a permutation of range(len(profile))).
    scores: scores[i] is the score of profile[order[i]]; None for retrievers that do not score (recency,
    random).
    """

    order: np.ndarray
    scores: np.ndarray | None = None


class Retriever(ABC):
    """Ranks the profiles of examples for a task.

    name: the name `get_retriever` knows the retriever by.
    parallel: how `rank_dataset` spreads chunks over its workers: "processes" (Python work, which holds the
    GIL), "threads" (work that releases the GIL: no process start-up, no copies), or None for a retriever that
    holds a model on an accelerator (it batches across the examples of a chunk instead).
    """

    name: str
    parallel: str | None = "processes"

    @abstractmethod
    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        """One Ranking per example, in the order of the examples."""

    def rank_table(self, task: Task, table: pa.Table) -> list[Ranking]:
        """One Ranking per row of an Arrow table with the columns `input`, `profile` and, when present, `id`.

        This default reads the rows into Python; a retriever that can read Arrow in place overrides it.
        """
        columns = [column for column in ("id", "input", "profile") if column in table.column_names]
        return self.rank(task, table.select(columns).to_pylist())

    @property
    def signature(self) -> str:
        """The name and the options that change results; stored with ranked data and checked on resume."""
        options = self.result_options()
        if not options:
            return self.name
        return f"{self.name}({', '.join(f'{key}={value}' for key, value in options.items())})"

    def result_options(self) -> dict[str, object]:
        """The options that change the ranking (not batch sizes or devices)."""
        return {}


def item_batches(profile_sizes: Sequence[int], max_rows: int, max_items: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges of examples, each of at most max_rows examples and, unless one example
    alone holds more, max_items profile items: batches of bounded memory and work."""
    batches, start, items = [], 0, 0
    for row, size in enumerate(profile_sizes):
        if row > start and (row - start == max_rows or items + size > max_items):
            batches.append((start, row))
            start, items = row, 0
        items += size
    if len(profile_sizes) > start:
        batches.append((start, len(profile_sizes)))
    return batches


def rank_by_scores(scores: np.ndarray) -> Ranking:
    """Highest score first, ties in the order `rank_bm25.BM25.get_top_n` gives (`np.argsort(...)[::-1]`)."""
    order = np.argsort(scores)[::-1]
    return Ranking(order=order, scores=scores[order])


def describe(example: Mapping) -> str:
    """How error messages name an example."""
    return f"example {example['id']!r}" if "id" in example else "example (no 'id')"


def profile_of(example: Mapping) -> list:
    """The example's profile, checked: a list of items that are mappings."""
    profile = example.get("profile")
    if not isinstance(profile, Sequence) or isinstance(profile, str):
        raise ValueError(f"{describe(example)}: 'profile' must be a list of items, got {type(profile).__name__}")
    for position, item in enumerate(profile):
        if not isinstance(item, Mapping):
            raise ValueError(
                f"{describe(example)}: profile item {position} must be a mapping of fields, got {type(item).__name__}"
            )
    return list(profile)


def query_and_corpus(task: Task, example: Mapping) -> tuple[str, list[str]]:
    """The retrieval query of the example and the corpus text of each profile item, as the task defines them."""
    task_input = example.get("input")
    if not isinstance(task_input, str):
        raise ValueError(f"{describe(example)}: 'input' must be a string, got {type(task_input).__name__}")
    return task.query(task_input), [task.corpus_text(item) for item in profile_of(example)]
