"""Corpus-level numbers from per-sample scores: the exact mean, a seeded bootstrap, evaluate's value, per user.

- The headline number is the mean of the per-sample scores (numpy's mean, as evaluate's `meteor` and
  `rouge(use_aggregator=False)` users compute it): no randomness.
- `bootstrap_intervals` resamples samples with replacement from a seeded generator (the same resamples for
  every metric) and gives a confidence interval around that mean.
- `evaluate_compatible_rouge` reproduces evaluate's default `rouge` value, the median of rouge_score's
  BootstrapAggregator, which draws from numpy's global RNG: evaluate's own value changes from run to run
  unless `np.random.seed(seed)` was called just before; this function equals it for that seed, with the
  samples in the same order, without touching the global RNG.
- `per_user_means` averages within each user first, so that every user counts once.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000  # the scorer's interval of a mean (scores.json, the leaderboard's runs); a paired
# difference has its own, scoring/significance.py's DEFAULT_RESAMPLES
EVALUATE_RESAMPLES = 1000  # rouge_score.scoring.BootstrapAggregator defaults, which evaluate uses
EVALUATE_CONFIDENCE = 0.95
RESAMPLE_BLOCK = 50  # resamples drawn at once: bounds memory to RESAMPLE_BLOCK * n indices


def mean(values: np.ndarray) -> float:
    """The exact headline number: numpy's mean of the per-sample scores."""
    return float(np.mean(values))


def bootstrap_intervals(
    columns: Mapping[str, np.ndarray], num_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = 0.95,
    seed: int | None = 0,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap of the mean: {metric: {"low", "high"}}; metrics share the resampled samples."""
    if num_resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need num_resamples >= 1 and 0 < confidence < 1, got {num_resamples}, {confidence}")
    names = list(columns)
    matrix = np.column_stack([columns[name] for name in names])
    rng = np.random.default_rng(seed)
    means = np.empty((num_resamples, len(names)))
    for start in range(0, num_resamples, RESAMPLE_BLOCK):
        stop = min(start + RESAMPLE_BLOCK, num_resamples)
        indices = rng.integers(0, len(matrix), size=(stop - start, len(matrix)))
        means[start:stop] = matrix[indices].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return {name: {"low": float(low[i]), "high": float(high[i])} for i, name in enumerate(names)}


def evaluate_compatible_rouge(rouge: Mapping[str, np.ndarray], seed: int | None) -> dict[str, float]:
    """evaluate's `rouge` value for each type, as it returns it with `np.random.seed(seed)` called before
    `evaluate.load("rouge")` (evaluate takes its seed when the module loads; seed None: unseeded, random).

    `rouge` maps each ROUGE type, in the order evaluate was given them, to its (n, 3) array of precision,
    recall and F-measure; the draws follow rouge_score's BootstrapAggregator step by step.
    """
    state = np.random.RandomState(seed)
    delta = (1 - EVALUATE_CONFIDENCE) / 2
    quantiles = 100 * np.array([delta, 0.5, 1 - delta])
    values = {}
    for rouge_type, matrix in rouge.items():
        sample_mean = np.zeros((EVALUATE_RESAMPLES, matrix.shape[1]))
        for i in range(EVALUATE_RESAMPLES):
            sample_idx = state.choice(np.arange(matrix.shape[0]), size=matrix.shape[0])
            sample_mean[i, :] = np.mean(matrix[sample_idx, :], axis=0)
        values[rouge_type] = float(np.percentile(sample_mean, quantiles, axis=0)[1, 2])  # mid, F-measure
    return values


def per_user_means(columns: Mapping[str, np.ndarray], user_ids: Sequence[Hashable]) -> dict:
    """Each metric averaged per user, then over users (macro average): {"num_users", "metrics"}."""
    users, inverse = np.unique(np.asarray(user_ids, dtype=object).astype(str), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(users))
    metrics = {
        name: float(np.mean(np.bincount(inverse, weights=values, minlength=len(users)) / counts))
        for name, values in columns.items()
    }
    return {"num_users": len(users), "metrics": metrics}
