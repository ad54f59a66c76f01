"""Per-sample scores of a scored run variant, as published: scoring/per_sample.py's file beside its predictions.

Zero-shot runs write that file while scoring; for a run folder that lacks it (written by an older version) it is
computed here once with the project's scorer from the predictions and the golds the run wrote. Golds stay local:
only the scores derived from them are published. The paired difference between the variants with and without
profile is bootstrapped over the same examples.
"""

from __future__ import annotations

from pathlib import Path

from longlamp_errors import RunFolderError
from longlamp_runs import GOLDS_FILE, PER_SAMPLE_FILE, PREDICTIONS_FILE
from publishing.runs import Result, read_json
from scoring import per_sample


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
    """{metric: {"difference", "low", "high"}}: mean of (with - without) over shared ids, 95% bootstrap interval."""
    import numpy as np

    from scoring.aggregate import paired_difference as paired

    paths = [r.folder / PER_SAMPLE_FILE if r.folder else None for r in (with_profile, without_profile)]
    if not all(p is not None and p.is_file() for p in paths):
        return None
    (ours_ids, _, ours), (their_ids, _, theirs) = (per_sample.read(p) for p in paths)
    position = {example_id: i for i, example_id in enumerate(their_ids)}
    shared = [(i, position[example_id]) for i, example_id in enumerate(ours_ids) if example_id in position]
    metrics = [m for m in with_profile.metrics if shared and m in ours and m in theirs]
    if not metrics:
        return None
    mine, other = (np.array(index) for index in zip(*shared))
    return paired({m: ours[m][mine] for m in metrics}, {m: theirs[m][other] for m in metrics}, 1000, 0.95, seed)
