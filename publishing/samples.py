"""Per-sample scores of a scored run variant: one JSON line per example (id, user, prediction length, every
per-sample metric), computed with the project's scorer from the predictions and the golds the run wrote.

Golds stay local: only the scores derived from them are published. The paired difference between the variants
with and without profile is bootstrapped over the same examples.
"""

from __future__ import annotations

import json
from pathlib import Path

from publishing.runs import Result, RunFolderReadError, read_json

PER_SAMPLE_FILE = "per_sample_scores.jsonl"


def _outputs(path: Path) -> list[dict]:
    golds = read_json(path).get("golds")
    if not isinstance(golds, list):
        raise RunFolderReadError(f"{path}: no 'golds' list (not a predictions file in the benchmark's format)")
    return golds


def write_per_sample_scores(result: Result) -> Path | None:
    """Write (or keep, when it is already complete) `per_sample_scores.jsonl` beside a variant's predictions.

    None when the variant has no golds on disk (a test split), so nothing can be scored per sample.
    """
    if result.folder is None or not (result.folder / "golds.json").is_file() or not result.metrics:
        return None
    from evaluation.metrics import PER_SAMPLE_METRICS, per_sample_scores

    target = result.folder / PER_SAMPLE_FILE
    predictions = _outputs(result.folder / "predictions.json")
    golds = {entry["id"]: entry for entry in _outputs(result.folder / "golds.json")}
    metrics = [m for m in result.metrics if m in PER_SAMPLE_METRICS]
    if target.is_file() and len(read_per_sample_scores(target)) == len(predictions):
        return target
    missing = [entry["id"] for entry in predictions if entry["id"] not in golds]
    if missing:
        raise RunFolderReadError(f"{result.folder / 'golds.json'}: no reference for id {missing[0]!r}")
    texts = [entry["output"] for entry in predictions]
    scores = per_sample_scores(texts, [golds[entry["id"]]["output"] for entry in predictions], metrics=metrics)
    lines = []
    for index, entry in enumerate(predictions):
        line = {"id": entry["id"], "user": golds[entry["id"]].get("user"),
                "prediction_words": len(texts[index].split())}
        line.update({metric: float(scores[metric][index]) for metric in metrics})
        lines.append(json.dumps(line, ensure_ascii=False))
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(target)
    return target


def read_per_sample_scores(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def paired_difference(with_profile: Result, without_profile: Result, seed: int = 0) -> dict | None:
    """{metric: {"difference", "low", "high"}}: mean of (with - without) over shared ids, 95% bootstrap interval."""
    import numpy as np

    from evaluation.aggregate import bootstrap_intervals

    paths = [r.folder / PER_SAMPLE_FILE if r.folder else None for r in (with_profile, without_profile)]
    if not all(p is not None and p.is_file() for p in paths):
        return None
    ours, theirs = ({row["id"]: row for row in read_per_sample_scores(p)} for p in paths)
    ids = [i for i in ours if i in theirs]
    metrics = [m for m in with_profile.metrics if ids and m in ours[ids[0]] and m in theirs[ids[0]]]
    if not metrics:
        return None
    columns = {m: np.array([ours[i][m] - theirs[i][m] for i in ids]) for m in metrics}
    intervals = bootstrap_intervals(columns, 1000, 0.95, seed)
    return {m: {"difference": float(np.mean(columns[m])), **intervals[m]} for m in metrics}
