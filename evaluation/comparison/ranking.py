"""Grouping runs by config and ranking each group: mean with the scorer's bootstrap interval, and paired sign-flip
tests against the group's best run and against the run's own no-profile baseline, each family adjusted.

Runs are ranked together only when they were scored on the same split, data, examples and scorer versions; a
config's largest such group is its main ranking, each other group is ranked apart with the reason.

A group (one table) holds two families of comparisons, each keeping its family-wise error rate at
`significance.LEVEL` (scoring/significance.py, single-step max-T sign-flip test): "vs best" is read from the family
of every pairwise difference among the table's runs, since the best run is chosen after looking at the scores;
"vs no profile" is the family of the table's runs that have a no-profile baseline. The interval of each run's mean
is the scorer's (the same resamples and seed as scores.json's, `aggregate.BOOTSTRAP_RESAMPLES`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from evaluation.comparison.runs import Run
from scoring import aggregate, significance
from scoring.significance import DEFAULT_RESAMPLES


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


def rank_group(group: Group, metric: str, num_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """{"rows": the group's rows, best first (mean, interval, difference and adjusted p-value against the best and
    the baseline), "families": what each family of p-values holds}."""
    ids = group.runs[0].ids
    for run in group.runs:
        if metric not in run.scores:
            raise ValueError(f"{run.where}: no per-sample {metric!r} scores (it has {', '.join(run.scores)})")
    ordered = sorted(group.runs, key=lambda run: -float(np.mean(run.values(metric, ids))))
    values = [run.values(metric, ids) for run in ordered]
    p_vs_best = (significance.pairwise_max_t_p_values(dict(enumerate(values)), 0, num_resamples, seed)
                 if len(ordered) > 1 else {})
    gains = {}
    for rank, run in enumerate(ordered):
        baseline = run.baseline
        if baseline is not None and sorted(baseline.ids) == sorted(ids) and metric in baseline.scores:
            gains[rank] = values[rank] - baseline.values(metric, ids)
    p_vs_no_profile = significance.max_t_p_values(gains, num_resamples, seed)
    rows = []
    for rank, (run, mine) in enumerate(zip(ordered, values)):
        interval = aggregate.bootstrap_intervals({metric: mine}, aggregate.BOOTSTRAP_RESAMPLES, 0.95, seed)[metric]
        rows.append({"rank": rank + 1, "run": run.name, "path": run.where, "kind": run.kind, "model": run.model,
                     "retriever": run.retriever or "none", "k": run.k, "examples": len(mine),
                     "mean": float(np.mean(mine)), "low": interval["low"], "high": interval["high"],
                     "vs_best": float(np.mean(mine - values[0])) if rank else None,
                     "p_vs_best": p_vs_best.get(rank), "vs_no_profile": float(np.mean(gains[rank])) if rank in gains
                     else None, "p_vs_no_profile": p_vs_no_profile.get(rank)})
    pairs = len(ordered) * (len(ordered) - 1) // 2
    families = {
        "vs_best": significance.family_settings(f"the {pairs} pairwise differences among the table's runs", pairs,
                                                len(ids), num_resamples, seed),
        "vs_no_profile": significance.family_settings(f"the table's {len(gains)} runs against their own no-profile "
                                                      "run", len(gains), len(ids), num_resamples, seed),
    }
    return {"rows": rows, "families": families}
