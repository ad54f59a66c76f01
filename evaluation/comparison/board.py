"""Building the leaderboard: find the runs (local folders or Hub repositories), rank them per config, write every
output (leaderboard.md, leaderboard.html, leaderboard.json, <config>.csv and <config>.png) into one folder."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np

from evaluation.comparison.hub_runs import fetch_run, repo_argument
from evaluation.comparison.plots import plot
from evaluation.comparison.ranking import DEFAULT_RESAMPLES, group_runs, rank_group
from evaluation.comparison.runs import Run, Skipped, load_runs
from evaluation.comparison.tables import csv_text, markdown, page
from longlamp_io import write_json_atomic, write_text_atomic
from scoring import files, metrics


def distinct_names(folders: list[Path]) -> dict[Path, str]:
    """Names that tell local run folders apart: each one's path below their common parent, without a last part
    they all share (the experiment runner's runs/<config>/<model>/<variant>/generate are <config>/<model>/<variant>);
    a single folder is named by its last part."""
    parts = [folder.resolve().parts for folder in folders]
    if len(set(parts)) < 2:
        return {folder: folder.name for folder in folders}
    common = len(os.path.commonprefix(parts))
    tails = [p[common:] for p in parts]
    if all(len(tail) > 1 for tail in tails) and len({tail[-1] for tail in tails}) == 1:
        tails = [tail[:-1] for tail in tails]
    return {folder: "/".join(tail) or folder.name for folder, tail in zip(folders, tails)}


def find_runs(sources: list[str | Path], golds_by_task: dict[str, Path], cache_dir: Path) -> list[Run | Skipped]:
    """The runs of each source: a local folder, else a Hub repository id (fetched, then read as a folder)."""
    local = [Path(s) for s in sources if Path(s).exists() or repo_argument(str(s)) is None]
    names = distinct_names(local)
    found = []
    for source in sources:
        folder = Path(source)
        if folder in names:
            found += load_runs(folder, golds_by_task, cache_dir, names[folder])
        else:
            found += load_runs(fetch_run(str(source)), golds_by_task, cache_dir, str(source), str(source))
    return found


def build(sources: list[str | Path], output: Path, metric: str = "rougeL", golds: list[Path] = (),
          num_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Read the runs, rank them and write every output; returns the leaderboard.json content."""
    if metric not in metrics.PER_SAMPLE_METRICS:
        raise ValueError(f"--metric must be a per-sample metric among {', '.join(metrics.PER_SAMPLE_METRICS)}")
    golds_by_task = {files.read_task_file(path, "golds").task: Path(path) for path in golds}
    output = Path(output)
    loaded = find_runs(sources, golds_by_task, output / "cache")
    runs = [run for run in loaded if isinstance(run, Run)]
    skipped = [run for run in loaded if isinstance(run, Skipped)]
    configs = {}
    for task, groups in sorted(group_runs(runs).items()):
        configs[task] = [{"split": g.key[0], "data": g.key[1], "scorer": json.loads(g.key[2]), "apart": g.apart,
                          "rows": rank_group(g, metric, num_resamples, seed)} for g in groups]
    result = {"metric": metric, "num_resamples": num_resamples, "seed": seed,
              "test": "paired permutation (sign-flip), two-sided",
              "configs": configs, "not_ranked": [{"path": s.where, "reason": s.reason} for s in skipped]}
    output.mkdir(parents=True, exist_ok=True)
    images = {}
    for task, groups in configs.items():
        baselines = {}
        for run in (r for r in runs if r.task == task and r.baseline is not None):
            baselines.setdefault(run.model, float(np.mean(run.baseline.values(metric, run.baseline.ids))))
        image = plot(task, groups[0]["rows"], metric, baselines)
        (output / f"{task}.png").write_bytes(image)
        images[task] = base64.b64encode(image).decode("ascii")
        write_text_atomic(output / f"{task}.csv", csv_text(groups))
    write_text_atomic(output / "leaderboard.md", markdown(result))
    write_text_atomic(output / "leaderboard.html", page(result, images))
    write_json_atomic(output / "leaderboard.json", result)
    return result
