"""Two systems scored on the same examples, compared per metric: b - a with a paired bootstrap interval and a
sign-flip p-value (scoring/significance.py), by example and, on request, by user."""

from __future__ import annotations

from longlamp_errors import DataError
from scoring import files, metrics, significance


def comparison(golds: files.TaskFile, a: files.TaskFile, b: files.TaskFile, metric_names, num_resamples: int,
               confidence: float, seed: int, by_user: bool, num_workers: int | None = None) -> dict:
    """Score both systems on the golds and compare them (compare.py's JSON output)."""
    task = files.check_task(golds, a)
    files.check_task(golds, b)
    if by_user and golds.users is None:
        raise DataError(f"{golds.path}: --by_user needs a 'user' field in every gold entry")
    scores = [metrics.per_sample_scores(files.predictions_in_gold_order(golds, p), golds.outputs,
                                        metrics=metric_names, num_workers=num_workers, progress=True)
              for p in (a, b)]
    report = significance.paired_report(*scores, golds.users if by_user else None, num_resamples, confidence, seed)
    result = {"task": task, "golds": golds.path, "preds_a": a.path, "preds_b": b.path, **report}
    return result


def table(result: dict) -> str:
    """The comparison as a plain-text table."""
    lines = []
    for title, part in [("examples", result)] + ([("users", result["by_user"])] if "by_user" in result else []):
        lines.append(f"{part['settings']['units']} {title}: b - a, {part['settings']['confidence']:.0%} interval, "
                     "p-value")
        for name, row in part["metrics"].items():
            lines.append(f"  {name:10} a {row['a']:.4f}  b {row['b']:.4f}  b-a {row['difference']:+.4f} "
                         f"[{row['low']:+.4f}, {row['high']:+.4f}]  p {row['p_value']:.4g}")
    return "\n".join(lines)
