"""Paired significance between systems scored on the same examples: pure functions over per-sample scores.

**One comparison of two systems** (`compare`: what comparison.json, the cards, the runner's results.md and the
leaderboard show for a pair, with one default number of resamples). For each metric the effect is the mean of the
paired differences d_i = b_i - a_i (system b minus system a):

- `paired_bootstrap_interval`: percentile bootstrap of mean(d): the examples are resampled with replacement
  (the same resamples for every metric), as scipy.stats.bootstrap(paired=True, method="percentile") does. It
  is the scorer's bootstrap (`aggregate.bootstrap_intervals`) run on the differences. It is the interval of
  this one comparison: not adjusted for the others a page shows.
- `sign_flip_p_value`: the paired permutation test. Under "no difference" each pair's two scores are
  exchangeable, so each d_i keeps or flips its sign; the two-sided p-value is the share of sign patterns whose
  |mean| reaches the observed |mean(d)|. All 2^n patterns are enumerated when 2^n <= num_resamples (exact);
  otherwise num_resamples random patterns are drawn and p = (1 + hits) / (1 + num_resamples), which counts the
  observed pattern and is never 0 (Phipson & Smyth 2010). Ties are judged with scipy's relative tolerance
  (100 machine epsilons). This is scipy.stats.permutation_test(permutation_type="samples") for the mean
  difference.
- `user_means`: per-user averages of both systems, so that each user counts once (then the same tests run
  with users as the paired units).

**A family of comparisons** (a page that marks several comparisons at once) keeps its family-wise error rate (the
chance of marking any comparison without a real difference) at the level it states with a single-step max-T
sign-flip test (Westfall & Young 1993, single-step maxT adjusted p-values; sign flipping as in Nichols & Holmes
2002 and Winkler et al. 2014). Each comparison j is studentized by its sign-flip standard error,
t_j = sum(d_j) / sqrt(sum(d_j^2)) (the denominator is the same for every sign pattern, so a family of one is the
test above); the same sign patterns flip every comparison of the family at once, which keeps the dependence
between comparisons on the same examples; comparison j's adjusted p-value is the share of patterns whose largest
|t*| over the family reaches |t_j| (with the same +1 as above). An adjusted p-value is read from one max
distribution, so its smallest value is 1 / (1 + num_resamples) whatever the family's size: unlike Bonferroni or
Holm, the correction can pass with any number of comparisons, and the resamples only set the Monte Carlo error
(about 0.002 at p = 0.05 with 10,000).

- `max_t_p_values`: a family of given paired differences (each run against its own no-profile run, and the
  metrics of a page).
- `pairwise_max_t_p_values`: the family of all pairwise differences among systems, read for the comparisons with
  one of them. The leaderboard's "vs best" uses it: the best run is chosen after looking at the data, and
  controlling every pairwise comparison controls those with whichever run came out best (the selection problem of
  White 2000; Hsu 1996 for comparisons with the best).

Validity: a single comparison is exact under exchangeability. Flipping every comparison with one sign per example
is exact when the vector of a family's differences is symmetric under the null and otherwise asymptotically valid
(the means of hundreds of examples are close to normal, and the sign flips keep their covariance); taking the max
over comparisons that are not null only raises the critical value, so the control is strong, not only under the
complete null (Romano & Wolf 2005). tests/test_significance_families.py simulates identical systems and checks
the family-wise error rate against the level.

Defaults: 10,000 resamples, 95% confidence, seed 0; every result records them.
"""

from __future__ import annotations

import itertools
from typing import Hashable, Mapping, Sequence

import numpy as np

from scoring.aggregate import bootstrap_intervals

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95
LEVEL = 0.05  # a comparison is marked when its (adjusted) p-value is below this
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
    names = list(a)
    differences = np.column_stack([np.subtract(*_check_pair(b[name], a[name])) for name in names])
    p = _flip_test(differences, num_resamples, seed)[0]
    return {name: float(p[i]) for i, name in enumerate(names)}


def max_t_p_values(differences: Mapping[Hashable, np.ndarray], num_resamples: int = DEFAULT_RESAMPLES,
                   seed: int | None = 0) -> dict[Hashable, float]:
    """Family-wise adjusted p-values of paired differences on the same examples (one array per comparison, b - a):
    the single-step max-T sign-flip test of the module docstring. A family of one gives sign_flip_p_value."""
    names = list(differences)
    if not names:
        return {}
    columns = [np.asarray(differences[name], dtype=np.float64) for name in names]
    if any(c.ndim != 1 or len(c) == 0 or len(c) != len(columns[0]) for c in columns):
        raise ValueError(f"a family needs 1-d differences of one non-zero length, got {[c.shape for c in columns]}")
    p = _flip_test(np.column_stack(columns), num_resamples, seed)[1]
    return {name: float(p[i]) for i, name in enumerate(names)}


def _flip_test(differences: np.ndarray, num_resamples: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(each column's own p-values, the family's max-T adjusted p-values) of an (examples x comparisons) matrix."""
    if num_resamples < 1:
        raise ValueError(f"need num_resamples >= 1, got {num_resamples}")
    n = len(differences)
    norms = np.sqrt(np.square(differences).sum(axis=0))
    scale = np.where(norms > 0, norms, np.inf)  # a difference that is 0 everywhere: t = 0 under every pattern
    observed = np.abs(differences.sum(axis=0)) / scale
    threshold = observed - TIE_EPSILONS * np.finfo(np.float64).eps * observed
    own, family, drawn = np.zeros(len(observed)), np.zeros(len(observed)), 0
    for signs in _sign_patterns(n, num_resamples, np.random.default_rng(seed)):
        flipped = np.abs(signs @ differences) / scale
        own += (flipped >= threshold).sum(axis=0)
        family += (flipped.max(axis=1)[:, None] >= threshold).sum(axis=0)
        drawn += len(signs)
    return _p_values(own, drawn, n, num_resamples), _p_values(family, drawn, n, num_resamples)


def _p_values(hits: np.ndarray, drawn: int, n: int, num_resamples: int) -> np.ndarray:
    return hits / drawn if is_exact(n, num_resamples) else (hits + 1) / (drawn + 1)


def pairwise_max_t_p_values(scores: Mapping[Hashable, np.ndarray], reference: Hashable,
                            num_resamples: int = DEFAULT_RESAMPLES, seed: int | None = 0) -> dict[Hashable, float]:
    """{system: adjusted p-value of system - reference} for every other system, the family being every pairwise
    difference among `scores` (all systems scored on the same examples, in the same order): so the reference may be
    chosen after looking at the scores, as the leaderboard's best run is.

    Each system's flipped sums are computed once (sign patterns x systems), and the pairwise differences from
    them; a pair's sums then carry rounding the direct difference would not, so a pattern within that rounding of
    the threshold counts as reaching it (the p-value can only grow)."""
    names = list(scores)
    if reference not in scores or len(names) < 2:
        raise ValueError(f"pairwise comparisons need at least two systems, the reference among them, got {names}")
    columns = [np.asarray(scores[name], dtype=np.float64) for name in names]
    if any(c.ndim != 1 or len(c) == 0 or len(c) != len(columns[0]) for c in columns):
        raise ValueError(f"pairwise comparisons need 1-d scores of one non-zero length, got "
                         f"{[c.shape for c in columns]}")
    matrix = np.column_stack(columns)
    centred = matrix - matrix.mean(axis=1, keepdims=True)  # smaller sums to round; differences unchanged
    n, m = centred.shape
    norms = np.zeros((m, m))
    for k in range(m - 1):
        norms[k, k + 1:] = np.sqrt(np.square(centred[:, k:k + 1] - centred[:, k + 1:]).sum(axis=0))
    norms += norms.T
    scale = np.where(norms > 0, norms, np.inf)
    r = names.index(reference)
    others = [j for j in range(m) if j != r]
    totals, mass = centred.sum(axis=0), np.abs(centred).sum(axis=0)
    observed = np.abs(totals[r] - totals[others]) / scale[r, others]
    rounding = n * np.finfo(np.float64).eps * (mass[r] + mass[others]) / scale[r, others]
    threshold = observed - TIE_EPSILONS * np.finfo(np.float64).eps * observed - rounding
    hits, drawn = np.zeros(len(others)), 0
    for signs in _sign_patterns(n, num_resamples, np.random.default_rng(seed)):
        sums = signs @ centred
        largest = np.zeros(len(signs))
        for k in range(m - 1):
            largest = np.maximum(largest, (np.abs(sums[:, k:k + 1] - sums[:, k + 1:]) / scale[k, k + 1:]).max(axis=1))
        hits += (largest[:, None] >= threshold).sum(axis=0)
        drawn += len(signs)
    p = _p_values(hits, drawn, n, num_resamples)
    return {names[j]: float(p[i]) for i, j in enumerate(others)}


def family_settings(family: str, size: int, units: int, num_resamples: int, seed: int | None) -> dict:
    """What a page's adjusted p-values mean, for its legend and output file."""
    return {
        "family": family, "comparisons": size,
        "correction": (f"single-step max-T sign-flip test (Westfall & Young 1993): family-wise error rate at most "
                       f"{LEVEL} over the family; "
                       + (f"exact: all 2^{units} sign patterns" if is_exact(units, num_resamples)
                          else f"{num_resamples} random sign patterns of the {units} examples, seed {seed}")),
        "num_resamples": num_resamples, "seed": seed, "level": LEVEL,
    }


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
