"""rank_bm25's BM25Okapi for one profile, compiled with numba: tokens, statistics and scores in one pass.

The official loop spends about 1.5 us a token in Python (splitting, dict counting, a list comprehension per query
term). Here the profile's UTF-8 bytes are split on the code points `str.isspace()` accepts (what `str.split()`
splits on), tokens are grouped into terms by an open-addressing hash table that compares bytes (exact, never a
probabilistic match), terms are numbered by first appearance, and document frequencies, lengths and the query
terms' frequencies are counted on the way. The arithmetic is rank_bm25's, operation for operation, so the scores
are bit for bit the same (retrieval/bm25.py explains the order of operations; tests compare with rank_bm25).
"""

from __future__ import annotations

import numpy as np
from numba import njit


# ASCII bytes that str.isspace() accepts: 9-13 (tab ... carriage return) and 28-32 (separators, space).
_ASCII_SPACE = np.zeros(128, dtype=np.bool_)
_ASCII_SPACE[9:14] = True
_ASCII_SPACE[28:33] = True
_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


@njit(cache=True, nogil=True)
def _wide_space_width(data, i, stop):
    """Bytes of the non-ASCII whitespace character at data[i], else 0: U+0085, U+00A0, U+1680, U+2000-U+200A,
    U+2028, U+2029, U+202F, U+205F, U+3000 (with the ASCII ones, the 29 code points of str.isspace())."""
    first = data[i]
    if first == 0xC2:
        return 2 if i + 1 < stop and (data[i + 1] == 0x85 or data[i + 1] == 0xA0) else 0
    if i + 2 >= stop or first < 0xE1 or first > 0xE3:
        return 0
    second, third = data[i + 1], data[i + 2]
    if first == 0xE1:
        return 3 if second == 0x9A and third == 0x80 else 0
    if first == 0xE2:
        if second == 0x80 and (third <= 0x8A or third == 0xA8 or third == 0xA9 or third == 0xAF):
            return 3  # a continuation byte, so third >= 0x80: U+2000..U+200A, U+2028, U+2029, U+202F
        return 3 if second == 0x81 and third == 0x9F else 0
    return 3 if second == 0x80 and third == 0x80 else 0


@njit(cache=True, nogil=True)
def _tokens(data, text_starts):
    """Start, end, text index and FNV-1a hash of every token, in reading order (one pass over the bytes)."""
    capacity = len(data) // 2 + len(text_starts)  # a text of n bytes has at most (n + 1) // 2 tokens
    starts = np.empty(capacity, dtype=np.int64)
    ends = np.empty(capacity, dtype=np.int64)
    texts = np.empty(capacity, dtype=np.int64)
    hashes = np.empty(capacity, dtype=np.uint64)
    count = 0
    for text in range(len(text_starts) - 1):
        i, stop, start, h = text_starts[text], text_starts[text + 1], -1, _FNV_OFFSET
        while i < stop:
            byte = data[i]
            width = (1 if _ASCII_SPACE[byte] else 0) if byte < 128 else _wide_space_width(data, i, stop)
            if width:
                if start >= 0:
                    starts[count], ends[count], texts[count], hashes[count] = start, i, text, h
                    count += 1
                    start = -1
                i += width
            else:
                if start < 0:
                    start, h = i, _FNV_OFFSET
                h = (h ^ np.uint64(byte)) * _FNV_PRIME
                i += 1
        if start >= 0:
            starts[count], ends[count], texts[count], hashes[count] = start, stop, text, h
            count += 1
    return starts[:count], ends[:count], texts[:count], hashes[:count]


@njit(cache=True, nogil=True)
def _same_bytes(data, a_start, a_end, b_start, b_end):
    if a_end - a_start != b_end - b_start:
        return False
    for offset in range(a_end - a_start):
        if data[a_start + offset] != data[b_start + offset]:
            return False
    return True


@njit(cache=True, nogil=True)
def _term_ids(data, starts, ends, hashes, insert_until):
    """Term id of each token by first appearance; tokens from insert_until on only look up (-1 if absent)."""
    capacity = 16
    while capacity < 2 * len(starts) + 2:
        capacity *= 2
    slots = np.full(capacity, -1, dtype=np.int64)
    first_token = np.empty(len(starts), dtype=np.int64)  # term id -> its first token
    ids = np.empty(len(starts), dtype=np.int64)
    num_terms = 0
    for token in range(len(starts)):
        slot = np.int64(hashes[token] & np.uint64(capacity - 1))
        while True:
            term = slots[slot]
            if term < 0:
                if token < insert_until:
                    slots[slot] = num_terms
                    first_token[num_terms] = token
                    ids[token] = num_terms
                    num_terms += 1
                else:
                    ids[token] = -1
                break
            other = first_token[term]
            if _same_bytes(data, starts[token], ends[token], starts[other], ends[other]):
                ids[token] = term
                break
            slot = (slot + 1) & (capacity - 1)
    return ids, num_terms


@njit(cache=True, nogil=True)
def bm25_okapi_kernel(data, text_starts, idf_of_frequency, k1, b, epsilon):
    """Scores of texts 0..n-2 (the profile) for the query, text n-1. See the module docstring."""
    num_docs = len(text_starts) - 2
    scores = np.zeros(num_docs)
    starts, ends, texts, hashes = _tokens(data, text_starts)
    num_doc_tokens = 0
    while num_doc_tokens < len(texts) and texts[num_doc_tokens] < num_docs:
        num_doc_tokens += 1
    if num_doc_tokens == 0:
        return scores
    ids, num_terms = _term_ids(data, starts, ends, hashes, num_doc_tokens)

    doc_lengths = np.zeros(num_docs, dtype=np.int64)
    frequency = np.zeros(num_terms, dtype=np.int64)
    last_doc = np.full(num_terms, -1, dtype=np.int64)
    for token in range(num_doc_tokens):
        term, doc = ids[token], texts[token]
        doc_lengths[doc] += 1
        if last_doc[term] != doc:
            last_doc[term] = doc
            frequency[term] += 1

    # rank_bm25._calc_idf: idf by first appearance, summed one by one, negative ones floored.
    idf = np.empty(num_terms)
    idf_sum = 0.0
    for term in range(num_terms):
        idf[term] = idf_of_frequency[frequency[term]]
        idf_sum += idf[term]
    floor = epsilon * (idf_sum / num_terms)
    for term in range(num_terms):
        if idf[term] < 0:
            idf[term] = floor

    # Frequencies of the query's distinct known terms in every document.
    row_of_term = np.full(num_terms, -1, dtype=np.int64)
    rows = 0
    for token in range(num_doc_tokens, len(ids)):
        term = ids[token]
        if term >= 0 and row_of_term[term] < 0:
            row_of_term[term] = rows
            rows += 1
    tf = np.zeros((max(rows, 1), num_docs), dtype=np.int64)
    for token in range(num_doc_tokens):
        row = row_of_term[ids[token]]
        if row >= 0:
            tf[row, texts[token]] += 1

    # rank_bm25.get_scores: score += idf * (q_freq * (k1 + 1) / (q_freq + k1 * (1 - b + b * doc_len / avgdl)))
    # for each query token in order (unknown terms add 0.0 there and are skipped here).
    average_length = num_doc_tokens / num_docs
    base = 1 - b
    for token in range(num_doc_tokens, len(ids)):
        term = ids[token]
        if term < 0:
            continue
        weight, row = idf[term], row_of_term[term]
        for doc in range(num_docs):
            q_freq = tf[row, doc]
            scores[doc] += weight * (q_freq * (k1 + 1) / (q_freq + k1 * (base + b * doc_lengths[doc] / average_length)))
    return scores
