"""Whitespace tokenisation of many texts at once into integer term ids, exactly as `str.split()` does.

BM25 over one user's profile needs, for every token, the text it is in and the distinct term it is.
Splitting into Python strings and looking each one up in a dict costs about 100 ns a token, more than all
the rest of BM25. Here the texts are joined and encoded to UTF-8 once; token boundaries come from the code
points for which `str.isspace()` is true (the ones `str.split()` splits on); each token is read as 8-byte
words, so a token of up to 8 bytes is its own key and a longer one is keyed by a mix of its words; keys are
numbered by first appearance and then checked word by word against the first token with the same key.
The grouping is therefore exact: should two different tokens ever share a key (or a text hold a NUL
byte, which would make short keys ambiguous), the texts are tokenised again with `str.split()` and a dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# The ASCII characters `str.isspace()` accepts: 9-13 (tab... carriage return) and 28-32 (the four
# information separators and space). The few multi-byte whitespace characters are marked separately.
ASCII_SPACE_RANGES = ((9, 13), (28, 32))
# UTF-8 encodings of the non-ASCII whitespace code points, as big-endian integers of 2 or 3 bytes.
_WIDE_SPACES = [chr(code).encode("utf-8") for code in range(128, 0x3001) if chr(code).isspace()]
_WIDE_SPACE_KEYS = {
    size: np.array([int.from_bytes(s, "big") for s in _WIDE_SPACES if len(s) == size]) for size in (2, 3)
}
_WORD_MASKS = np.array([(1 << (8 * size)) - 1 for size in range(8)] + [2**64 - 1], dtype=np.uint64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_NUL = b"\x00"
# Joins the texts: whitespace to str.split(), so it ends tokens like a space, and rare enough in text that
# its positions in the encoding give the text boundaries without encoding each text apart.
_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class TermStream:
    """The tokens of a sequence of texts, in reading order.

    term: each token's term id; ids are numbered by first appearance (the first token is term 0).
    text: the index of the text each token comes from (non-decreasing).
    lengths: how many tokens each text has (`len(text.split())`).
    """

    term: np.ndarray
    text: np.ndarray
    lengths: np.ndarray


def tokenize(texts: Sequence[str]) -> TermStream:
    """The tokens of `[t.split() for t in texts]` as term ids (the same tokens; ids by first appearance)."""
    joined = _SEPARATOR.join(texts)
    data = joined.encode("utf-8", "surrogatepass")
    codes = np.frombuffer(data, dtype=np.uint8)
    # in_token[i + 1] says whether byte i belongs to a token; the first and last entries are padding.
    in_token = np.zeros(len(codes) + 2, dtype=bool)
    (low_first, low_last), (high_first, high_last) = ASCII_SPACE_RANGES
    np.logical_and(
        codes - np.uint8(low_first) > low_last - low_first,
        codes - np.uint8(high_first) > high_last - high_first,
        out=in_token[1:-1],
    )
    if len(data) != len(joined):
        _mark_wide_spaces(codes, in_token[1:-1])
    edges = np.flatnonzero(in_token[1:] != in_token[:-1])
    starts, ends = edges[0::2], edges[1::2]
    lengths = np.diff(np.searchsorted(starts, _text_starts(texts, codes)), append=len(starts))
    text = np.repeat(np.arange(len(texts)), lengths)
    term = None if _NUL in data else _group_tokens(data, starts, ends)
    if term is None:
        term = _group_with_dict(texts)
    return TermStream(term=term, text=text, lengths=lengths)


def _text_starts(texts: Sequence[str], codes: np.ndarray) -> np.ndarray:
    """The byte offset where each text starts in the joined encoding."""
    separators = np.flatnonzero(codes == ord(_SEPARATOR))
    if len(separators) == len(texts) - 1:
        return np.concatenate([[0], separators + 1])
    sizes = np.fromiter(
        (len(text.encode("utf-8", "surrogatepass")) + 1 for text in texts), dtype=np.int64, count=len(texts)
    )
    return np.cumsum(sizes) - sizes  # some text holds the separator itself: measure each text


def _mark_wide_spaces(codes: np.ndarray, in_token: np.ndarray) -> None:
    """Mark the bytes of multi-byte whitespace characters (U+0085, U+00A0, U+2000... U+3000) as not in a token."""
    leads = np.flatnonzero(codes - np.uint8(0xC2) <= 0xE3 - 0xC2)  # the lead bytes those characters start with
    padded = np.concatenate([codes, np.zeros(2, dtype=np.uint8)])
    two = (codes[leads].astype(np.int64) << 8) | padded[leads + 1]
    three = (two << 8) | padded[leads + 2]
    for size, key in ((2, two), (3, three)):
        found = leads[np.isin(key, _WIDE_SPACE_KEYS[size])]
        for offset in range(size):
            in_token[found + offset] = False


def _group_tokens(data: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Each token's term id by first appearance, or None when two different tokens share a key."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    padded = data + bytes(8)
    words = np.ndarray((len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))  # 8 bytes from each offset
    sizes = ends - starts
    keys = words.take(starts) & _WORD_MASKS[np.minimum(sizes, 8)]
    long = np.flatnonzero(sizes > 8)
    long_words = _LongWords(words, starts[long], sizes[long])
    keys[long] = long_words.keys()
    term, _ = pd.factorize(keys)
    term = term.astype(np.int64, copy=False)
    first = np.full(int(term.max()) + 1, len(term))
    np.minimum.at(first, term, np.arange(len(term)))
    first = first[term]
    if not np.array_equal(sizes, sizes[first]):
        return None
    # Short keys are the tokens' bytes; long tokens must equal, word for word, their term's first token.
    long_position = np.zeros(len(starts), dtype=np.int64)
    long_position[long] = np.arange(len(long))
    repeated = np.flatnonzero(first[long] != long)
    return term if long_words.equal(repeated, long_position[first[long[repeated]]]) else None


class _LongWords:
    """The 8-byte words of tokens longer than 8 bytes, token after token (bytes past a token's end zeroed)."""

    def __init__(self, words: np.ndarray, starts: np.ndarray, sizes: np.ndarray):
        self.counts = (sizes + 7) // 8
        self.offsets = np.cumsum(self.counts) - self.counts
        self.sizes = sizes
        self.index = np.arange(int(self.counts.sum())) - np.repeat(self.offsets, self.counts)
        remaining = np.repeat(sizes, self.counts) - 8 * self.index
        self.values = (
            words.take(np.repeat(starts, self.counts) + 8 * self.index) & _WORD_MASKS[np.minimum(remaining, 8)]
        )

    def keys(self) -> np.ndarray:
        """A 64-bit key per token: its words, each times an odd multiplier of its place, xor-ed with its size."""
        if len(self.sizes) == 0:
            return np.zeros(0, dtype=np.uint64)
        multipliers = (self.index.astype(np.uint64) * _MIX) | np.uint64(1)
        mixed = np.bitwise_xor.reduceat(self.values * multipliers, self.offsets) ^ (self.sizes.astype(np.uint64) * _MIX)
        mixed *= _MIX
        return mixed ^ (mixed >> np.uint64(29))

    def equal(self, tokens: np.ndarray, others: np.ndarray) -> bool:
        """Whether each of tokens has the same words as the token at the same place in others (same sizes)."""
        counts = self.counts[tokens]
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return bool(
            np.array_equal(
                self.values[np.repeat(self.offsets[tokens], counts) + within],
                self.values[np.repeat(self.offsets[others], counts) + within],
            )
        )


def _group_with_dict(texts: Sequence[str]) -> np.ndarray:
    """The slow exact path: `str.split()` and a dict of first appearances."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(token, len(ids)) for text in texts for token in text.split()], dtype=np.int64)
