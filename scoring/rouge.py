"""Per-sample ROUGE exactly as Hugging Face evaluate's `rouge` computes it, with an exact fast backend.

evaluate's settings: `rouge_score.RougeScorer(types, use_stemmer=False)` with its default tokenizer
(lowercase, anything but `[a-z0-9]` separates tokens), rougeLsum sentences split on newlines only, and
LongLaMP's references as single-element lists, scored with `score_multi`.

rouge-score-rs, a Rust re-implementation, gives the same floats about 150 times faster. It is used only when
installed and when it agrees bit for bit with rouge_score on PARITY_PROBES in this process; otherwise
rouge_score is used (`backend="python"` forces it). tests/test_metrics_parity.py checks the two on hundreds
of generated pairs.
"""

from __future__ import annotations

import functools
import logging
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
BACKENDS = ("auto", "rust", "python")

# Hard cases for the run-time parity check: empty sides, no overlap, repeated tokens (LCS ties), case and
# punctuation, non-ASCII letters (separators for rouge_score), rougeLsum lines with blank and spaces-only lines.
PARITY_PROBES = (
    ("", ""),
    ("", "a reference"),
    ("a prediction", ""),
    ("no overlap at all", "completely different words here"),
    ("the the the cat the", "the cat the the mat the"),
    ("A B a b. A, b!", "a b A B a"),
    ("Café naïve résumé 東京 2024 x-ray", "cafe naive resume tokyo 2024 x ray"),
    ("first line\n\nsecond line\n  \nthird", "second line\nfirst line\nthird line"),
    ("one two three four five six seven eight", "eight seven six five four three two one"),
    ("it's a dog's life, isn't it?", "it s a dogs life isn t it"),
)


def python_scores(predictions: Sequence[str], references: Sequence[str], rouge_types: Sequence[str]) -> dict:
    """rouge_score itself, called as evaluate calls it; {type: (n, 3) array of precision, recall, F}."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=False)
    rows = [scorer.score_multi([reference], prediction) for prediction, reference in zip(predictions, references)]
    return _as_arrays(rows, rouge_types)


def rust_scores(
    predictions: Sequence[str], references: Sequence[str], rouge_types: Sequence[str], threads: bool = True,
) -> dict:
    """rouge-score-rs, on all cores unless threads=False (`score` with one target is `score_multi` with one)."""
    import rouge_score_rs

    scorer = rouge_score_rs.RougeScorer(list(rouge_types), use_stemmer=False)
    if threads:
        return _as_arrays(scorer.score_batch(list(references), list(predictions)), rouge_types)
    return _as_arrays([scorer.score(r, p) for p, r in zip(predictions, references)], rouge_types)


def _as_arrays(rows: Sequence[dict], rouge_types: Sequence[str]) -> dict:
    return {
        rouge_type: np.array([tuple(row[rouge_type]) for row in rows], dtype=np.float64).reshape(len(rows), 3)
        for rouge_type in rouge_types
    }


@functools.lru_cache(maxsize=None)
def rust_backend_usable() -> bool:
    """Whether rouge-score-rs is installed and equals rouge_score bit for bit on the probes (checked once)."""
    try:
        import rouge_score_rs  # noqa: F401
    except ImportError:
        return False
    predictions, references = zip(*PARITY_PROBES)
    expected = python_scores(predictions, references, ROUGE_TYPES)
    found = rust_scores(predictions, references, ROUGE_TYPES, threads=False)  # no threads yet: forks stay clean
    if all(np.array_equal(expected[t], found[t]) for t in ROUGE_TYPES):
        return True
    logger.warning("rouge-score-rs disagrees with rouge_score on the parity probes: using rouge_score")
    return False


def resolve_backend(backend: str = "auto") -> str:
    """The backend that will run: "rust" when asked for or "auto" and usable, else "python"."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown ROUGE backend {backend!r}; expected one of {BACKENDS}")
    if backend == "rust" and not rust_backend_usable():
        raise RuntimeError("ROUGE backend 'rust' asked for, but rouge-score-rs is missing or failed its parity check")
    if backend == "auto":
        return "rust" if rust_backend_usable() else "python"
    return backend

