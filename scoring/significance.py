"""Paired significance between two systems scored on the same examples: pure functions over per-sample scores.

For each metric the effect is the mean of the paired differences d_i = b_i - a_i (system b minus system a):

- `paired_bootstrap_interval`: percentile bootstrap of mean(d): the examples are resampled with replacement
  (the same resamples for every metric), as scipy.stats.bootstrap(paired=True, method="percentile") does. It
  is the scorer's bootstrap (`aggregate.bootstrap_intervals`) run on the differences.
- `sign_flip_p_value`: the paired permutation test. Under "no difference" each pair's two scores are
  exchangeable, so each d_i keeps or flips its sign; the two-sided p-value is the share of sign patterns whose
  |mean| reaches the observed |mean(d)|. All 2^n patterns are enumerated when 2^n <= num_resamples (exact);
  otherwise num_resamples random patterns are drawn and p = (1 + hits) / (1 + num_resamples), which counts the
  observed pattern and is never 0. Ties are judged with scipy's relative tolerance (100 machine epsilons).
  This is scipy.stats.permutation_test(permutation_type="samples") for the mean difference.
- `user_means`: per-user averages of both systems, so that each user counts once (then the same tests run
  with users as the paired units).

Defaults: 10,000 resamples, 95% confidence, seed 0; every result records them.
"""

from __future__ import annotations

import itertools
from typing import Hashable, Mapping, Sequence

import numpy as np

from scoring.aggregate import bootstrap_intervals

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95
EXACT_LIMIT = 16  # at most 2^16 sign patterns enumerated (when num_resamples allows)
BLOCK = 256  # sign patterns drawn at once: bounds memory to BLOCK * n
TIE_EPSILONS = 100  # scipy's tolerance: differences within 100 eps of the observed statistic count as ties


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired scores need two 1-d arrays of the same non-zero length, got {a.shape}, {b.shape}")
    return a, b


def paired_bootstrap_interval(a: np.ndarray, b: np.ndarray, num_resamples: int = DEFAULT_RESAMPLES,
                              confidence: float = DEFAULT_CONFIDENCE, seed: int | None = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(b - a), resampling the pairs."""
    return paired_bootstrap_intervals({"_": a}, {"_": b}, num_resamples, confidence, seed)["_"]


def paired_bootstrap_intervals(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
                               num_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                               seed: int | None = 0) -> dict[str, tuple[float, float]]:
    """paired_bootstrap_interval for each metric of `a` (and `b`), all metrics on the same resamples."""
    differences = {name: np.subtract(*_check_pair(b[name], a[name])) for name in a}
    intervals = bootstrap_intervals(differences, num_resamples, confidence, seed)
    return {name: (interval["low"], interval["high"]) for name, interval in intervals.items()}


def _sign_patterns(n: int, num_resamples: int, rng: np.random.Generator):
    """Blocks of sign patterns (rows of +1/-1): all 2^n of them when that is at most num_resamples, else random."""
    if n <= EXACT_LIMIT and 2**n <= num_resamples:
        patterns = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        yield patterns
        return
    for start in range(0, num_resamples, BLOCK):
        # 8 fair coin flips per random byte: an eighth of the draws of rng.choice((1, -1), ...)
        bits = np.unpackbits(rng.integers(0, 256, size=(min(BLOCK, num_resamples - start), (n + 7) // 8),
                                          dtype=np.uint8), axis=1, count=n)
        yield 1.0 - 2.0 * bits


def is_exact(n: int, num_resamples: int) -> bool:
    """Whether sign_flip_p_value enumerates every sign pattern for n pairs."""
    return n <= EXACT_LIMIT and 2**n <= num_resamples


def sign_flip_p_value(a: np.ndarray, b: np.ndarray, num_resamples: int = DEFAULT_RESAMPLES,
                      seed: int | None = 0) -> float:
    """Two-sided paired permutation (sign-flip) test of mean(b - a) = 0 (see the module docstring)."""
    return sign_flip_p_values({"_": a}, {"_": b}, num_resamples, seed)["_"]


def sign_flip_p_values(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
                       num_resamples: int = DEFAULT_RESAMPLES, seed: int | None = 0) -> dict[str, float]:
    """sign_flip_p_value for each metric, all metrics on the same sign patterns."""
    if num_resamples < 1:
        raise ValueError(f"need num_resamples >= 1, got {num_resamples}")
    names = list(a)
    differences = np.column_stack([np.subtract(*_check_pair(b[name], a[name])) for name in names])
    n = len(differences)
    observed = np.abs(differences.mean(axis=0))
    threshold = observed - TIE_EPSILONS * np.finfo(np.float64).eps * observed
    hits, drawn = np.zeros(len(names)), 0
    for signs in _sign_patterns(n, num_resamples, np.random.default_rng(seed)):
        hits += (np.abs(signs @ differences / n) >= threshold).sum(axis=0)
        drawn += len(signs)
    p = hits / drawn if is_exact(n, num_resamples) else (hits + 1) / (drawn + 1)
    return {name: float(p[i]) for i, name in enumerate(names)}


def user_means(scores: Mapping[str, np.ndarray], users: Sequence[Hashable]) -> tuple[list[str], dict[str, np.ndarray]]:
    """(sorted user names, {metric: each user's mean score}): the units for a test where each user counts once."""
    names, inverse = np.unique(np.asarray(users, dtype=object).astype(str), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(names))
    means = {metric: np.bincount(inverse, weights=np.asarray(values, dtype=np.float64), minlength=len(names)) / counts
             for metric, values in scores.items()}
    return names.tolist(), means


def compare(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], num_resamples: int = DEFAULT_RESAMPLES,
            confidence: float = DEFAULT_CONFIDENCE, seed: int | None = 0) -> dict:
    """Per metric: {"a", "b" (means), "difference" (b - a), "low", "high" (bootstrap), "p_value" (sign flip)}."""
    intervals = paired_bootstrap_intervals(a, b, num_resamples, confidence, seed)
    p_values = sign_flip_p_values(a, b, num_resamples, seed)
    return {
        name: {"a": float(np.mean(a[name])), "b": float(np.mean(b[name])),
               "difference": float(np.mean(np.subtract(b[name], a[name]))),
               "low": intervals[name][0], "high": intervals[name][1], "p_value": p_values[name]}
        for name in a
    }


def settings(n: int, num_resamples: int, confidence: float, seed: int | None) -> dict:
    """What the numbers of `compare` mean, for an output file."""
    return {
        "difference": "mean over paired units of b - a",
        "interval": f"percentile bootstrap, {num_resamples} resamples of the {n} pairs, confidence {confidence}",
        "p_value": ("paired permutation (sign-flip) test, two-sided, "
                    + ("exact: all 2^n sign patterns" if is_exact(n, num_resamples)
                       else f"{num_resamples} random sign patterns, p = (1 + hits) / (1 + {num_resamples})")),
        "num_resamples": num_resamples, "confidence": confidence, "seed": seed, "units": n,
    }


def paired_report(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], users: Sequence[Hashable] | None = None,
                  num_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                  seed: int | None = 0) -> dict:
    """`compare` with its `settings`, over the examples and, given each example's user, over per-user means."""
    n = len(next(iter(a.values())))
    report = {"settings": settings(n, num_resamples, confidence, seed),
              "metrics": compare(a, b, num_resamples, confidence, seed)}
    if users is not None:
        names, user_a = user_means(a, users)
        _, user_b = user_means(b, users)
        report["by_user"] = {"settings": settings(len(names), num_resamples, confidence, seed),
                             "metrics": compare(user_a, user_b, num_resamples, confidence, seed)}
    return report
