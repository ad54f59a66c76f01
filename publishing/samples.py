"""Per-sample scores of a scored run variant, as published: scoring/per_sample.py's file beside its predictions.

Zero-shot runs write that file while scoring; for a run folder that lacks it (written by an older version) it is
computed here once with the project's scorer from the predictions and the golds the run wrote. Golds stay local:
only the scores derived from them are published. The paired difference between the variants with and without
profile is scoring/significance.py's one paired comparison over the same examples.
"""

from __future__ import annotations

from pathlib import Path

from longlamp_errors import RunFolderError
from longlamp_runs import GOLDS_FILE, PER_SAMPLE_FILE, PREDICTIONS_FILE
from publishing.runs import Result, read_json
from scoring import per_sample
from scoring.paired import read_pair
from scoring.significance import compare


def _outputs(path: Path) -> list[dict]:
    golds = read_json(path).get("golds")
    if not isinstance(golds, list):
        raise RunFolderError(f"{path}: no 'golds' list (not a predictions file in the benchmark's format)")
    return golds


def write_per_sample_scores(result: Result) -> Path | None:
    """The variant's per-sample file, written when it is missing or incomplete.

    None when the variant has no golds on disk (a test split), so nothing can be scored per sample.
    """
    if result.folder is None or not (result.folder / GOLDS_FILE).is_file() or not result.metrics:
        return None
    from scoring.metrics import PER_SAMPLE_METRICS, per_sample_scores

    target = result.folder / PER_SAMPLE_FILE
    predictions = _outputs(result.folder / PREDICTIONS_FILE)
    if target.is_file() and len(per_sample.read(target)[0]) == len(predictions):
        return target
    golds = {entry["id"]: entry for entry in _outputs(result.folder / GOLDS_FILE)}
    missing = [entry["id"] for entry in predictions if entry["id"] not in golds]
    if missing:
        raise RunFolderError(f"{result.folder / GOLDS_FILE}: no reference for id {missing[0]!r}")
    ids, texts = [entry["id"] for entry in predictions], [entry["output"] for entry in predictions]
    metrics = [m for m in result.metrics if m in PER_SAMPLE_METRICS]
    scores = per_sample_scores(texts, [golds[i]["output"] for i in ids], metrics=metrics)
    per_sample.write(target, per_sample.rows(ids, texts, scores, [golds[i].get("user") for i in ids]))
    return target


def paired_difference(with_profile: Result, without_profile: Result, seed: int = 0) -> dict | None:
    """{metric: {"a", "b", "difference", "low", "high", "p_value"}}: with minus without profile over the same
    examples, scoring/significance.py's one paired comparison (its default resamples, as comparison.json, results.md
    and the leaderboard show it); None when a variant has no per-sample scores (a test split)."""
    folders = [r.folder for r in (without_profile, with_profile)]
    if not all(f is not None and (f / PER_SAMPLE_FILE).is_file() for f in folders):
        return None
    golds = [f / GOLDS_FILE for f in folders]
    pair = read_pair(*(f / PER_SAMPLE_FILE for f in folders), *(golds if all(g.is_file() for g in golds) else ()))
    metrics = [m for m in with_profile.metrics if m in pair.a]
    if not metrics:
        return None
    return compare({m: pair.a[m] for m in metrics}, {m: pair.b[m] for m in metrics}, seed=seed)
