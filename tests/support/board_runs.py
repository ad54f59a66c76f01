"""Zero-shot run folders with per-sample scores, as the leaderboard reads them, for the leaderboard's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from longlamp_runs import PER_SAMPLE_FILE
from scoring import metrics, per_sample
from support.records import write_summary, zero_shot_record

TASK = "LongLaMP_product_review_user"
CONFIG = "product_review_user"
IDS = [f"id-{i}" for i in range(40)]


def zero_shot_run(folder: Path, level: float, seed: int, retriever: str | None = "bm25", k: int | None = 1,
                  split: str = "validation", nltk_version: str | None = None, model: str = "tiny",
                  data: str = CONFIG, ranked_by: str | None = None) -> dict:
    """A zero-shot run folder as evaluation/zero_shot/ writes it, with a per-sample file; returns its scores."""
    rng = np.random.default_rng(seed)
    scores = {name: np.clip(rng.normal(level, 0.05, len(IDS)), 0, 1) for name in metrics.PER_SAMPLE_METRICS}
    per_sample.write(folder / PER_SAMPLE_FILE, per_sample.rows(IDS, ["a b c"] * len(IDS), scores))
    write_summary(folder, zero_shot_record(CONFIG, split, model, data, retriever, k, ranked_by),
                  scorer_report(scores, nltk_version))
    return scores


def scorer_report(scores: dict, nltk_version: str | None = None) -> dict:
    """The scorer's report of per-sample scores (scoring.metrics.score's keys; the exact means)."""
    versions = metrics.library_versions(metrics.PER_SAMPLE_METRICS, "python")
    if nltk_version:
        versions["nltk"] = nltk_version
    return {"num_samples": len(next(iter(scores.values()))),
            "metrics": {name: float(np.mean(values)) for name, values in scores.items()},
            "versions": versions, "settings": metrics.scoring_settings(metrics.PER_SAMPLE_METRICS, "python")}
