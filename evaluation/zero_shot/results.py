"""The end of a run: predictions, golds, per-sample scores and scores.json, and the comparison of the runs with
and without profile."""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from pathlib import Path
from typing import Sequence

from generation.decoding import strip_reasoning
from generation.progress import PreparedRun
from longlamp_io import write_json_atomic
from longlamp_runs import GOLDS_FILE, PER_SAMPLE_FILE, PREDICTIONS_FILE, SCORES_FILE
from scoring import per_sample, significance
from scoring.files import write_predictions
from scoring.metrics import score_with_samples
from scoring.paired import read_pair

logger = logging.getLogger(__name__)
SEEDS_FILE = "seeds.json"  # with --seeds, in the output folder above the seed<N>/ runs


def length_summary(records: Sequence[dict], max_new_tokens: int) -> dict:
    """The length distribution of the generations in tokens, and how many ran into max_new_tokens."""
    lengths = sorted(record["tokens"] for record in records)
    deciles = statistics.quantiles(lengths, n=10, method="inclusive") if len(lengths) > 1 else lengths * 9
    return {"min": lengths[0], "median": statistics.median(lengths), "mean": statistics.fmean(lengths),
            "p90": deciles[8], "max": lengths[-1], "max_new_tokens": max_new_tokens,
            "hit_max_new_tokens": sum(record["hit_limit"] for record in records)}


def finish_reasons(records: Sequence[dict]) -> dict:
    """How each generation ended: a server's finish reasons, or for a local model "stop" and "length"."""
    return dict(sorted(Counter(r.get("finish_reason") or ("length" if r["hit_limit"] else "stop")
                               for r in records).items()))


def usage(records: Sequence[dict]) -> dict:
    """Prompt and completion tokens summed over a served model's answers (what it bills), or nothing."""
    if not any("prompt_tokens" in r for r in records):
        return {}
    return {"usage": {"prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in records),
                      "completion_tokens": sum(r["tokens"] for r in records), "requests": len(records)}}


def finish_run(run: PreparedRun, references: Sequence, users: Sequence, endpoint: str | None = None,
               ignored: str | None = None, from_training_record: dict | None = None,
               user_adapters: dict | None = None) -> dict:
    """Write the predictions file, then the golds and scores when every example has a reference output; returns
    scores.json's content (the run's record under "settings"). `endpoint`: a served model's API, without
    credentials; `ignored`: the warning about flags the run ignored; `from_training_record`: the settings taken from
    a fine-tuned model's training record as defaults (longlamp_cli); `user_adapters`: a per-user run's count of
    evaluated users with an adapter (and its warning when some had none)."""
    records = [run.store.records[key] for key in run.keys]
    record = run.record
    task_name = record.task.scorer_task_name
    predictions = [strip_reasoning(r["output"]) if record.generation.strip_reasoning else r["output"]
                   for r in records]
    write_predictions(run.output_dir / PREDICTIONS_FILE, task_name, run.ids, dict(zip(run.ids, predictions)))
    empty = sum(not p.strip() for p in predictions)
    if empty:
        logger.warning("%s: %d of %d predictions are empty (the model produced no text); they are kept and "
                       "score 0", run.output_dir, empty, len(predictions))
    summary = {"task": task_name, "examples": len(run.ids), "empty_predictions": empty,
               "generation_lengths": length_summary(records, record.generation.max_new_tokens),
               "finish_reasons": finish_reasons(records), **usage(records), "settings": record.to_dict(),
               "scores": None}
    if endpoint:
        summary["endpoint"] = endpoint
    if ignored:
        summary["ignored_flags"] = ignored
    if from_training_record:
        summary["from_training_record"] = from_training_record
    if user_adapters:
        summary["user_adapters"] = user_adapters
    missing = sum(not (isinstance(r, str) and r.strip()) for r in references)
    if missing:
        summary["not_scored"] = (f"{missing} of {len(references)} examples of split {record.task.split!r} have no "
                                 "reference output; predictions were written, scoring was skipped")
        logger.warning("%s: %s", run.output_dir, summary["not_scored"])
    else:
        users = users if all(isinstance(u, str) for u in users) else None
        write_predictions(run.output_dir / GOLDS_FILE, task_name, run.ids, dict(zip(run.ids, references)),
                          users=dict(zip(run.ids, users)) if users else None)
        summary["scores"], samples = score_with_samples(predictions, references, user_ids=users, progress=True)
        per_sample.write(run.output_dir / PER_SAMPLE_FILE, per_sample.rows(run.ids, predictions, samples, users))
    write_json_atomic(run.output_dir / SCORES_FILE, summary)
    return summary


def compare(with_profile: dict, without_profile: dict, with_dir: Path, without_dir: Path) -> dict:
    """Both runs' headline scores side by side, the gain from the profile, and whether it is significant: the
    paired bootstrap interval and sign-flip p-value of with-profile minus no-profile per example and, when the
    split names users, per user (each user counts once): scoring/significance.py's one paired comparison, with its
    default resamples, as the cards, results.md and the leaderboard show it."""
    scored = with_profile["scores"] and without_profile["scores"]
    ours, baseline = ((with_profile["scores"]["metrics"], without_profile["scores"]["metrics"]) if scored
                      else (None, None))
    comparison = {"task": with_profile["task"], "with_profile": ours, "no_profile": baseline}
    if scored:
        comparison["gain"] = {metric: ours[metric] - baseline[metric] for metric in ours}
        pair = read_pair(without_dir / PER_SAMPLE_FILE, with_dir / PER_SAMPLE_FILE, without_dir / GOLDS_FILE,
                         with_dir / GOLDS_FILE)
        users = pair.users if all(isinstance(user, str) for user in pair.users) else None
        comparison["significance"] = {"a": "no profile", "b": "with profile",
                                      **significance.paired_report(pair.a, pair.b, users)}
    return comparison


def seed_summary(by_seed: dict[int, list[dict]]) -> dict:
    """seeds.json: each metric of each seed's runs, and their mean and sample standard deviation (n - 1) across
    the seeds, for the run with profile, the run without (with --compare_no_profile) and the gain between them."""
    first = next(iter(by_seed.values()))
    parts = {"with_profile": {seed: runs[0]["scores"] for seed, runs in by_seed.items()}}
    if len(first) > 1:
        parts["no_profile"] = {seed: runs[1]["scores"] for seed, runs in by_seed.items()}
    summary = {"task": first[0]["task"], "seeds": list(by_seed),
               "std": "sample standard deviation across seeds (n - 1)"}
    if any(scores is None for part in parts.values() for scores in part.values()):
        return {**summary, "not_scored": "the split has no reference outputs"}
    per_seed = {name: {seed: scores["metrics"] for seed, scores in part.items()} for name, part in parts.items()}
    if "no_profile" in per_seed:
        per_seed["gain"] = {seed: {metric: value - per_seed["no_profile"][seed][metric] for metric, value in
                                   metrics.items()} for seed, metrics in per_seed["with_profile"].items()}
    for name, values in per_seed.items():
        metric_names = next(iter(values.values()))
        summary[name] = {"per_seed": {str(seed): metrics for seed, metrics in values.items()},
                         "mean": {m: statistics.fmean(v[m] for v in values.values()) for m in metric_names},
                         "std": {m: statistics.stdev(v[m] for v in values.values()) for m in metric_names}}
    return summary
