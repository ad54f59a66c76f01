"""rank_bm25's BM25Okapi for a batch of examples, compiled with numba.

The official loop spends about 1.5 us a token in Python (splitting, dict counting, a list comprehension per query
term). Here each profile is read from UTF-8 bytes (retrieval/corpus_bytes.py lays them out) in two tight loops:
- tokenising: split on the code points `str.isspace()` accepts (what `str.split()` splits on), giving each
  token a 64-bit key. A token of up to 7 bytes is its own key (its bytes and length packed), so equal keys mean
  equal tokens; longer tokens get a hashed key, and equal keys are confirmed by comparing bytes. Grouping is
  therefore exact, never a probabilistic match.
- indexing: an open-addressing table takes the query's distinct tokens first (each with a row of term
  frequencies, not yet a term), then numbers the profile's terms by first appearance and counts document
  frequencies, document lengths and the query terms' frequencies on the way. Whether a token is new is
  unpredictable, so those updates are written without branches.
The arithmetic is rank_bm25's, operation for operation, so the scores are bit for bit the same
(retrieval/bm25.py explains the order of operations; tests compare with rank_bm25). A batch runs without the
GIL, so threads score batches in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# 0: part of a token; 1: ASCII whitespace of str.isspace() (9-13 and 28-32); 2: the first byte of a UTF-8
# character that may be one of its other whitespace characters.
BYTE_KIND = np.zeros(256, dtype=np.uint8)
BYTE_KIND[9:14] = 1
BYTE_KIND[28:33] = 1
BYTE_KIND[[0xC2, 0xE1, 0xE2, 0xE3]] = 2

_LENGTH_SHIFT = np.int64(56)
_LONG_TOKEN = np.int64(8) << _LENGTH_SHIFT  # keys at or above this are hashes of tokens longer than 7 bytes
_LOW_56_BITS = (np.int64(1) << _LENGTH_SHIFT) - np.int64(1)
_GOLDEN = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as a signed 64-bit integer: a multiplicative hash

# Columns of the slot table and of the entry table (an entry is a distinct token of the query or the profile;
# _TERM is its number among the profile's terms by first appearance, -1 for a query token not seen there yet).
_KEY, _ENTRY = range(2)
_START, _END, _SLOT, _TERM, _ROW, _LAST_DOC, _DOC_FREQUENCY = range(7)
_INITIAL_ENTRIES = 1024


@njit(cache=True, nogil=True, inline="always")
def _wide_space_width(data, i, stop):
    """Bytes of the whitespace character at data[i] (a BYTE_KIND 2 byte), else 0: U+0085, U+00A0, U+1680,
    U+2000-U+200A, U+2028, U+2029, U+202F, U+205F and U+3000."""
    first = data[i]
    if first == 0xC2:
        return 2 if i + 1 < stop and (data[i + 1] == 0x85 or data[i + 1] == 0xA0) else 0
    if i + 2 >= stop:
        return 0
    second, third = data[i + 1], data[i + 2]
    if first == 0xE1:
        return 3 if second == 0x9A and third == 0x80 else 0
    if first == 0xE2:
        if second == 0x80 and (third <= 0x8A or third == 0xA8 or third == 0xA9 or third == 0xAF):
            return 3  # a continuation byte, so third >= 0x80: U+2000..U+200A, U+2028, U+2029, U+202F
        return 3 if second == 0x81 and third == 0x9F else 0
    return 3 if second == 0x80 and third == 0x80 else 0


@njit(cache=True, nogil=True, inline="always")
def _token_key(folded, length):
    """The key of a token from its bytes folded by 8-bit rotations (the bytes themselves up to 8 bytes)."""
    if length <= 7:
        return folded | (np.int64(length) << _LENGTH_SHIFT)
    return ((folded * _GOLDEN) >> np.int64(8)) & _LOW_56_BITS | _LONG_TOKEN


@njit(cache=True, nogil=True, inline="always")
def tokenize(data, i, stop, starts, ends, keys, count):
    """Append the tokens of data[i:stop] (start, end, key) at position `count`; returns the new count."""
    start, folded = -1, np.int64(0)
    while i < stop:
        byte = data[i]
        kind = BYTE_KIND[byte]
        width = 1 if kind == 1 else (_wide_space_width(data, i, stop) if kind == 2 else 0)
        if width == 0:
            if start < 0:
                start, folded = i, np.int64(0)
            folded = ((folded << np.int64(8)) | ((folded >> np.int64(56)) & np.int64(255))) ^ np.int64(byte)
            i += 1
        else:
            if start >= 0:
                starts[count], ends[count], keys[count] = start, i, _token_key(folded, i - start)
                count += 1
                start = -1
            i += width
    if start >= 0:
        starts[count], ends[count], keys[count] = start, stop, _token_key(folded, stop - start)
        count += 1
    return count


@njit(cache=True, nogil=True, inline="always")
def _same_bytes(data, a_start, a_end, b_start, b_end):
    if a_end - a_start != b_end - b_start:
        return False
    for offset in range(a_end - a_start):
        if data[a_start + offset] != data[b_start + offset]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _home_slot(key, mask):
    return ((key * _GOLDEN) >> np.int64(32)) & mask


@njit(cache=True, nogil=True, inline="always")
def find_slot(data, start, end, key, slots, entries):
    """The slot of the token data[start:end] (with this key), or the free slot where it belongs."""
    mask = len(slots) - 1
    slot = _home_slot(key, mask)
    while True:
        entry = slots[slot, _ENTRY]
        if entry < 0:
            return slot
        if slots[slot, _KEY] == key and (
            key < _LONG_TOKEN or _same_bytes(data, start, end, entries[entry, _START], entries[entry, _END])
        ):
            return slot
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def new_term_table(capacity):
    """(slots, entries, entry_of_term) for `capacity` entries (a power of two): slot rows are (key, entry or -1),
    twice as many as entry rows; entry_of_term maps a profile term number to its entry."""
    return (
        np.full((2 * capacity, 2), -1, dtype=np.int64),
        np.empty((capacity, 7), dtype=np.int64),
        np.empty(capacity, dtype=np.int64),
    )


@njit(cache=True, nogil=True)
def _reserved(slots, entries, entry_of_term, num_entries, extra):
    """The table, grown (doubling, same entries) until it has room for `extra` more entries."""
    capacity = len(entries)
    while capacity - num_entries < extra:
        capacity *= 2
    if capacity == len(entries):
        return slots, entries, entry_of_term
    bigger_slots, bigger_entries, bigger_entry_of_term = new_term_table(capacity)
    bigger_entries[:num_entries] = entries[:num_entries]
    bigger_entry_of_term[: len(entry_of_term)] = entry_of_term
    mask = len(bigger_slots) - 1
    for entry in range(num_entries):
        key = slots[entries[entry, _SLOT], _KEY]
        slot = _home_slot(key, mask)
        while bigger_slots[slot, _ENTRY] >= 0:
            slot = (slot + 1) & mask
        bigger_slots[slot, _KEY], bigger_slots[slot, _ENTRY] = key, entry
        bigger_entries[entry, _SLOT] = slot
    return bigger_slots, bigger_entries, bigger_entry_of_term


@njit(cache=True, nogil=True, inline="always")
def _entry_of_token(data, start, end, key, slots, entries, num_entries):
    """The entry of a token; a new one becomes entry `num_entries`, with no term, row or document yet (the table
    must have room). Returns (entry, 1 if it was added else 0). Written without branches: whether a token is
    new is unpredictable, and the writes for a new entry are harmless for an old one."""
    slot = find_slot(data, start, end, key, slots, entries)
    existing = slots[slot, _ENTRY]
    added = existing < 0
    entry = num_entries if added else existing
    slots[slot, _KEY], slots[slot, _ENTRY] = key, entry
    entries[num_entries, _START], entries[num_entries, _END], entries[num_entries, _SLOT] = start, end, slot
    entries[num_entries, _TERM], entries[num_entries, _ROW] = -1, -1
    entries[num_entries, _LAST_DOC], entries[num_entries, _DOC_FREQUENCY] = -1, 0
    return entry, np.int64(added)


@njit(cache=True, nogil=True)
def bm25_okapi_batch(
    data, fields, segment_starts, segment_ends, item_offsets, query_starts, query_ends, log_half, k1, b, epsilon
):
    """BM25Okapi scores of every example's profile for its query, as one flat array (see corpus_bytes.py).

    Profile item i of the batch is data[segment_starts[i * fields + f]:segment_ends[...]] for each of its
    `fields` corpus fields f; example e owns items item_offsets[e]..item_offsets[e + 1] - 1 and its query is
    data[query_starts[e]:query_ends[e]]. log_half[x] is math.log(x + 0.5), so that every logarithm is CPython's.
    """
    num_examples = len(query_starts)
    scores = np.zeros(item_offsets[num_examples])
    largest_profile, most_tokens = 0, 0
    for example in range(num_examples):
        largest_profile = max(largest_profile, item_offsets[example + 1] - item_offsets[example])
        most_tokens = max(most_tokens, (query_ends[example] - query_starts[example] + 1) // 2)
    for item in range(item_offsets[num_examples]):
        size = 0
        for segment in range(item * fields, (item + 1) * fields):
            size += segment_ends[segment] - segment_starts[segment] + 1
        most_tokens = max(most_tokens, size // 2)  # a text of n bytes has at most (n + 1) // 2 tokens
    starts = np.empty(most_tokens, dtype=np.int64)  # the tokens of one document or query at a time
    ends = np.empty(most_tokens, dtype=np.int64)
    keys = np.empty(most_tokens, dtype=np.int64)
    doc_lengths = np.empty(largest_profile, dtype=np.int64)
    slots, entries, entry_of_term = new_term_table(_INITIAL_ENTRIES)

    for example in range(num_examples):
        first, num_docs = item_offsets[example], item_offsets[example + 1] - item_offsets[example]
        # The query first: an entry with a row of term frequencies for each distinct token, not yet a term.
        num_query = tokenize(data, query_starts[example], query_ends[example], starts, ends, keys, 0)
        slots, entries, entry_of_term = _reserved(slots, entries, entry_of_term, 0, num_query)
        query_entries = np.empty(num_query, dtype=np.int64)
        num_entries = 0
        for token in range(num_query):
            entry, added = _entry_of_token(data, starts[token], ends[token], keys[token], slots, entries, num_entries)
            if added:  # query entries come first, so a row number is the entry's own number
                entries[entry, _ROW] = entry
            num_entries += added
            query_entries[token] = entry
        tf = np.zeros((max(num_entries, 1), num_docs), dtype=np.int64)

        # The profile: rank_bm25._initialize (terms numbered by first appearance, document frequencies,
        # document lengths), and the query terms' frequencies on the way.
        num_terms, num_tokens = 0, 0
        for doc in range(num_docs):
            count = 0
            for segment in range((first + doc) * fields, (first + doc + 1) * fields):
                count = tokenize(data, segment_starts[segment], segment_ends[segment], starts, ends, keys, count)
            slots, entries, entry_of_term = _reserved(slots, entries, entry_of_term, num_entries, count)
            for token in range(count):
                entry, added = _entry_of_token(
                    data, starts[token], ends[token], keys[token], slots, entries, num_entries
                )
                num_entries += added
                # A term is numbered at its first appearance in the profile; document frequency counts the
                # documents it appears in. Both without branches, as neither is predictable.
                new_term = entries[entry, _TERM] < 0
                entry_of_term[num_terms] = entry
                entries[entry, _TERM] = num_terms if new_term else entries[entry, _TERM]
                num_terms += new_term
                entries[entry, _DOC_FREQUENCY] += entries[entry, _LAST_DOC] != doc
                entries[entry, _LAST_DOC] = doc
                row = entries[entry, _ROW]
                if row >= 0:
                    tf[row, doc] += 1
            doc_lengths[doc] = count
            num_tokens += count
        if num_tokens > 0:  # else rank_bm25 divides by zero; the scores stay 0
            # rank_bm25._calc_idf: idf by first appearance, summed one by one, negative ones floored.
            idf = np.empty(num_terms)
            idf_sum = 0.0
            for term in range(num_terms):
                frequency = entries[entry_of_term[term], _DOC_FREQUENCY]
                idf[term] = log_half[num_docs - frequency] - log_half[frequency]
                idf_sum += idf[term]
            floor = epsilon * (idf_sum / num_terms)
            for term in range(num_terms):
                if idf[term] < 0:
                    idf[term] = floor

            # rank_bm25.get_scores: score += idf * (q_freq * (k1 + 1) / (q_freq + k1 * (1 - b + b * doc_len /
            # avgdl))) for each query token in order. Where q_freq is 0 that adds a zero (the scores start at
            # +0.0 and a sum never becomes -0.0), so only the documents that hold the term are visited, and
            # tokens that are not in the profile are skipped.
            average_length = num_tokens / num_docs
            length_part = np.empty(num_docs)
            for doc in range(num_docs):
                length_part[doc] = k1 * (1 - b + b * doc_lengths[doc] / average_length)
            for entry in query_entries:
                term = entries[entry, _TERM]
                if term < 0:
                    continue
                weight, row = idf[term], entries[entry, _ROW]
                for doc in range(num_docs):
                    q_freq = tf[row, doc]
                    if q_freq != 0:
                        scores[first + doc] += weight * (q_freq * (k1 + 1) / (q_freq + length_part[doc]))
        for entry in range(num_entries):  # empty the table for the next example
            slots[entries[entry, _SLOT], _ENTRY] = -1
    return scores
