"""The experiment's results: one table (printed, Markdown, JSON) with 95% intervals and the paired difference
of each personalised run (a retriever and k, or a per-user method) against the same model's run without profile,
one plot per config, one card per run.

The values are the scorer's (`score/scores.json` of each run, written by evaluation/eval_task.py). The paired
differences come from the per-sample scores the scorer wrote beside them (`--per_sample_file`), bootstrapped
with the scorer's resampling (`scoring.aggregate.paired_difference`): the same
resampled examples for both runs, so the interval is the one of the difference, not of two separate means.
"""

from __future__ import annotations

from pathlib import Path

from benchmark_runner.experiment import Experiment, Run
from benchmark_runner.stages import Layout
from longlamp_io import write_json_atomic
from longlamp_runs import Scores, read_scores
from scoring import HEADLINE_METRICS, aggregate, per_sample

METRIC_LABELS = {"rouge1": "ROUGE-1", "rougeL": "ROUGE-L", "meteor": "METEOR"}


def run_per_sample(layout: Layout, run: Run, scores: Scores) -> dict:
    """{"ids", metric: per-sample scores} of a run in gold order: the score stage's --per_sample_file, checked
    against the scores beside it and the golds it was scored on."""
    ids, _, columns = per_sample.read_checked(layout.per_sample(run), scores, layout.scores(run), layout.golds(run))
    return {"ids": ids, **{name: columns[name] for name in HEADLINE_METRICS}}


def paired_difference(with_profile: dict, without: dict, resamples: int, seed: int) -> dict:
    """Mean per-sample difference (profile minus no profile) and its paired bootstrap interval, per metric."""
    if with_profile["ids"] != without["ids"]:
        raise ValueError("paired difference: the two runs scored different examples")
    return aggregate.paired_difference({m: with_profile[m] for m in HEADLINE_METRICS},
                                       {m: without[m] for m in HEADLINE_METRICS}, resamples, 0.95, seed)


def collect(experiment: Experiment) -> dict:
    """The results record of every run of the grid (each run must be scored)."""
    layout = Layout(experiment)
    resamples = int(experiment.scoring.get("bootstrap", 1000))
    seed = int(experiment.scoring.get("seed", 0))
    rows, baselines = [], {}
    for run in experiment.runs():
        scores = read_scores(layout.scores(run))
        intervals = scores.intervals
        samples = run_per_sample(layout, run, scores)
        row = {
            "config": run.config, "model": run.model.name, "mode": run.model.mode, "model_name": run.model.model_name,
            "profile": run.retriever is not None, "retriever": run.retriever.name if run.retriever else None,
            "k": run.k, "personalization": run.method.method if run.method else None, "variant": run.variant,
            "num_samples": scores.num_samples,
            "metrics": {m: {"value": scores.metrics[m], **intervals.get(m, {"low": None, "high": None})}
                        for m in HEADLINE_METRICS},
            "vs_no_profile": None,
            "run_dir": str(layout.run_dir(run).relative_to(experiment.output_dir)),
            "scores_file": str(layout.scores(run).relative_to(experiment.output_dir)),
        }
        if run.variant == "no_profile":
            baselines[(run.config, run.model.name)] = samples
        else:
            row["vs_no_profile"] = paired_difference(samples, baselines[(run.config, run.model.name)],
                                                     resamples, seed)
        rows.append(row)
    return {"experiment": experiment.name, "eval_split": experiment.eval_split,
            "confidence": 0.95, "bootstrap_resamples": resamples, "seed": seed, "runs": rows}


def _cell(entry: dict) -> str:
    if entry.get("low") is None:
        return f"{entry['value']:.4f}"
    return f"{entry['value']:.4f} [{entry['low']:.4f}, {entry['high']:.4f}]"


def _delta(entry: dict | None) -> str:
    if entry is None:
        return "baseline"
    if entry.get("low") is None:
        return f"{entry['difference']:+.4f}"
    return f"{entry['difference']:+.4f} [{entry['low']:+.4f}, {entry['high']:+.4f}]"


def setting_label(row: dict) -> str:
    """How a run personalises: `bm25 k=2`, `oppu (per_user_adapters)`, or `no profile`."""
    if row.get("personalization"):
        return f"{row['variant']} ({row['personalization']})"
    return f"{row['retriever']} k={row['k']}" if row["profile"] else "no profile"


def markdown_table(results: dict) -> str:
    """One row per run: the three headline metrics with 95% intervals, then the paired differences."""
    names = [METRIC_LABELS[m] for m in HEADLINE_METRICS]
    header = ["config", "model", "mode", "profile", "n", *names, *(f"Δ {n} vs no profile" for n in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in results["runs"]:
        profile = setting_label(row)
        deltas = [_delta(row["vs_no_profile"][m] if row["vs_no_profile"] else None) for m in HEADLINE_METRICS]
        cells = [row["config"], row["model"], row["mode"].replace("_", "-"), profile, str(row["num_samples"]),
                 *(_cell(row["metrics"][m]) for m in HEADLINE_METRICS), *deltas]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reading(results: dict, metric: str) -> list[str]:
    """What the paired intervals say, one line per personalised run: only an interval that excludes 0 is an effect."""
    lines = []
    for row in results["runs"]:
        delta = row["vs_no_profile"]
        if delta is None or delta[metric]["low"] is None:
            continue
        entry = delta[metric]
        verdict = ("the profile helps" if entry["low"] > 0 else "the profile hurts" if entry["high"] < 0 else
                   f"no difference measurable on {row['num_samples']} examples (the interval contains 0)")
        lines.append(f"{row['config']}, {row['model']}, {setting_label(row)}: {METRIC_LABELS[metric]} "
                     f"{_delta(entry)} against no profile: {verdict}")
    return lines


def plot_rows(results: dict, config: str, metric: str) -> list[dict]:
    """Bars for one config's plot: grouped by model and retrieval setting, profile against no profile."""
    rows = []
    for row in results["runs"]:
        if row["config"] != config:
            continue
        entry = row["metrics"][metric]
        rows.append({"label": setting_label(row), "group": f"{row['model']} ({row['mode'].replace('_', '-')})",
                     "value": entry["value"], "low": entry["low"], "high": entry["high"]})
    return rows


def write_results(experiment: Experiment, results: dict) -> dict[str, Path]:
    """results.json, results.md and one PNG per config in the output folder; returns what was written."""
    from publishing.plots import plot_comparison

    root = experiment.output_dir
    written = {"json": root / "results.json", "markdown": root / "results.md"}
    plots = {}
    for config in experiment.configs:
        path = root / "plots" / f"{config}.png"
        plot_comparison(plot_rows(results, config, experiment.plot_metric), path,
                        f"{experiment.name}: {config}", metric_label=METRIC_LABELS[experiment.plot_metric])
        plots[config] = str(path.relative_to(root))
    results = {**results, "plots": plots}
    write_json_atomic(written["json"], results)
    table = markdown_table(results)
    text = (f"# {experiment.name}: results\n\n{experiment.eval_split} split; values with 95% bootstrap intervals "
            f"({results['bootstrap_resamples']} resamples, seed {results['seed']}); Δ is the paired difference "
            "against the same model without profile.\n\n" + table + "\n\n"
            + "".join(f"- {line}\n" for line in reading(results, experiment.plot_metric)) + "\n"
            + "".join(f"![{config}]({path})\n" for config, path in plots.items()))
    written["markdown"].write_text(text, encoding="utf-8")
    written.update({f"plot {config}": root / path for config, path in plots.items()})
    return written


def write_cards(experiment: Experiment) -> list[Path]:
    """A card (README.md) per run, from what the run wrote, by the publishing package."""
    from publishing.cards import write_run_card

    layout = Layout(experiment)
    return [write_run_card(card_folder(layout, run)) for run in experiment.runs()]


def card_folder(layout: Layout, run: Run) -> Path:
    """The folder a run's card describes: its generation run (scores, predictions and settings)."""
    return layout.predictions(run).parent


def stage_for_hub(experiment: Experiment, staging: Path, repo_id: str) -> Path:
    """The folder one push uploads: the results (README.md = the table, results.json, plots) and, per run, what
    the publishing package stages for it (card, predictions, scores; a fine-tuned run's adapter or model too)."""
    import shutil

    from publishing.hub import STAGING_MARKER, stage_run

    layout, root = Layout(experiment), experiment.output_dir
    if staging.exists() and any(staging.iterdir()) and not (staging / STAGING_MARKER).is_file():
        raise ValueError(f"{staging} exists and is not a folder staged for upload: choose an empty or new folder")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / STAGING_MARKER).touch()
    shutil.copy(root / "results.json", staging / "results.json")
    shutil.copytree(root / "plots", staging / "plots")
    (staging / "README.md").write_text((root / "results.md").read_text(encoding="utf-8"), encoding="utf-8")
    for run in experiment.runs():
        target = staging / "runs" / run.config / run.model.name / run.variant
        stage_run(card_folder(layout, run), target / "evaluation", repo_id, "model")
        if run.model.mode == "fine_tuned" and run.method is None:  # per-user files are not published
            stage_run(layout.run_dir(run) / "train", target / "model", repo_id, "model")
    for marker in staging.rglob(STAGING_MARKER):
        if marker.parent != staging:
            marker.unlink()
    return staging


def push_results(experiment: Experiment, repo_id: str, *, private: bool = False, dry_run_dir: str | None = None) -> str:
    """Publish the experiment in one commit (token: HF_TOKEN or `hf auth login`); returns the repository URL, or
    the staged folder with `dry_run_dir`. The email task's texts are licensed: such a push must be private."""
    import tempfile

    from longlamp_tasks import parse_config_name
    from publishing.hub import LICENCE_WARNING, check_repo_id, upload

    check_repo_id(repo_id)
    if not private and any(not parse_config_name(config)[0].public for config in experiment.configs):
        raise ValueError(f"{LICENCE_WARNING} Push it with --hub_private")
    if dry_run_dir:
        return str(stage_for_hub(experiment, Path(dry_run_dir), repo_id))
    with tempfile.TemporaryDirectory(prefix="longlamp-push-") as scratch:
        folder = stage_for_hub(experiment, Path(scratch) / "repo", repo_id)
        return upload(folder, repo_id, private=private, commit_message=f"LongLaMP experiment {experiment.name}",
                      local=experiment.output_dir)
