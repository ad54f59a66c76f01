"""BM25 over one user's profile, exactly as the official baselines compute it with `rank_bm25.BM25Okapi`.

The official code builds `BM25Okapi([text.split() for text in corpus])` for every example and ranks with
`get_top_n(query.split(), ...)`: whitespace tokens, k1=1.5, b=0.75, and terms that occur in more than half
of the profile get `epsilon * average idf` (epsilon=0.25) instead of their negative idf. `bm25_okapi_scores`
computes the same numbers with array operations: the same floating-point operations in the same order, so
the scores are bit for bit those of rank_bm25 (the average idf is summed term by term in first-appearance
order, as rank_bm25's loop does) and ranking them the way `get_top_n` does gives the same order, ties
included. Where rank_bm25 raises ZeroDivisionError (an empty profile; a profile with no token at all),
the profile gets all-zero scores instead (no items for an empty profile).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from rank_bm25 import BM25Okapi

from longlamp_tasks import Task
from retrieval.base import Ranking, Retriever, query_and_corpus, rank_by_scores
from retrieval.whitespace_terms import tokenize

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
    """`BM25Okapi([d.split() for d in documents]).get_scores(query.split())`, bit for bit, with fewer steps."""
    num_docs = len(documents)
    stream = tokenize([*documents, query])
    doc_lengths = stream.lengths[:num_docs]
    total_length = int(doc_lengths.sum())
    if total_length == 0:
        return np.zeros(num_docs)
    doc_terms, query_terms = stream.term[:total_length], stream.term[total_length:]
    num_terms = int(doc_terms.max()) + 1  # profile terms come first, so query-only terms get higher ids

    # Distinct (document, term) pairs: their count per term is the document frequency, their size the tf.
    pairs, pair_keys = pd.factorize(stream.text[:total_length] * num_terms + doc_terms)
    pair_tf = np.bincount(pairs)
    pair_docs, pair_terms = np.divmod(pair_keys, num_terms)
    idf = _idf_by_document_frequency(num_docs)[np.bincount(pair_terms, minlength=num_terms)]
    # rank_bm25 adds the idfs one by one in first-appearance order; cumsum adds in the same order.
    average_idf = float(np.cumsum(idf)[-1]) / num_terms
    idf[idf < 0] = EPSILON * average_idf

    # The query's terms that occur in the profile with a non-zero weight; the others add exactly 0.0.
    weights = idf[query_terms[query_terms < num_terms]]
    scoring = query_terms[query_terms < num_terms][weights != 0]
    if len(scoring) == 0:
        return np.zeros(num_docs)
    distinct, rows = np.unique(scoring, return_inverse=True)
    row_of_term = np.full(num_terms, -1)
    row_of_term[distinct] = np.arange(len(distinct))
    in_query = row_of_term[pair_terms] >= 0
    tf = np.zeros((len(distinct), num_docs), dtype=np.int64)
    tf[row_of_term[pair_terms[in_query]], pair_docs[in_query]] = pair_tf[in_query]

    # rank_bm25: score += idf * (q_freq * (k1 + 1) / (q_freq + k1 * (1 - b + b * doc_len / avgdl))), once per
    # query token in query order; the cumulative sum below adds the same terms in the same order.
    avgdl = total_length / num_docs
    contributions = idf[distinct][:, None] * (tf * (K1 + 1) / (tf + K1 * (1 - B + B * doc_lengths / avgdl)))
    steps = np.zeros((len(scoring) + 1, num_docs))
    steps[1:] = contributions[rows]
    return np.cumsum(steps, axis=0)[-1]


@lru_cache(maxsize=4096)
def _idf_by_document_frequency(num_docs: int) -> np.ndarray:
    """rank_bm25's idf (before the epsilon floor) for every document frequency 0..num_docs, with math.log."""
    idf = np.array([math.log(num_docs - freq + 0.5) - math.log(freq + 0.5) for freq in range(num_docs + 1)])
    idf.setflags(write=False)
    return idf
