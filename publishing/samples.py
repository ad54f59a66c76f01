"""Per-sample scores of a scored run variant, as published: scoring/per_sample.py's file beside its predictions.

Zero-shot runs write that file while scoring; for a run folder that lacks it (written by an older version) it is
computed here once with the project's scorer from the predictions and the golds the run wrote. A per-sample file
that is there is checked against the run (scoring.per_sample.read_variant) and never rewritten. Golds stay local:
only the scores derived from them are published. The paired difference between the variants with and without
profile is bootstrapped over the same examples.
"""

from __future__ import annotations

from pathlib import Path

from longlamp_errors import RunFolderError
from longlamp_runs import Variant, per_sample_problem
from scoring import per_sample


def _outputs(path: Path) -> dict[str, str]:
    from scoring.files import read_task_file

    task_file = read_task_file(path, "predictions")
    return dict(zip(task_file.ids, task_file.outputs))


def write_per_sample_scores(variant: Variant) -> Path | None:
    """The variant's per-sample file: checked when it is there, computed when it is missing.

    None when the variant has no golds on disk (a test split, a published copy), so nothing can be scored per
    sample.
    """
    target = variant.per_sample_file
    if target.is_file():
        per_sample.read_variant(variant)  # refused when it is not this run's: nothing is rewritten
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
    """{metric: {"difference", "low", "high"}}: mean of (with - without) over shared ids, 95% bootstrap interval."""
    import numpy as np

    from scoring.aggregate import paired_difference as paired

    if not all(v.per_sample_file.is_file() for v in (with_profile, without_profile)):
        return None
    (ours_ids, _, ours), (their_ids, _, theirs) = (per_sample.read_variant(v) for v in (with_profile, without_profile))
    position = {example_id: i for i, example_id in enumerate(their_ids)}
    shared = [(i, position[example_id]) for i, example_id in enumerate(ours_ids) if example_id in position]
    metrics = [m for m in with_profile.metrics if shared and m in ours and m in theirs]
    if not metrics:
        return None
    mine, other = (np.array(index) for index in zip(*shared))
    return paired({m: ours[m][mine] for m in metrics}, {m: theirs[m][other] for m in metrics}, 1000, 0.95, seed)
