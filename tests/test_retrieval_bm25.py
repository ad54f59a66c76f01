"""BM25 parity: the array implementation against rank_bm25.BM25Okapi, bit for bit, ties included."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from longlamp_tasks import TASKS
from retrieval import get_retriever
from retrieval.bm25 import bm25_okapi_scores
from retrieval.bm25_kernel import _ASCII_SPACE, _term_ids, _tokens

ALL_SPACES = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
# Few distinct words (many ties and terms in most documents, so negative idfs and the epsilon floor),
# non-ASCII letters, tokens longer than 8 bytes, and a lone surrogate as JSON data can hold.
WORDS = ["the", "a", "of", "model", "data", "Café", "naïve", "日本語", "😀", "x" * 9, "y" * 23, "\ud800", "the,"]


def split_ids(texts):
    """The reference: str.split() and term ids by first appearance."""
    ids = {}
    return [ids.setdefault(token, len(ids)) for text in texts for token in text.split()]


def random_text(rng: random.Random, words: list[str], max_tokens: int) -> str:
    tokens = rng.choices(words, k=rng.randint(0, max_tokens))
    return "".join(token + rng.choice([" ", " ", " ", "  ", "\n", "\t", *ALL_SPACES]) for token in tokens)


def kernel_terms(texts, hashes=None):
    """The kernel's tokens of `texts`: (term id of each token, text of each token)."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    text_starts = np.concatenate([[0], np.cumsum([len(text) for text in encoded])]).astype(np.int64)
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    starts, ends, text_of, token_hashes = _tokens(data, text_starts)
    hashes = token_hashes if hashes is None else hashes(token_hashes)
    ids, _ = _term_ids(data, starts, ends, hashes, len(starts))
    return ids.tolist(), text_of.tolist()


def test_ascii_spaces_are_those_of_str_split():
    assert np.flatnonzero(_ASCII_SPACE).tolist() == [code for code in range(128) if chr(code).isspace()]


def test_tokens_match_str_split_on_every_kind_of_whitespace():
    rng = random.Random(0)
    alphabet = [*ALL_SPACES, "a", "b", "é", "€", "😀", "\ud800", "\x00", "\x1c", "q" * 8, "r" * 17]
    for _ in range(2000):
        texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 14))) for _ in range(rng.randint(1, 6))]
        ids, text_of = kernel_terms(texts)
        assert ids == split_ids(texts), texts
        assert text_of == [i for i, text in enumerate(texts) for _ in text.split()], texts


def test_terms_stay_exact_when_every_hash_collides():
    """Give every token the same hash: grouping compares bytes, so the ids must still be exact."""
    texts = ["abcdefghij abcdefghik a", "short abcdefghij abcdefghijklmnopq a b", "b ab ba"]
    assert kernel_terms(texts, hashes=np.zeros_like)[0] == split_ids(texts)


def reference_scores(query: str, documents: list[str]) -> np.ndarray:
    return BM25Okapi([document.split() for document in documents]).get_scores(query.split())


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 16, 17, 40, 120, 121])
def test_scores_are_bit_identical_on_small_and_user_sized_profiles(size):
    rng = random.Random(size)
    for _ in range(30):
        documents = [random_text(rng, WORDS, 12) for _ in range(size)]
        for copy in range(size // 3):  # duplicated items: exactly equal scores
            documents[-1 - copy] = documents[copy]
        if not any(document.split() for document in documents):
            continue
        query = random_text(rng, WORDS + ["absent", "the", "the"], 10)
        expected, ours = reference_scores(query, documents), bm25_okapi_scores(query, documents)
        assert ours.tobytes() == expected.tobytes(), (documents, query)


@pytest.mark.parametrize("size", [1000, 2500])
def test_scores_are_bit_identical_on_temporal_sized_profiles(size):
    rng = random.Random(size)
    vocabulary = [f"w{i}" for i in range(3000)] + WORDS
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    documents = [" ".join(rng.choices(vocabulary, weights, k=rng.randint(0, 120))) for _ in range(size)]
    query = " ".join(rng.choices(vocabulary, weights, k=40))
    assert bm25_okapi_scores(query, documents).tobytes() == reference_scores(query, documents).tobytes()


def test_repeated_query_terms_are_added_once_per_occurrence():
    documents = ["a b c", "a a d", "b d d d", "e"]
    for query in ["a a a", "d a d", "b b b b b b b b"]:
        assert bm25_okapi_scores(query, documents).tobytes() == reference_scores(query, documents).tobytes()


def test_query_without_tokens_scores_zero_like_rank_bm25():
    documents = ["a b", "c", "a"]
    for query in ["", "   ", "\u3000\n"]:
        assert bm25_okapi_scores(query, documents).tolist() == reference_scores(query, documents).tolist() == [0, 0, 0]


def test_profiles_where_rank_bm25_divides_by_zero_score_zero():
    with pytest.raises(ZeroDivisionError):
        reference_scores("a", [])
    with pytest.raises(ZeroDivisionError):
        reference_scores("a", ["", "  "])
    assert bm25_okapi_scores("a", []).tolist() == []
    assert bm25_okapi_scores("a", ["", "  "]).tolist() == [0.0, 0.0]


def test_bm25_ranks_every_example_like_the_reference_retriever():
    """Same order for every example, ties included (rank_bm25.get_top_n: np.argsort(scores)[::-1])."""
    task = TASKS["abstract_generation"]
    rng = random.Random(7)
    examples = []
    for number in range(150):
        profile = [
            {"id": str(i), "title": random_text(rng, WORDS, 4), "abstract": random_text(rng, WORDS, 8), "year": 2000}
            for i in range(rng.choice([0, 1, 2, 5, 20, 60, 130]))
        ]
        keywords = " ".join(f"{i + 1}. {word}" for i, word in enumerate(rng.choices(WORDS, k=4)))
        examples.append(
            {
                "id": str(number),
                "input": f'Generate an abstract for the title "t" using the following items: {keywords}',
                "profile": profile,
            }
        )
    fast = get_retriever("bm25").rank(task, examples)
    reference = get_retriever("bm25_reference").rank(task, examples)
    for example, ours, expected in zip(examples, fast, reference):
        assert ours.order.tolist() == expected.order.tolist(), example["id"]
        assert ours.scores.tobytes() == expected.scores.tobytes(), example["id"]
