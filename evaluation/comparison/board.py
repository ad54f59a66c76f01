"""Building the leaderboard: find the runs (local folders or Hub repositories), rank them per config, write every
output (leaderboard.md, leaderboard.html, leaderboard.json, <config>.csv and <config>.png) into one folder.

A run reached twice (the same folder given twice, or once by itself and once inside another argument) is refused,
naming both arguments: it would otherwise be ranked twice. Building into a folder that holds an older leaderboard
removes the files that leaderboard wrote and this one does not (a config no longer ranked), and nothing else; a
folder whose leaderboard.json this command did not write is refused, and so is a folder another leaderboard is
writing into (its lock). A leaderboard killed while writing leaves whole files, some old and some new; the same
command again writes them all."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np

from evaluation.comparison.hub_runs import fetch_run, repo_argument
from evaluation.comparison.plots import plot
from evaluation.comparison.ranking import DEFAULT_RESAMPLES, group_runs, rank_group
from evaluation.comparison.runs import Run, Skipped, load_runs
from evaluation.comparison.tables import csv_text, markdown, page
from longlamp_errors import RunFolderError, UsageError
from longlamp_io import RunLock, write_bytes_atomic, write_json_atomic, write_text_atomic
from scoring import aggregate, files, metrics, significance

BOARD_FILES = ("leaderboard.md", "leaderboard.html", "leaderboard.json")
CONFIG_FILES = (".csv", ".png")  # one of each per config ranked
CONFIG_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a config as a file name (a task name: LongLaMP_product_review_user)


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
    output = Path(output)
    files_written_before(output)  # refused before any work: a file, or a folder of another origin
    golds_by_task = {files.read_task_file(path, "golds").task: Path(path) for path in golds}
    loaded = find_runs(sources, golds_by_task, output / "cache")
    runs = [run for run in loaded if isinstance(run, Run)]
    skipped = [run for run in loaded if isinstance(run, Skipped)]
    refuse_runs_given_twice(runs)
    configs = {}
    for task, groups in sorted(group_runs(runs).items()):
        configs[task] = [{"split": g.key[0], "data": g.key[1], "scorer": json.loads(g.key[2]), "apart": g.apart,
                          **rank_group(g, metric, num_resamples, seed)} for g in groups]
    result = {"metric": metric, "num_resamples": num_resamples, "seed": seed,
              "interval": (f"the scorer's percentile bootstrap of the mean, {aggregate.BOOTSTRAP_RESAMPLES} resamples "
                           f"(as scores.json), seed {seed}"),
              "test": (f"paired sign-flip test, two-sided, adjusted per family by the single-step max-T method "
                       f"(Westfall & Young 1993): {num_resamples} sign patterns (all of them when 2^n is fewer), "
                       f"seed {seed}; a p-value below {significance.LEVEL} keeps the family-wise error rate at "
                       f"{significance.LEVEL}"),
              "configs": configs, "not_ranked": [{"path": s.where, "reason": s.reason} for s in skipped]}
    with RunLock(output, "leaderboard.py"):  # a second leaderboard into the folder is refused until this one ends
        write_board(output, result, runs, files_written_before(output))
    return result


def write_board(output: Path, result: dict, runs: list[Run], previous: list[str]) -> None:
    """Every output file, each replaced whole; then the files of the older leaderboard this one no longer has."""
    metric, configs = result["metric"], result["configs"]
    images = {}
    for task, groups in configs.items():
        baselines = {}
        for run in (r for r in runs if r.task == task and r.baseline is not None):
            baselines.setdefault(run.model, float(np.mean(run.baseline.values(metric, run.baseline.ids))))
        image = plot(task, groups[0]["rows"], metric, baselines)
        write_bytes_atomic(output / f"{task}.png", image)
        images[task] = base64.b64encode(image).decode("ascii")
        write_text_atomic(output / f"{task}.csv", csv_text(groups))
    for name in sorted(set(previous) - set(board_files(configs))):  # before leaderboard.json stops naming them
        (output / name).unlink(missing_ok=True)
    write_text_atomic(output / "leaderboard.md", markdown(result))
    write_text_atomic(output / "leaderboard.html", page(result, images))
    write_json_atomic(output / "leaderboard.json", result)


def board_files(configs) -> list[str]:
    """The files a leaderboard of these configs consists of, by name inside its folder."""
    return [*BOARD_FILES, *(f"{task}{suffix}" for task in configs for suffix in CONFIG_FILES)]


def files_written_before(output: Path) -> list[str]:
    """The files an older leaderboard in `output` wrote (its leaderboard.json names its configs), or [] for a new or
    leaderboard-free folder; refuses a file, or a leaderboard.json of another origin."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file: give a folder for the leaderboard")
    record = output / "leaderboard.json"
    if not record.exists():
        return []
    try:
        configs = json.loads(record.read_text(encoding="utf-8"))["configs"]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        configs = None
    if not isinstance(configs, dict) or not all(isinstance(c, str) and CONFIG_NAME.fullmatch(c) for c in configs):
        raise RunFolderError(f"{record} was not written by leaderboard.py: choose another --output folder")
    return board_files(configs)


def refuse_runs_given_twice(runs: list[Run]) -> None:
    """One row per run: a folder reached by two arguments (or twice by one) is refused, naming both."""
    seen: dict[Path, Run] = {}
    for run in runs:
        folder = run.path.resolve()
        if folder in seen:
            raise UsageError(f"the same run is given twice, as {seen[folder].where} and as {run.where}: give each run "
                             "once")
        seen[folder] = run
