"""BM25 parity: the array implementation against rank_bm25.BM25Okapi, bit for bit, ties included."""

from __future__ import annotations

import random
import sys

import numpy as np
import pyarrow as pa
import pytest
from numba import njit
from rank_bm25 import BM25Okapi

from longlamp_tasks import TASKS
from retrieval import get_retriever
from retrieval.bm25 import bm25_okapi_scores
from retrieval.bm25_kernel import _LONG_TOKEN, BYTE_KIND, find_slot, new_term_table, tokenize
from retrieval.corpus_bytes import CorpusBytes

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


@njit
def _kernel_terms(data, text_starts, capacity, collide_long_tokens):
    """Tokenise the texts with the kernel and number the terms by first appearance with its table (capacity: a
    power of two above the number of tokens)."""
    starts, ends, keys = np.empty(capacity, np.int64), np.empty(capacity, np.int64), np.empty(capacity, np.int64)
    count = 0
    for text in range(len(text_starts) - 1):
        count = tokenize(data, text_starts[text], text_starts[text + 1], starts, ends, keys, count)
    if collide_long_tokens:  # every token longer than 7 bytes gets the same key
        for token in range(count):
            keys[token] = min(keys[token], _LONG_TOKEN)
    slots, entries, _ = new_term_table(capacity)
    ids = np.empty(count, dtype=np.int64)
    for token in range(count):
        slot = find_slot(data, starts[token], ends[token], keys[token], slots, entries)
        if slots[slot, 1] < 0:
            slots[slot, 0], slots[slot, 1] = keys[token], token
            entries[token, 0], entries[token, 1] = starts[token], ends[token]
        ids[token] = slots[slot, 1]
    return starts[:count], ends[:count], ids


def kernel_terms(texts, collide_long_tokens=False):
    """The kernel's tokens of `texts` (as text) and the term id of each (by first appearance)."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    text_starts = np.concatenate([[0], np.cumsum([len(text) for text in encoded])]).astype(np.int64)
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    capacity = 1 << (len(data) // 2 + len(texts)).bit_length()
    starts, ends, first_tokens = _kernel_terms(data, text_starts, capacity, collide_long_tokens)
    tokens = [bytes(data[start:end]).decode("utf-8", "surrogatepass") for start, end in zip(starts, ends)]
    renumbered = {}
    return tokens, [renumbered.setdefault(first, len(renumbered)) for first in first_tokens.tolist()]


def test_byte_kinds_are_those_of_str_split():
    assert np.flatnonzero(BYTE_KIND == 1).tolist() == [code for code in range(128) if chr(code).isspace()]
    wide_lead_bytes = {space.encode()[0] for space in ALL_SPACES if ord(space) >= 128}
    assert np.flatnonzero(BYTE_KIND == 2).tolist() == sorted(wide_lead_bytes)


def test_tokens_match_str_split_on_every_kind_of_whitespace():
    rng = random.Random(0)
    alphabet = [*ALL_SPACES, "a", "b", "é", "€", "😀", "\ud800", "\x00", "\x1c", "\u200b", "q" * 8, "r" * 17]
    for _ in range(2000):
        texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 14))) for _ in range(rng.randint(1, 6))]
        tokens, ids = kernel_terms(texts)
        assert tokens == [token for text in texts for token in text.split()], texts
        assert ids == split_ids(texts), texts


def test_terms_stay_exact_when_every_long_token_has_the_same_key():
    """Tokens of up to 7 bytes are their own keys; longer ones are told apart by their bytes when keys collide."""
    texts = ["abcdefghij abcdefghik a", "short abcdefghij abcdefghijklmnopq a b", "b ab ba abcdefg abcdefgh"]
    assert kernel_terms(texts, collide_long_tokens=True)[1] == split_ids(texts)


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


def review_examples(rng: random.Random, count: int) -> list[dict]:
    """product_review rows: a float rating among the corpus fields, null and missing fields, empty profiles
    (no lone surrogate: Arrow strings are valid UTF-8)."""
    words = [word for word in WORDS if word != "\ud800"]
    examples = []
    for number in range(count):
        profile = [
            {
                "overall": float(rng.randint(1, 5)),
                "summary": random_text(rng, words, 3),
                "description": rng.choice([None, random_text(rng, words, 6)]),
                "reviewText": random_text(rng, words + ["5.0", "3.0"], 12),
            }
            for _ in range(rng.choice([0, 1, 4, 30]))
        ]
        examples.append({"id": f"r{number}", "input": random_text(rng, words + ["5.0"], 8), "profile": profile})
    return examples


@pytest.mark.parametrize("string_type", [pa.string(), pa.large_string()])
def test_arrow_chunks_rank_like_python_rows(string_type):
    """Arrow input is read in place: slices, large strings, nulls, a non-string field and a missing field."""
    task = TASKS["product_review"]
    examples = review_examples(random.Random(3), 80)
    table = pa.Table.from_pylist(examples)
    item_type = pa.struct(
        [("overall", pa.float64()), ("summary", string_type), ("reviewText", string_type)]  # no description
    )
    table = table.set_column(2, "profile", table.column("profile").cast(pa.list_(item_type)))
    table = table.set_column(1, "input", table.column("input").cast(string_type))
    expected = get_retriever("bm25_reference").rank(task, [
        {**example, "profile": [{**item, "description": None} for item in example["profile"]]} for example in examples
    ])
    retriever = get_retriever("bm25")
    assert CorpusBytes.from_arrow(task, table) is not None  # the in-place path, not the row-by-row fallback
    for start, stop in [(0, 80), (7, 29), (29, 80)]:
        for ours, reference in zip(retriever.rank_table(task, table.slice(start, stop - start)), expected[start:stop]):
            assert ours.order.tolist() == reference.order.tolist()
            assert ours.scores.tobytes() == reference.scores.tobytes()


def test_arrow_rows_with_null_profiles_or_items_are_named_like_python_rows():
    task = TASKS["product_review"]
    examples = review_examples(random.Random(4), 5)
    examples[3]["profile"] = [None]
    with pytest.raises(ValueError, match="example 'r3': profile item 0 must be a mapping of fields, got NoneType"):
        get_retriever("bm25").rank_table(task, pa.Table.from_pylist(examples))
