"""Retrievers and tasks by name, and the top-k profile items that go into a prompt."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from functools import cache

from longlamp_tasks import TASKS, Task, parse_config_name
from retrieval.base import Retriever, profile_of

# name -> "module:class"; imported on first use, so that BM25 does not pay for importing torch and faiss.
RETRIEVERS = {
    "bm25": "retrieval.bm25:BM25Retriever",
    "bm25_reference": "retrieval.bm25:BM25ReferenceRetriever",
    "contriever": "retrieval.dense:DenseRetriever",
    "recency": "retrieval.simple:RecencyRetriever",
    "random": "retrieval.simple:RandomRetriever",
    "none": "retrieval.simple:NoRetriever",
}


def get_retriever(name: str, **options) -> Retriever:
    """A retriever by name: bm25, bm25_reference, contriever, recency, random or none (see docs/retrieval.md).

    contriever takes model_name, batch_size, device, cache_dir and dtype; random takes seed.
    """
    if name not in RETRIEVERS:
        raise ValueError(f"unknown retriever {name!r}; expected one of: {', '.join(RETRIEVERS)}")
    module_name, class_name = RETRIEVERS[name].split(":")
    retriever_class = getattr(importlib.import_module(module_name), class_name)
    accepted = [parameter for parameter in inspect.signature(retriever_class).parameters]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise ValueError(f"retriever {name!r} does not take {', '.join(unknown)}; it takes: {takes}")
    return retriever_class(**options)


def resolve_task(task: Task | str) -> Task:
    """A Task, given itself, its name ("product_review") or a config name ("product_review_temporal")."""
    if isinstance(task, Task):
        return task
    if not isinstance(task, str):
        raise ValueError(f"task must be a longlamp_tasks.Task or a task name, got {type(task).__name__}")
    return TASKS[task] if task in TASKS else parse_config_name(task)[0]


def resolve_retriever(retriever: Retriever | str) -> Retriever:
    """A Retriever, given itself or a name (names get default options and are built once per process)."""
    if isinstance(retriever, Retriever):
        return retriever
    if not isinstance(retriever, str):
        raise ValueError(f"retriever must be a Retriever or a retriever name, got {type(retriever).__name__}")
    return _default_retriever(retriever)


@cache
def _default_retriever(name: str) -> Retriever:
    return get_retriever(name)


def top_k_items(
    task: Task | str, example: Mapping, k: int, retriever: Retriever | str | None = None, is_ranked: bool = False
) -> list[dict]:
    """The k profile items of the example that go into its prompt, in prompt order (most relevant first).

    With is_ranked=True the profile is already ranked (see rank_dataset) and its first k items are taken
    without retrieving; a retriever given alongside must be the one the data was ranked with. Otherwise the
    retriever ranks the profile now. k larger than the profile gives the whole ranked profile; an empty
    profile or the "none" retriever gives [].
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    task = resolve_task(task)
    profile = profile_of(example)
    if is_ranked:
        if retriever is not None:
            _check_ranked_by(example, retriever)
        return profile[:k]
    if retriever is None:
        raise ValueError(
            "top_k_items needs a retriever (a name such as 'bm25', or 'none' for no profile) or is_ranked=True"
        )
    ranking = resolve_retriever(retriever).rank(task, [example])[0]
    return [profile[position] for position in ranking.order[:k]]


def _check_ranked_by(example: Mapping, retriever: Retriever | str) -> None:
    """Refuse data ranked by one retriever when the caller asked for another."""
    ranked_by = example.get("ranked_by")
    wanted = retriever if isinstance(retriever, str) else retriever.name
    if ranked_by is not None and ranked_by.split("(")[0] != wanted:
        raise ValueError(f"the example was ranked with {ranked_by!r}, not with the requested retriever {wanted!r}")
