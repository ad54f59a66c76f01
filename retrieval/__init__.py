"""Profile retrieval for LongLaMP: rank a user's profile items for an example's query.

    from retrieval import get_retriever, top_k_items, rank_dataset
    items = top_k_items(task, example, k=4, retriever="bm25")          # on the fly
    rank_dataset(dataset, task, "bm25", "ranked.parquet", num_proc=2)  # once, then is_ranked=True

See docs/retrieval.md for the retrievers, the ranked data format and how each matches the official code.
"""

from retrieval.base import Ranking, Retriever, query_and_corpus
from retrieval.ranking import RANKED_BY_COLUMN, SCORES_COLUMN, rank_dataset
from retrieval.registry import RETRIEVERS, get_retriever, resolve_task, top_k_items

__all__ = [
    "RANKED_BY_COLUMN",
    "RETRIEVERS",
    "SCORES_COLUMN",
    "Ranking",
    "Retriever",
    "get_retriever",
    "query_and_corpus",
    "rank_dataset",
    "resolve_task",
    "top_k_items",
]
