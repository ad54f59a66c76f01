"""The experiment's results: one table (printed, Markdown, JSON) with 95% intervals and the paired difference
of each personalised run (a retriever and k, or a per-user method) against the same model's run without profile,
one plot per config, one card per run.

The values and their intervals are the scorer's (`score/scores.json` of each run, written by
evaluation/eval_task.py). Each paired difference comes from the per-sample scores the scorer wrote beside them
(`--per_sample_file`): scoring/significance.py's one paired comparison (`compare`, its default resamples: the same
difference, interval and p-value as the run's comparison.json, card and leaderboard row). The differences of one
config (every personalised run, the three headline metrics) are one family: each carries its p-value adjusted over
that family (single-step max-T sign-flip test), and only an adjusted p-value below `significance.LEVEL` is read as
an effect; the intervals are each comparison's own, not adjusted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmark_runner.experiment import Experiment, Run
from benchmark_runner.stages import Layout
from longlamp_io import write_json_atomic
from longlamp_runs import read_scores
from scoring import HEADLINE_METRICS, aggregate, per_sample, significance
from scoring.paired import read_pair

METRIC_LABELS = {"rouge1": "ROUGE-1", "rougeL": "ROUGE-L", "meteor": "METEOR"}


def collect(experiment: Experiment) -> dict:
    """The results record of every run of the grid (each run must be scored)."""
    layout = Layout(experiment)
    seed = int(experiment.scoring.get("seed", 0))
    rows, baselines, families = [], {}, {}
    for run in experiment.runs():
        scores = read_scores(layout.scores(run))
        intervals = scores.intervals
        # refused unless it is this run's per-sample file (its row count, its golds' ids)
        per_sample.read_checked(layout.per_sample(run), scores, layout.scores(run), layout.golds(run))
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
            baselines[(run.config, run.model.name)] = run
        else:
            base = baselines[(run.config, run.model.name)]
            pair = read_pair(layout.per_sample(base), layout.per_sample(run), layout.golds(base), layout.golds(run))
            row["vs_no_profile"] = significance.compare({m: pair.a[m] for m in HEADLINE_METRICS},
                                                        {m: pair.b[m] for m in HEADLINE_METRICS}, seed=seed)
            families.setdefault((run.config, frozenset(pair.ids)), []).append((row, pair))
        rows.append(row)
    return {"experiment": experiment.name, "eval_split": experiment.eval_split, "confidence": 0.95,
            "bootstrap_resamples": int(experiment.scoring.get("bootstrap", aggregate.BOOTSTRAP_RESAMPLES)),
            "seed": seed, "paired": adjust(families, seed), "runs": rows}


def adjust(families: dict, seed: int) -> dict:
    """Add each difference's family-adjusted p-value (`p_adjusted`) to its row; returns what the numbers mean."""
    described = []
    for (config, _), members in families.items():
        order = {example_id: i for i, example_id in enumerate(members[0][1].ids)}
        differences = {}
        for index, (row, pair) in enumerate(members):
            positions = [order[example_id] for example_id in pair.ids]
            for metric in HEADLINE_METRICS:
                aligned = np.empty(len(order))
                aligned[positions] = pair.b[metric] - pair.a[metric]
                differences[(index, metric)] = aligned
        adjusted = significance.max_t_p_values(differences, seed=seed)
        for (index, metric), p_value in adjusted.items():
            members[index][0]["vs_no_profile"][metric]["p_adjusted"] = p_value
        described.append({"config": config, **significance.family_settings(
            f"every paired difference against no profile of {config}: {len(members)} run(s) x "
            f"{len(HEADLINE_METRICS)} metrics", len(differences), len(order), significance.DEFAULT_RESAMPLES, seed)})
    return {"interval": (f"a 95% interval: that difference's own percentile bootstrap "
                         f"({significance.DEFAULT_RESAMPLES} resamples of the examples, seed {seed}), not adjusted for "
                         "the other comparisons"),
            "p_value": "two-sided paired sign-flip test of that difference alone",
            "p_adjusted": ("its sign-flip p-value adjusted over its family (single-step max-T, Westfall & Young "
                           "1993)"),
            "families": described}


def _cell(entry: dict) -> str:
    if entry.get("low") is None:
        return f"{entry['value']:.4f}"
    return f"{entry['value']:.4f} [{entry['low']:.4f}, {entry['high']:.4f}]"


def _delta(entry: dict | None) -> str:
    if entry is None:
        return "baseline"
    p_value = entry["p_adjusted"]
    return (f"{entry['difference']:+.4f} [{entry['low']:+.4f}, {entry['high']:+.4f}] p {p_value:.2g}"
            + ("*" if p_value < significance.LEVEL else ""))


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
    """What the paired differences say, one line per personalised run: only an adjusted p-value below the level is
    an effect."""
    lines = []
    for row in results["runs"]:
        if row["vs_no_profile"] is None:
            continue
        entry = row["vs_no_profile"][metric]
        found = entry["p_adjusted"] < significance.LEVEL
        verdict = ("the profile helps" if found and entry["difference"] > 0 else "the profile hurts" if found else
                   f"no difference shown on {row['num_samples']} examples (adjusted p >= {significance.LEVEL})")
        lines.append(f"{row['config']}, {row['model']}, {setting_label(row)}: {METRIC_LABELS[metric]} "
                     f"{_delta(entry)} against no profile: {verdict}")
    return lines


def legend(results: dict) -> str:
    """What a Δ cell and its mark mean (results.md)."""
    level = significance.LEVEL
    return (f"Δ is the paired difference against the same model without profile on the same examples, with "
            f"{results['paired']['interval']}, and p, {results['paired']['p_adjusted']}. A config's "
            f"family is every Δ it shows (all its personalised runs x the three metrics); * marks p < {level}: "
            f"within a config, the chance that any Δ without a real difference is marked is at most {level}.")


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
    text = f"# {experiment.name}: results\n\n{results_text(experiment, results)}"
    written["markdown"].write_text(text, encoding="utf-8")
    written.update({f"plot {config}": root / path for config, path in plots.items()})
    return written


def results_text(experiment: Experiment, results: dict) -> str:
    """results.md below its title (the experiment's card shows the same): what the numbers are, the table, what the
    differences say, the plots."""
    return (f"{experiment.eval_split} split; values with the scorer's 95% bootstrap intervals "
            f"({results['bootstrap_resamples']} resamples, seed {results['seed']}). {legend(results)}\n\n"
            + markdown_table(results) + "\n\n"
            + "".join(f"- {line}\n" for line in reading(results, experiment.plot_metric)) + "\n"
            + "".join(f"![{config}]({path})\n" for config, path in results["plots"].items()))


def write_cards(experiment: Experiment) -> list[Path]:
    """A card (README.md) per run, from what the run wrote, by the publishing package."""
    from publishing.cards import write_run_card

    layout = Layout(experiment)
    return [write_run_card(card_folder(layout, run)) for run in experiment.runs()]


def card_folder(layout: Layout, run: Run) -> Path:
    """The folder a run's card describes: its generation run (scores, predictions and settings)."""
    return layout.predictions(run).parent


def portable_results(results: dict) -> dict:
    """results.json as the experiment's repository holds it: each model by its Hub id or last part
    (publishing.runs.public_name, as every push writes records), each run's scores file where the repository has it
    (`run_dir` is already the run's folder there)."""
    from publishing.experiment import evaluation_file
    from publishing.runs import public_name

    return {**results, "runs": [{**row, "model_name": public_name(row["model_name"]),
                                 "scores_file": evaluation_file(row["run_dir"])} for row in results["runs"]]}


def stage_for_hub(experiment: Experiment, staging: Path, repo_id: str) -> Path:
    """The folder one push uploads: at its root the experiment's card (README.md: the results table, metadata with
    every run's results), its `.eval_results`, results.json (portable) and the plots; per run, in
    `runs/<config>/<model>/<variant>/`, what the publishing package stages for it (`evaluation/`: card,
    predictions, scores; a fine-tuned run's `model/` too)."""
    import shutil

    from longlamp_runs import read_run
    from publishing.cards import EVAL_RESULTS_FILE, blob_url, entries_yaml
    from publishing.experiment import (
        EVALUATION_DIR,
        MODEL_DIR,
        PublishedRun,
        build_experiment_card,
        evaluation_file,
        root_eval_result_entries,
    )
    from publishing.hub import STAGING_MARKER, hub_licence, stage_run

    layout, root = Layout(experiment), experiment.output_dir
    if staging.exists() and any(staging.iterdir()) and not (staging / STAGING_MARKER).is_file():
        raise ValueError(f"{staging} exists and is not a folder staged for upload: choose an empty or new folder")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / STAGING_MARKER).touch()
    results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    write_json_atomic(staging / "results.json", portable_results(results))
    shutil.copytree(root / "plots", staging / "plots")
    published = []
    for run, row in zip(experiment.runs(), results["runs"], strict=True):
        folder = layout.run_dir(run).relative_to(root).as_posix()
        trained = run.model.mode == "fine_tuned" and run.method is None  # per-user files are not published
        model_at = f"{folder}/{MODEL_DIR}" if trained else None
        if trained:
            stage_run(layout.run_dir(run) / "train", staging / model_at, repo_id, "model", path_in_repo=model_at)
        stage_run(card_folder(layout, run), staging / folder / EVALUATION_DIR, repo_id, "model",
                  path_in_repo=f"{folder}/{EVALUATION_DIR}", model_at=model_at)
        published.append(PublishedRun(folder, run.model.name, setting_label(row), read_run(card_folder(layout, run)),
                                      read_run(layout.run_dir(run) / "train") if trained else None))
    for marker in staging.rglob(STAGING_MARKER):
        if marker.parent != staging:
            marker.unlink()
    urls = {run.folder: blob_url(repo_id, evaluation_file(run.folder)) for run in published}
    licences = {model: hub_licence(model) for model in {run.licensed_model for run in published}}
    card = build_experiment_card(experiment.name, published, results_text(experiment, results), repo_id, urls,
                                 {model: licence for model, licence in licences.items() if licence})
    (staging / "README.md").write_text(str(card), encoding="utf-8")
    entries = root_eval_result_entries(published, urls)
    if entries:  # the Hub reads them at the root of a model repository; local data gives none
        (staging / EVAL_RESULTS_FILE).parent.mkdir()
        (staging / EVAL_RESULTS_FILE).write_text(entries_yaml(entries), encoding="utf-8")
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
