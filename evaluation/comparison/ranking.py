"""Grouping runs by config and ranking each group: mean with its bootstrap interval, and the paired sign-flip test
against the group's best run and against the run's own no-profile baseline.

Runs are ranked together only when they were scored on the same split, data, examples and scorer versions; a
config's largest such group is its main ranking, each other group is ranked apart with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from evaluation.comparison.runs import Run
from scoring import aggregate, significance

DEFAULT_RESAMPLES = 1000


@dataclass
class Group:
    """Runs of one config that may be ranked together, and why they are apart from the config's main group."""

    key: tuple
    runs: list[Run] = field(default_factory=list)
    apart: str | None = None


def group_runs(runs: list[Run]) -> dict[str, list[Group]]:
    """{config: groups}; the first group of a config is its largest, the others say why they stand apart."""
    by_task: dict[str, dict[tuple, Group]] = {}
    for run in runs:
        key = (run.split, run.data, json.dumps(run.scorer, sort_keys=True), tuple(sorted(run.ids)))
        by_task.setdefault(run.task, {}).setdefault(key, Group(key)).runs.append(run)
    result = {}
    for task, groups in by_task.items():
        ordered = sorted(groups.values(), key=lambda g: -len(g.runs))
        main = ordered[0].key
        for group in ordered[1:]:
            reasons = []
            for index, what in ((0, "split"), (1, "data")):
                if group.key[index] != main[index]:
                    reasons.append(f"{what} {group.key[index]!r} (the main ranking: {main[index]!r})")
            if group.key[2] != main[2]:
                reasons.append(f"scorer {group.key[2]} (the main ranking: {main[2]})")
            if group.key[3] != main[3] and not reasons:
                reasons.append(f"other examples ({len(group.key[3])} ids, the main ranking {len(main[3])})")
            group.apart = "scored on " + "; ".join(reasons)
        result[task] = ordered
    return result


def rank_group(group: Group, metric: str, num_resamples: int, seed: int) -> list[dict]:
    """The group's rows, best first: mean, interval, difference and p-value against the best and the baseline."""
    ids = group.runs[0].ids
    for run in group.runs:
        if metric not in run.scores:
            raise ValueError(f"{run.where}: no per-sample {metric!r} scores (it has {', '.join(run.scores)})")
    values = {id(run): run.values(metric, ids) for run in group.runs}
    ordered = sorted(group.runs, key=lambda run: -float(np.mean(values[id(run)])))
    best = values[id(ordered[0])]
    rows = []
    for rank, run in enumerate(ordered, 1):
        mine = values[id(run)]
        interval = aggregate.bootstrap_intervals({metric: mine}, num_resamples, 0.95, seed)[metric]
        row = {"rank": rank, "run": run.name, "path": run.where, "kind": run.kind, "model": run.model,
               "retriever": run.retriever or "none", "k": run.k, "examples": len(mine), "mean": float(np.mean(mine)),
               "low": interval["low"], "high": interval["high"], "vs_best": None, "p_vs_best": None,
               "vs_no_profile": None, "p_vs_no_profile": None}
        if rank > 1:
            row.update(vs_best=_difference(best, mine), p_vs_best=_p_value(best, mine, num_resamples, seed))
        baseline = run.baseline
        if baseline is not None and sorted(baseline.ids) == sorted(ids) and metric in baseline.scores:
            theirs = baseline.values(metric, ids)
            row.update(vs_no_profile=_difference(theirs, mine), p_vs_no_profile=_p_value(theirs, mine, num_resamples,
                                                                                          seed))
        rows.append(row)
    return rows


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(b - a))


def _p_value(a: np.ndarray, b: np.ndarray, num_resamples: int, seed: int) -> float:
    return significance.sign_flip_p_value(a, b, num_resamples, seed)
