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
import pyarrow as pa
from rank_bm25 import BM25Okapi

from longlamp_tasks import Task
from retrieval.base import Ranking, Retriever, item_batches, query_and_corpus, rank_by_scores
from retrieval.bm25_kernel import bm25_okapi_batch
from retrieval.corpus_bytes import CorpusBytes

K1 = 1.5
B = 0.75
EPSILON = 0.25
BATCH_ITEMS = 8_192  # profile items scored per kernel call from Python rows: bounded memory for the encoded text


class BM25Retriever(Retriever):
    """The official BM25 baseline (rank_bm25.BM25Okapi per example), compiled; Arrow chunks are read in place."""

    name = "bm25"
    parallel = "threads"  # the kernel runs without the GIL

    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        pairs = [query_and_corpus(task, example) for example in examples]
        rankings = []
        for start, stop in item_batches([len(corpus) for _, corpus in pairs], len(pairs), BATCH_ITEMS):
            queries, corpora = zip(*pairs[start:stop])
            rankings += _rankings(CorpusBytes.from_strings(queries, corpora))
        return rankings

    def rank_table(self, task: Task, table: pa.Table) -> list[Ranking]:
        corpus = CorpusBytes.from_arrow(task, table)
        return super().rank_table(task, table) if corpus is None else _rankings(corpus)


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
    return _batch_scores(CorpusBytes.from_strings([query], [documents]))


def _batch_scores(corpus: CorpusBytes) -> np.ndarray:
    """The scores of every example's profile, one flat array in item order."""
    profile_sizes = np.diff(corpus.item_offsets)
    largest = int(profile_sizes.max(initial=0))
    return bm25_okapi_batch(
        corpus.data,
        corpus.fields,
        corpus.segment_starts,
        corpus.segment_ends,
        corpus.item_offsets,
        corpus.query_starts,
        corpus.query_ends,
        _log_half(1 << largest.bit_length()),
        K1,
        B,
        EPSILON,
    )


def _rankings(corpus: CorpusBytes) -> list[Ranking]:
    scores, offsets = _batch_scores(corpus), corpus.item_offsets
    return [rank_by_scores(scores[start:stop]) for start, stop in zip(offsets[:-1], offsets[1:])]


@lru_cache(maxsize=None)
def _log_half(size: int) -> np.ndarray:
    """math.log(x + 0.5) for x in 0..size (rank_bm25's idf is log(N - n + 0.5) - log(n + 0.5), with math.log)."""
    logs = np.array([math.log(x + 0.5) for x in range(size + 1)])
    logs.setflags(write=False)
    return logs
