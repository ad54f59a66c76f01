"""Finding and reading finished runs, each into one `Run` of per-sample scores, for the leaderboard.

A run folder is either a zero-shot run (evaluation/zero_shot.py: scores.json, predictions.json, golds.json,
and no_profile/ when it was compared without profile) or a training run (training/loop.py:
predictions_test.json and final/training_config.json, scored against the gold file of its task given with
--golds). Per-sample scores come from the run's per_sample.jsonl when it has one, else they are computed here
from its predictions and golds and cached under the cache folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation import files, metrics, per_sample

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
