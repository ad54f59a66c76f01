"""Per-sample METEOR exactly as Hugging Face evaluate's `meteor` computes it, made cheaper by caching.

evaluate calls, for LongLaMP's single-element reference lists,
`nltk.translate.meteor_score.meteor_score([word_tokenize(ref)], word_tokenize(pred), alpha=0.9, beta=3, gamma=0.5)`.
The scoring here is that same NLTK function; only its two look-ups, which cost most of its time, are cached
per distinct word: the Porter stem and WordNet's synsets. Both are pure functions of the word, so no score
changes (tests/test_metrics_parity.py compares with plain NLTK). Tokens are word_tokenize's, produced without
NLTK's per-call regex timer (see word_tokens.py).
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np
from nltk.corpus import wordnet
from nltk.corpus.reader.wordnet import WordNetCorpusReader
from nltk.stem.api import StemmerI
from nltk.stem.porter import PorterStemmer
from nltk.translate.meteor_score import meteor_score

from evaluation.nltk_setup import require_nltk_data
from evaluation.word_tokens import fast_path_usable, word_tokenize

ALPHA, BETA, GAMMA = 0.9, 3, 0.5  # evaluate's defaults
CACHE_SIZE = 1 << 20  # distinct words kept per look-up; a few hundred MB at most, far more than a test split has


class CachedPorterStemmer(StemmerI):
    """NLTK's default PorterStemmer (the one meteor_score uses), remembering each word's stem."""

    def __init__(self):
        self._stem = functools.lru_cache(maxsize=CACHE_SIZE)(PorterStemmer().stem)

    def stem(self, token):
        return self._stem(token)


class CachedWordNet:
    """The one part of NLTK's WordNet reader that METEOR uses, `synsets(word)`, remembering each word's answer."""

    def __init__(self, reader=wordnet):
        self._reader = reader  # NLTK's lazy loader: reading its attributes loads WordNet, so not before use

    @functools.lru_cache(maxsize=CACHE_SIZE)  # noqa: B019 (the instances live as long as the process)
    def synsets(self, word):
        return self._reader.synsets(word)


# One cache per process: worker processes inherit the parent's when forked, or build their own.
STEMMER = CachedPorterStemmer()
WORDNET = CachedWordNet()


def _own_wordnet_files_after_fork() -> None:
    """In a forked child, forget the parent's open WordNet data files: the child opens its own on first use.

    NLTK reads a synset by seeking in `data.<pos>` files it keeps open. A forked child inherits those file
    descriptors, and with them one file offset shared by every process: two workers seeking and reading at once
    read each other's lines (a crash, or a wrong synset and a wrong score). The in-memory index, the synsets
    already parsed and the caches above stay inherited; only the file handles become the child's own.
    """
    if isinstance(wordnet, WordNetCorpusReader):  # the lazy loader turns into the reader once WordNet is loaded
        wordnet._data_file_map = {}  # the dropped file objects close only this child's copies of the descriptors


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_own_wordnet_files_after_fork)


def warm_up() -> None:
    """Check the NLTK data and load WordNet and Punkt now, so that forked workers inherit them loaded."""
    require_nltk_data()
    WORDNET.synsets("warm")
    fast_path_usable()  # loads Punkt and checks the tokenizer once


def meteor_scores(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-sample METEOR of each prediction against its one reference (0.0 when either side is empty)."""
    require_nltk_data()
    return np.array(
        [
            meteor_score([word_tokenize(reference)], word_tokenize(prediction), stemmer=STEMMER, wordnet=WORDNET,
                         alpha=ALPHA, beta=BETA, gamma=GAMMA)
            for prediction, reference in zip(predictions, references)
        ],
        dtype=np.float64,
    )
