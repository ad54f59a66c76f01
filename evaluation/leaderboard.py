"""A leaderboard of finished runs: one ranked table per config, with intervals, significance and plots.

    python evaluation/leaderboard.py runs/* --output leaderboard/ [--metric rougeL] [--golds test_golds.json]

A run folder is either a zero-shot run (evaluation/zero_shot/: scores.json, predictions.json, golds.json,
and no_profile/ when it was compared without profile) or a training run (training/loop.py:
predictions_test.json and final/training_config.json, scored against the gold file of its task given with
--golds). Per-sample scores come from the run's per_sample.jsonl when it has one, else they are computed here
from its predictions and golds and cached under DIR/cache/. Runs are ranked together only when they were
scored on the same split, data, examples and scorer versions; the others are ranked apart, with the reason.

Written to DIR: leaderboard.md, leaderboard.html (self-contained: the plots inline), leaderboard.json,
<config>.csv per config and <config>.png (the metric by retriever and k). Reading runs published on the Hub is
not implemented yet: download them first (see docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.scoring import aggregate, files, metrics, per_sample  # noqa: E402
from evaluation import significance  # noqa: E402
from longlamp_cli import run_command  # noqa: E402
from longlamp_runs import write_json_atomic  # noqa: E402

logger = logging.getLogger(__name__)
DEFAULT_RESAMPLES = 1000
SCORER_PACKAGES = ("nltk", "rouge_score", "sacrebleu")  # the versions that can change a score (rust ROUGE is
# checked bit-identical to rouge_score at run time, so its version does not)


@dataclass
class Run:
    """One scored run, its per-sample scores aligned to `ids`."""

    path: Path
    kind: str
    task: str
    model: str
    retriever: str | None  # None: no profile
    k: int | None
    split: str
    data: str
    scorer: dict
    ids: list[str]
    scores: dict[str, np.ndarray]
    baseline: Run | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path.name != "no_profile" else f"{self.path.parent.name}/no_profile"

    def values(self, metric: str, ids: list[str]) -> np.ndarray:
        """The metric's per-sample scores in the order of `ids`."""
        if ids == self.ids:
            return self.scores[metric]
        position = {example_id: i for i, example_id in enumerate(self.ids)}
        return self.scores[metric][[position[i] for i in ids]]


@dataclass
class Skipped:
    path: Path
    reason: str


@dataclass
class Group:
    """Runs of one config that may be ranked together, and why they are apart from the config's main group."""

    key: tuple
    runs: list[Run] = field(default_factory=list)
    apart: str | None = None


def scorer_identity(versions: dict, settings: dict) -> dict:
    """What must agree for two runs' scores to be comparable: package versions and METEOR's parameters."""
    identity = {package: versions[package] for package in SCORER_PACKAGES if package in versions}
    if "meteor" in settings:
        identity["meteor"] = {key: settings["meteor"].get(key) for key in ("alpha", "beta", "gamma", "wordnet")}
    return identity


def _current_scorer() -> dict:
    names = metrics.PER_SAMPLE_METRICS
    return scorer_identity(metrics.library_versions(names, "python"), metrics.scoring_settings(names, "python"))


def _score_files(golds_path: Path, predictions_path: Path, cache_dir: Path) -> tuple[list[str], dict]:
    """Per-sample scores of a prediction file against a gold file, cached by the two files' contents."""
    digest = hashlib.sha256(golds_path.read_bytes() + b"\0" + predictions_path.read_bytes()).hexdigest()[:24]
    cached = cache_dir / f"{digest}.jsonl"
    if cached.exists():
        ids, _, scores = per_sample.read(cached)
        return ids, scores
    golds = files.read_task_file(golds_path, "golds")
    predictions = files.read_task_file(predictions_path, "predictions")
    files.check_task(golds, predictions)
    outputs = files.predictions_in_gold_order(golds, predictions)
    scores = metrics.per_sample_scores(outputs, golds.outputs, metrics=metrics.PER_SAMPLE_METRICS, progress=True)
    per_sample.write(cached, per_sample.rows(golds.ids, outputs, scores, golds.users))
    return golds.ids, scores


def _zero_shot_run(path: Path, cache_dir: Path) -> Run | Skipped:
    summary = files.load_json(path / "scores.json")
    if not isinstance(summary, dict) or "settings" not in summary:
        return Skipped(path, "scores.json is not a zero-shot run's summary")
    if not summary.get("scores"):
        return Skipped(path, summary.get("not_scored") or "the run was not scored")
    settings = summary["settings"]
    if (path / per_sample.FILE_NAME).exists():
        ids, _, scores = per_sample.read(path / per_sample.FILE_NAME)
    elif (path / "golds.json").exists() and (path / "predictions.json").exists():
        ids, scores = _score_files(path / "golds.json", path / "predictions.json", cache_dir)
    else:
        return Skipped(path, f"neither {per_sample.FILE_NAME} nor predictions.json with golds.json")
    profile = settings.get("use_profile")
    return Run(path, "zero-shot", summary["task"], settings.get("model", "?"),
               settings.get("retriever") if profile else None, settings.get("num_retrieved") if profile else None,
               settings.get("split", "?"), _data_identity(settings),
               scorer_identity(summary["scores"].get("versions", {}), summary["scores"].get("settings", {})), ids,
               scores)


def _data_identity(settings: dict) -> str:
    """The data a run read: its source, and the dataset revision where one was recorded."""
    revision = settings.get("data_revision") or settings.get("revision")
    return f"{settings.get('data', '?')}@{revision}" if revision else str(settings.get("data", "?"))


def _training_run(path: Path, golds_by_task: dict[str, Path], cache_dir: Path) -> Run | Skipped:
    record = next((path / d / "training_config.json" for d in ("final", "best")
                   if (path / d / "training_config.json").exists()), None)
    if record is None:
        return Skipped(path, "predictions_test.json without final/training_config.json")
    config = files.load_json(record)
    task = files.read_task_file(path / "predictions_test.json", "predictions").task
    if task not in golds_by_task:
        return Skipped(path, f"a training run of {task}: pass its test golds with --golds")
    ids, scores = _score_files(golds_by_task[task], path / "predictions_test.json", cache_dir)
    profile = config.get("use_profile")
    return Run(path, "training", task, config.get("model_name", "?"), config.get("retriever") if profile else None,
               config.get("num_retrieved") if profile else None, "test", str(config.get("test_data", "?")),
               _current_scorer(), ids, scores)


def load_run(path: Path, golds_by_task: dict[str, Path], cache_dir: Path) -> Run | Skipped:
    """A run folder as a Run (with its no_profile/ baseline when present), or why it cannot be ranked."""
    if not path.is_dir():
        raise ValueError(f"{path}: no such run folder")
    if (path / "scores.json").exists():
        run = _zero_shot_run(path, cache_dir)
        if isinstance(run, Run) and (path / "no_profile" / "scores.json").exists():
            baseline = _zero_shot_run(path / "no_profile", cache_dir)
            run.baseline = baseline if isinstance(baseline, Run) else None
        return run
    if (path / "predictions_test.json").exists():
        return _training_run(path, golds_by_task, cache_dir)
    return Skipped(path, "not a run folder (no scores.json, no predictions_test.json)")


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
            raise ValueError(f"{run.path}: no per-sample {metric!r} scores (it has {', '.join(run.scores)})")
    values = {id(run): run.values(metric, ids) for run in group.runs}
    ordered = sorted(group.runs, key=lambda run: -float(np.mean(values[id(run)])))
    best = values[id(ordered[0])]
    rows = []
    for rank, run in enumerate(ordered, 1):
        mine = values[id(run)]
        interval = aggregate.bootstrap_intervals({metric: mine}, num_resamples, 0.95, seed)[metric]
        row = {"rank": rank, "run": run.name, "path": str(run.path), "kind": run.kind, "model": run.model,
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


COLUMNS = ("rank", "run", "model", "retriever", "k", "mean", "low", "high", "vs_best", "p_vs_best", "vs_no_profile",
           "p_vs_no_profile", "examples")


def _cells(row: dict) -> list[str]:
    """A row's cells as text: scores to 4 decimals, differences signed, p-values to 3 significant digits."""
    cells = []
    for column in COLUMNS:
        value = row[column]
        if value is None:
            cells.append("—")
        elif column.startswith("p_"):
            cells.append(f"{value:.3g}")
        elif column.startswith("vs_"):
            cells.append(f"{value:+.4f}")
        elif isinstance(value, float):
            cells.append(f"{value:.4f}")
        else:
            cells.append(str(value))
    return cells


def plot(task: str, rows: list[dict], metric: str, baselines: dict[str, float], path: Path) -> None:
    """The metric by k, one line per model and retriever, 95% intervals as bars, no-profile runs dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    lines: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["k"] is not None:
            lines.setdefault((row["model"], row["retriever"]), []).append(row)
    for (model, retriever), points in sorted(lines.items()):
        points.sort(key=lambda r: r["k"])
        means = np.array([r["mean"] for r in points])
        errors = np.array([[r["mean"] - r["low"] for r in points], [r["high"] - r["mean"] for r in points]])
        axes.errorbar([r["k"] for r in points], means, yerr=errors, marker="o", capsize=3,
                      label=f"{retriever} ({model})")
    for model, value in sorted(baselines.items()):
        axes.axhline(value, linestyle="--", color="grey", linewidth=1)
        axes.annotate(f"no profile ({model})", (0, value), xycoords=("axes fraction", "data"), fontsize=7,
                      color="grey", va="bottom")
    axes.set_xlabel("retrieved profile items (k)")
    axes.set_ylabel(metric)
    axes.set_title(task)
    if lines:
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def build(run_dirs: list[Path], output: Path, metric: str = "rougeL", golds: list[Path] = (),
          num_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Read the runs, rank them and write every output; returns the leaderboard.json content."""
    if metric not in metrics.PER_SAMPLE_METRICS:
        raise ValueError(f"--metric must be a per-sample metric among {', '.join(metrics.PER_SAMPLE_METRICS)}")
    golds_by_task = {files.read_task_file(path, "golds").task: Path(path) for path in golds}
    cache_dir = output / "cache"
    loaded = [load_run(Path(path), golds_by_task, cache_dir) for path in run_dirs]
    runs = [run for run in loaded if isinstance(run, Run)]
    skipped = [run for run in loaded if isinstance(run, Skipped)]
    configs = {}
    for task, groups in sorted(group_runs(runs).items()):
        configs[task] = [{"split": g.key[0], "data": g.key[1], "scorer": json.loads(g.key[2]), "apart": g.apart,
                          "rows": rank_group(g, metric, num_resamples, seed)} for g in groups]
    result = {"metric": metric, "num_resamples": num_resamples, "seed": seed,
              "test": "paired permutation (sign-flip), two-sided",
              "configs": configs, "not_ranked": [{"path": str(s.path), "reason": s.reason} for s in skipped]}
    output.mkdir(parents=True, exist_ok=True)
    images = {}
    for task, groups in configs.items():
        main = groups[0]
        baselines = {}
        for run in (r for r in runs if r.task == task and r.baseline is not None):
            baselines.setdefault(run.model, float(np.mean(run.baseline.values(metric, run.baseline.ids))))
        plot(task, main["rows"], metric, baselines, output / f"{task}.png")
        images[task] = base64.b64encode((output / f"{task}.png").read_bytes()).decode("ascii")
        with open(output / f"{task}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["group", "split", "data", "apart", *COLUMNS, "path"])
            for index, group in enumerate(groups):
                for row in group["rows"]:
                    writer.writerow([index, group["split"], group["data"], group["apart"] or "",
                                     *[("" if row[c] is None else row[c]) for c in COLUMNS], row["path"]])
    (output / "leaderboard.md").write_text(markdown(result), encoding="utf-8")
    (output / "leaderboard.html").write_text(page(result, images), encoding="utf-8")
    write_json_atomic(output / "leaderboard.json", result)
    return result


def _legend(result: dict) -> str:
    return (f"Ranked by mean {result['metric']}; low/high: 95% bootstrap interval; vs_best, vs_no_profile: paired "
            f"difference of means with its {result['test']} p-value ({result['num_resamples']} resamples, seed "
            f"{result['seed']}).")


def markdown(result: dict) -> str:
    """The leaderboard as Markdown: one section per config, one table per group of comparable runs."""
    out = [f"# Leaderboard ({result['metric']})", "", _legend(result), ""]
    for task, groups in result["configs"].items():
        out += [f"## {task}", ""]
        for group in groups:
            out.append(f"Split `{group['split']}`, data `{group['data']}`."
                       + (f" **Ranked apart:** {group['apart']}." if group["apart"] else ""))
            out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            out += ["| " + " | ".join(_cells(row)) + " |" for row in group["rows"]]
            out.append("")
    if result["not_ranked"]:
        out += ["## Not ranked", ""] + [f"- `{s['path']}`: {s['reason']}" for s in result["not_ranked"]] + [""]
    return "\n".join(out)


def page(result: dict, images: dict[str, str]) -> str:
    """The leaderboard as one self-contained HTML page (plots inline as data URIs)."""
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Leaderboard</title><style>"
           "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(2){text-align:left}"
           "</style></head><body>", f"<h1>Leaderboard ({e(result['metric'])})</h1><p>{e(_legend(result))}</p>"]
    for task, groups in result["configs"].items():
        out.append(f"<h2>{e(task)}</h2><img alt='{e(task)}' src='data:image/png;base64,{images[task]}'>")
        for group in groups:
            out.append(f"<p>Split <code>{e(group['split'])}</code>, data <code>{e(group['data'])}</code>."
                       + (f" <b>Ranked apart:</b> {e(group['apart'])}." if group["apart"] else "") + "</p>")
            out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in _cells(row)) + "</tr>" for row in group["rows"]]
            out.append("</table>")
    if result["not_ranked"]:
        out.append("<h2>Not ranked</h2><ul>" + "".join(f"<li><code>{e(s['path'])}</code>: {e(s['reason'])}</li>"
                                                       for s in result["not_ranked"]) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="finished run folders (zero-shot or training)")
    parser.add_argument("--output", "--output_dir", type=Path, required=True, help="folder for the leaderboard files")
    parser.add_argument("--metric", default="rougeL", help="per-sample metric to rank by (default: %(default)s)")
    parser.add_argument("--golds", type=Path, action="append", default=[],
                        help="gold file of a task (repeatable): training runs of that task are scored against it")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help="bootstrap resamples and sign patterns per test (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {args.resamples}")
    result = build(args.run_dirs, args.output, args.metric, args.golds, args.resamples, args.seed)
    ranked = sum(len(g["rows"]) for groups in result["configs"].values() for g in groups)
    print(f"{ranked} runs ranked in {len(result['configs'])} config(s), {len(result['not_ranked'])} not ranked: "
          f"{args.output / 'leaderboard.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
