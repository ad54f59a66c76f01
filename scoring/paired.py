"""Two systems scored on the same examples, compared per metric: b - a with a paired bootstrap interval and a
sign-flip p-value (scoring/significance.py), by example and, on request, by user: from prediction files
(`comparison`, compare.py) or from two runs' per-sample files (`read_pair`, what comparison.json, the cards and the
runner's results.md pair)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from longlamp_errors import DataError
from scoring import files, per_sample, significance


@dataclass
class Pair:
    """Two runs' per-sample scores on the same examples, both in the order of `ids` (a's file order)."""

    ids: list[str]
    users: list[str | None]
    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]


def read_pair(a_scores: str | os.PathLike, b_scores: str | os.PathLike, a_golds: str | os.PathLike | None = None,
              b_golds: str | os.PathLike | None = None) -> Pair:
    """Two per-sample files as a Pair over the metrics both hold. Refused: an id twice in a file, files of different
    examples, and (given both runs' gold files) references that differ for an id: such runs cannot be paired."""
    a_ids, users, a = per_sample.read(a_scores)
    b_ids, _, b = per_sample.read(b_scores)
    for path, ids in ((a_scores, a_ids), (b_scores, b_ids)):
        if len(set(ids)) != len(ids):
            twice = sorted(i for i, count in Counter(ids).items() if count > 1)
            raise DataError(f"{path}: id {twice[0]!r} appears more than once; a per-sample file has one row per "
                            "example")
    if set(a_ids) != set(b_ids):
        only = sorted(set(a_ids) ^ set(b_ids))
        raise DataError(f"{a_scores} and {b_scores} scored different examples ({len(a_ids)} and {len(b_ids)} ids; "
                        f"{len(only)} in one only, e.g. {only[0]!r}): they cannot be paired")
    if a_golds is not None and b_golds is not None:
        references = [dict(zip(t.ids, t.outputs)) for t in (files.read_task_file(path, "golds")
                                                            for path in (a_golds, b_golds))]
        differing = [i for i in a_ids if references[0].get(i) != references[1].get(i)]
        if differing:
            raise DataError(f"{a_golds} and {b_golds} hold different references for {len(differing)} example(s), e.g. "
                            f"{differing[0]!r}: runs scored on different golds cannot be paired")
    position = {example_id: index for index, example_id in enumerate(b_ids)}
    order = np.array([position[example_id] for example_id in a_ids])
    names = [name for name in a if name in b]
    return Pair(a_ids, users, {name: a[name] for name in names}, {name: b[name][order] for name in names})


def comparison(golds: files.TaskFile, a: files.TaskFile, b: files.TaskFile, metric_names, num_resamples: int,
               confidence: float, seed: int, by_user: bool, num_workers: int | None = None) -> dict:
    """Score both systems on the golds and compare them (compare.py's JSON output)."""
    from scoring import metrics  # here: NLTK's import takes a second, and read_pair's callers need none of it

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
