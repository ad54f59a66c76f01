"""Per-sample scores of a scored run variant, as published: scoring/per_sample.py's file beside its predictions.

Zero-shot runs write that file while scoring; for a run folder that lacks it (written by an older version) it is
computed here once with the project's scorer from the predictions and the golds the run wrote. A per-sample file
that is there is checked against the run (scoring.per_sample.read_variant) and never rewritten. Golds stay local:
only the scores derived from them are published. The paired difference between the variants with and without
profile is scoring/significance.py's one paired comparison over the same examples.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from longlamp_errors import RunFolderError
from longlamp_runs import Variant, per_sample_problem
from scoring import per_sample
from scoring.paired import read_pair
from scoring.significance import compare


def _outputs(path: Path) -> dict[str, str]:
    from scoring.files import read_task_file

    task_file = read_task_file(path, "predictions")
    return dict(zip(task_file.ids, task_file.outputs))


def write_per_sample_scores(variant: Variant, target: Path | None = None) -> Path | None:
    """The variant's per-sample file, checked when it is there (and copied to `target` when given), computed into
    `target` (default: beside the predictions) when it is missing; a staged push thereby never writes into the run.

    None when the variant has no golds on disk (a test split, a published copy), so nothing can be scored per
    sample.
    """
    target = target or variant.per_sample_file
    if variant.per_sample_file.is_file():
        ids = per_sample.read_variant(variant)[0]  # refused when it is not this run's: nothing is rewritten
        problem = (per_sample_problem(variant.per_sample_file, ids, None, None, variant.predictions_file)
                   if variant.predictions_file.is_file() else None)
        if problem:  # predictions changed after scoring: the scores are not of these predictions
            raise RunFolderError(f"{problem}: the predictions are not the ones scored; nothing was written")
        if target != variant.per_sample_file:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(variant.per_sample_file, target)
        return target
    if not variant.golds_file.is_file() or not variant.metrics:
        return None
    from scoring.files import read_task_file
    from scoring.metrics import PER_SAMPLE_METRICS, per_sample_scores

    predictions = _outputs(variant.predictions_file)
    golds = read_task_file(variant.golds_file, "golds")
    ids = list(predictions)
    problem = per_sample_problem(target, ids, variant.scores, variant.summary_file, variant.golds_file)
    if problem:
        raise RunFolderError(f"{problem}; no per-sample file was written (from {variant.predictions_file})")
    references, users = dict(zip(golds.ids, golds.outputs)), dict(zip(golds.ids, golds.users or [None] * len(ids)))
    metrics = [m for m in variant.metrics if m in PER_SAMPLE_METRICS]
    texts = [predictions[i] for i in ids]
    scores = per_sample_scores(texts, [references[i] for i in ids], metrics=metrics)
    per_sample.write(target, per_sample.rows(ids, texts, scores, [users[i] for i in ids]))
    return target


def paired_difference(with_profile: Variant, without_profile: Variant, seed: int = 0) -> dict | None:
    """{metric: {"a", "b", "difference", "low", "high", "p_value"}}: with minus without profile over the same
    examples, scoring/significance.py's one paired comparison (its default resamples, as comparison.json, results.md
    and the leaderboard show it); None when a variant has no per-sample scores (a test split)."""
    variants = (without_profile, with_profile)
    if not all(v.per_sample_file.is_file() for v in variants):
        return None
    for variant in variants:
        per_sample.read_variant(variant)  # refused unless it is the run's own per-sample file
    golds = [v.golds_file for v in variants]
    pair = read_pair(*(v.per_sample_file for v in variants), *(golds if all(g.is_file() for g in golds) else ()))
    metrics = [m for m in with_profile.metrics if m in pair.a]
    if not metrics:
        return None
    return compare({m: pair.a[m] for m in metrics}, {m: pair.b[m] for m in metrics}, seed=seed)
