"""Retrievers that do not read the text: recency, random and none.

Recency follows the official rule, "the last items, newest first": where the task has a date field
(abstract_generation's `year`) items are sorted by it, oldest to newest, with a stable sort (items of the
same year keep their profile order; items without a date count as older than any dated item), and the
ranking is that order reversed. Without a date field the profile order is the time order, so the ranking
is the profile reversed.

Random is seeded per example (the seed and the example's `id`, or its `input` when it has no id), so the
same example gets the same draw in every run, worker process and chunk. It ranks by a random permutation,
that is without replacement; the official baseline draws `random.choices(profile, k)`, with replacement and
from Python's unseeded global generator, which no ranked file could store and no run could reproduce.

None turns personalisation off: it selects no item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from longlamp_tasks import Task
from retrieval.base import Ranking, Retriever, describe, profile_of


class RecencyRetriever(Retriever):
    """Newest first: by the task's date field when it has one, by profile position otherwise."""

    name = "recency"

    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        return [Ranking(order=_newest_first(task, example)) for example in examples]


class RandomRetriever(Retriever):
    """A random permutation of the profile, the same for an example in every run with the same seed."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def result_options(self) -> dict[str, object]:
        return {"seed": self.seed}

    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        rankings = []
        for example in examples:
            key = example.get("id", example.get("input"))
            digest = int.from_bytes(hashlib.sha256(str(key).encode("utf-8", "surrogatepass")).digest()[:8], "little")
            generator = np.random.default_rng([self.seed, digest])
            rankings.append(Ranking(order=generator.permutation(len(profile_of(example)))))
        return rankings


class NoRetriever(Retriever):
    """No personalisation: no profile item is selected (the prompt is the task input alone)."""

    name = "none"

    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        return [Ranking(order=np.zeros(0, dtype=np.int64)) for _ in examples]


def _newest_first(task: Task, example: Mapping) -> np.ndarray:
    """Profile positions, newest item first."""
    profile = profile_of(example)
    if task.date_field is None:
        return np.arange(len(profile))[::-1]
    dates = []
    for position, item in enumerate(profile):
        date = item.get(task.date_field)
        if date is not None and not isinstance(date, (int, np.integer)):
            where = f"{describe(example)}: profile item {position}"
            raise ValueError(f"{where} has {task.date_field}={date!r}; expected an integer or None")
        dates.append((date is not None, date or 0))
    oldest_first = sorted(range(len(profile)), key=dates.__getitem__)
    return np.array(oldest_first[::-1], dtype=np.int64)
