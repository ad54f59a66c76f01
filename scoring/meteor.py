"""Per-sample METEOR exactly as Hugging Face evaluate's `meteor` computes it, without NLTK's per-call overhead.

evaluate calls, for LongLaMP's single-element reference lists,
`nltk.translate.meteor_score.meteor_score([word_tokenize(ref)], word_tokenize(pred), alpha=0.9, beta=3, gamma=0.5)`.
`single_meteor` is that algorithm (NLTK 3.10's `single_meteor_score`) written again for speed: NLTK rebuilds
each hypothesis word's synonym set from WordNet lemma objects on every call, and that, not the matching, is most
of its time. Here the Porter stem and the synonym set are computed once per distinct word (both pure functions
of the word) and the matching works on plain lists and dicts. Everything that decides a score is NLTK's:

- words lower-cased; three stages in NLTK's order: exact, then Porter stem, then WordNet synonym;
- in each stage hypothesis words are visited from last to first, and each takes the LAST still unmatched
  reference position of its word (for synonyms: the last such position over all its synonyms);
- NLTK's quirk kept: the synonym stage sees the words the stem stage left, as stems (`synsets(stem)`, compared
  with the reference words' stems); a synonym is a lemma name without "_", and the word itself counts;
- chunks counted over the matches sorted by hypothesis position; the same float operations in the same order.

tests/test_metrics_parity.py and tests/test_meteor.py compare with NLTK's function bit for bit. Tokens are
word_tokenize's, produced without NLTK's per-call regex timer (see word_tokens.py).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Sequence

import numpy as np
from nltk.corpus import wordnet
from nltk.corpus.reader.wordnet import WordNetCorpusReader
from nltk.stem.porter import PorterStemmer
from nltk.translate.meteor_score import single_meteor_score

from scoring.nltk_setup import require_nltk_data
from scoring.word_tokens import fast_path_usable, word_tokenize

ALPHA, BETA, GAMMA = 0.9, 3, 0.5  # evaluate's defaults
CACHE_SIZE = 1 << 20  # distinct words kept per cache before it starts afresh; far more than a test split has
IMPLEMENTATION = (
    "NLTK 3.10 meteor_score's algorithm (exact, Porter stem, WordNet synonym stages) re-implemented with stems and "
    "synonym sets cached per word, on nltk.word_tokenize tokens; bit-identical to nltk (parity-tested)"
)

# (hypothesis, reference) token pairs through every stage and tie-break: repeats, stems, synonyms, empty sides.
PROBES = (
    ([], ["a"]),
    (["a"], []),
    (["the", "the", "cat", "the"], ["the", "cat", "the", "the", "mat"]),
    (["Running", "ran", "houses", "car", "big"], ["run", "house", "auto", "large", "running", "big"]),
    (["good", "well", "good", "fine", "."], ["well", "good", "right", "well", "fine", "!"]),
)

logger = logging.getLogger(__name__)
_STEMMER = PorterStemmer()  # NLTK's default stemmer for meteor_score, same mode (NLTK_EXTENSIONS)
# One cache per process: worker processes inherit the parent's when forked, or build their own.
_stems: dict[str, str] = {}
_synonyms: dict[str, frozenset[str]] = {}


def clear_caches() -> None:
    """Forget every cached stem and synonym set (a fresh process's state; tests use it)."""
    _stems.clear()
    _synonyms.clear()


def _stem(word: str) -> str:
    stem = _stems.get(word)
    if stem is None:
        if len(_stems) >= CACHE_SIZE:
            _stems.clear()
        stem = _stems[word] = _STEMMER.stem(word)
    return stem


def _synonym_set(word: str) -> frozenset[str]:
    """What NLTK's synonym stage builds for `word`: its synsets' lemma names without "_", and the word itself."""
    synonyms = _synonyms.get(word)
    if synonyms is None:
        if len(_synonyms) >= CACHE_SIZE:
            _synonyms.clear()
        names = {lemma.name() for synset in wordnet.synsets(word) for lemma in synset.lemmas()}
        synonyms = _synonyms[word] = frozenset({name for name in names if name.find("_") < 0} | {word})
    return synonyms


def _match_exact(hyp: list, ref: list, matches: list) -> tuple[list, list]:
    """NLTK's `_match_enums`: each hypothesis word, last first, takes the last unmatched reference position of
    the same word. `hyp`, `ref`: [(original position, word)]; appends (hyp position, ref position) to `matches`
    and returns the unmatched words of each side, in order."""
    positions: dict[str, list[int]] = {}
    for j, (_, word) in enumerate(ref):
        positions.setdefault(word, []).append(j)
    hyp_left, matched_ref = [], set()
    for i in range(len(hyp) - 1, -1, -1):
        found = positions.get(hyp[i][1])
        if found:
            j = found.pop()
            matched_ref.add(j)
            matches.append((hyp[i][0], ref[j][0]))
        else:
            hyp_left.append(hyp[i])
    hyp_left.reverse()
    return hyp_left, [pair for j, pair in enumerate(ref) if j not in matched_ref]


def _match_synonyms(hyp: list, ref: list, matches: list) -> None:
    """NLTK's `_enum_wordnetsyn_match`: each hypothesis word, last first, takes the last unmatched reference
    position whose word is among its synonyms. Distinct words own distinct positions, so the last position
    over the synonyms is unique whatever order NLTK iterates its set in."""
    positions: dict[str, list[int]] = {}
    for j, (_, word) in enumerate(ref):
        positions.setdefault(word, []).append(j)
    for i in range(len(hyp) - 1, -1, -1):
        candidates = _synonym_set(hyp[i][1]) & positions.keys()
        if candidates:
            best = max(candidates, key=lambda word: positions[word][-1])
            found = positions[best]
            j = found.pop()
            if not found:
                del positions[best]  # an emptied list is no candidate any more
            matches.append((hyp[i][0], ref[j][0]))


def single_meteor(reference: Sequence[str], hypothesis: Sequence[str], alpha: float = ALPHA, beta: float = BETA,
                  gamma: float = GAMMA) -> float:
    """NLTK's `single_meteor_score(reference, hypothesis, alpha=, beta=, gamma=)` (default stemmer and WordNet)."""
    hyp = list(enumerate(word.lower() for word in hypothesis))
    ref = list(enumerate(word.lower() for word in reference))
    translation_length, reference_length = len(hyp), len(ref)
    matches: list[tuple[int, int]] = []
    hyp, ref = _match_exact(hyp, ref, matches)
    hyp, ref = _match_exact([(i, _stem(w)) for i, w in hyp], [(j, _stem(w)) for j, w in ref], matches)
    _match_synonyms(hyp, ref, matches)
    matches.sort()
    matches_count = len(matches)
    try:  # NLTK's arithmetic, operation for operation
        precision = float(matches_count) / translation_length
        recall = float(matches_count) / reference_length
        fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall)
        chunks = 1 + sum(1 for (h0, r0), (h1, r1) in zip(matches, matches[1:]) if h1 != h0 + 1 or r1 != r0 + 1)
        frag_frac = float(chunks) / matches_count
    except ZeroDivisionError:
        return 0.0
    penalty = gamma * frag_frac**beta
    return (1 - penalty) * fmean


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
    wordnet.synsets("warm")
    fast_path_usable()  # loads Punkt and checks the tokenizer once
    matches_nltk()


@functools.lru_cache(maxsize=None)
def matches_nltk() -> bool:
    """Whether single_meteor equals this NLTK's single_meteor_score on PROBES (checked once per process): a
    future NLTK that changes its algorithm makes meteor_scores fall back to NLTK itself, as evaluate would."""
    expected = [single_meteor_score(r, h, alpha=ALPHA, beta=BETA, gamma=GAMMA) for h, r in PROBES]
    if [single_meteor(r, h) for h, r in PROBES] == expected:
        return True
    logger.warning("scoring.meteor disagrees with this NLTK's meteor_score on a probe: using NLTK's function")
    return False


def meteor_scores(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-sample METEOR of each prediction against its one reference (0.0 when either side is empty)."""
    require_nltk_data()
    score = single_meteor if matches_nltk() else functools.partial(
        single_meteor_score, alpha=ALPHA, beta=BETA, gamma=GAMMA)
    return np.array(
        [score(word_tokenize(reference), word_tokenize(prediction))
         for prediction, reference in zip(predictions, references)],
        dtype=np.float64,
    )
