"""BM25 over one user's profile, exactly as the official baselines compute it with `rank_bm25.BM25Okapi`.

The official code builds `BM25Okapi([text.split() for text in corpus])` for every example and ranks with
`get_top_n(query.split(), ...)`: whitespace tokens, k1=1.5, b=0.75, and terms that occur in more than half
of the profile get `epsilon * average idf` (epsilon=0.25) instead of their negative idf. `bm25_okapi_scores`
computes the same numbers in compiled code (retrieval/bm25_kernel.py): the same floating-point operations in
the same order, so the scores are bit for bit those of rank_bm25 (the average idf is summed term by term in
first-appearance order, as rank_bm25's loop does) and ranking them the way `get_top_n` does gives the same
order, ties included. Where rank_bm25 raises ZeroDivisionError (an empty profile; a profile with no token at all),
the profile gets all-zero scores instead (no items for an empty profile).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
from rank_bm25 import BM25Okapi

from longlamp_tasks import Task
from retrieval.base import Ranking, Retriever, query_and_corpus, rank_by_scores
from retrieval.bm25_kernel import bm25_okapi_kernel

K1 = 1.5
B = 0.75
EPSILON = 0.25


class BM25Retriever(Retriever):
    """The official BM25 baseline (rank_bm25.BM25Okapi per example), computed with array operations."""

    name = "bm25"

    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        return [rank_by_scores(bm25_okapi_scores(*query_and_corpus(task, example))) for example in examples]


class BM25ReferenceRetriever(Retriever):
    """rank_bm25.BM25Okapi built for every example, as the official code does: the oracle for BM25Retriever."""

    name = "bm25_reference"

    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        rankings = []
        for example in examples:
            query, corpus = query_and_corpus(task, example)
            tokenized = [text.split() for text in corpus]
            if any(tokenized):
                scores = BM25Okapi(tokenized).get_scores(query.split())
            else:
                scores = np.zeros(len(corpus))
            rankings.append(rank_by_scores(scores))
        return rankings


def bm25_okapi_scores(query: str, documents: Sequence[str]) -> np.ndarray:
    """`BM25Okapi([d.split() for d in documents]).get_scores(query.split())`, bit for bit, compiled."""
    if not documents:
        return np.zeros(0)
    encoded = [text.encode("utf-8", "surrogatepass") for text in (*documents, query)]
    text_starts = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(text) for text in encoded], out=text_starts[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return bm25_okapi_kernel(data, text_starts, _idf_by_document_frequency(len(documents)), K1, B, EPSILON)


@lru_cache(maxsize=4096)
def _idf_by_document_frequency(num_docs: int) -> np.ndarray:
    """rank_bm25's idf (before the epsilon floor) for every document frequency 0..num_docs, with math.log."""
    idf = np.array([math.log(num_docs - freq + 0.5) - math.log(freq + 0.5) for freq in range(num_docs + 1)])
    idf.setflags(write=False)
    return idf
