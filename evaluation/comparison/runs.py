"""Finding and reading finished runs, each into one `Run` of per-sample scores, for the leaderboard.

A folder holds a run when it has:

- a zero-shot summary: `scores.json` (evaluation/zero_shot/) or `results.json`, its published copy
  (publishing/hub.py `stage_run`: the same summary, machine paths reduced), with `per_sample.jsonl`, else
  `predictions.json` and `golds.json`, scored here (golds are never published) and cached under the cache folder
  by the two files' contents; its `no_profile/` run is its baseline;
- a training run (training/loop.py): `predictions_test.json` and its record, `final/` or `best/`
  `training_config.json` (`training_config.json` at the top once published), scored against the gold file of its
  task given with --golds;
- zero-shot results published into a model repository: `longlamp/<config>/`, each one a run as above.

A folder is read the same whether it was written here or downloaded from the Hub (evaluation/comparison/hub_runs.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longlamp_runs import (
    BEST_DIR,
    FINAL_DIR,
    GOLDS_FILE,
    NO_PROFILE_DIR,
    PER_SAMPLE_FILE,
    PREDICTIONS_FILE,
    PUBLISHED_RESULTS_DIR,
    PUBLISHED_SUMMARY_FILE,
    SCORES_FILE,
    TEST_PREDICTIONS_FILE,
    TRAINING_RECORD_FILE,
)
from publishing.runs import public_name
from scoring import files, metrics, per_sample

SCORER_PACKAGES = ("nltk", "rouge_score", "sacrebleu")  # the versions that can change a score (rust ROUGE is
# checked bit-identical to rouge_score at run time, so its version does not)
SUMMARY_FILES = (SCORES_FILE, PUBLISHED_SUMMARY_FILE)
# a training run's record: beside its final or best model, or at the top once published
RECORD_FILES = (f"{FINAL_DIR}/{TRAINING_RECORD_FILE}", f"{BEST_DIR}/{TRAINING_RECORD_FILE}", TRAINING_RECORD_FILE)


@dataclass
class Run:
    """One scored run, its per-sample scores aligned to `ids`."""

    path: Path  # the folder read
    name: str  # as the leaderboard shows it
    where: str  # the folder, or the Hub repository it came from
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

    def values(self, metric: str, ids: list[str]) -> np.ndarray:
        """The metric's per-sample scores in the order of `ids`."""
        if ids == self.ids:
            return self.scores[metric]
        position = {example_id: i for i, example_id in enumerate(self.ids)}
        return self.scores[metric][[position[i] for i in ids]]


@dataclass
class Skipped:
    where: str
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


def data_identity(settings: dict, ranked_task: str | None = None) -> str:
    """The data a run read: its source and the dataset revision where one was recorded. A local path counts by its
    last part, as the toolkit publishes it, so a run and its published copy are ranked together. Ranked data
    (retrieval/rank_profiles.py: the split's rows, ids and outputs, each profile reordered) counts as the config
    it was ranked from, `ranked_task`, so a retriever's run ranks beside the no-profile run on that config."""
    data, revision = settings.get("data", "?"), settings.get("revision")
    if isinstance(data, dict):  # zero_shot.data_source: {"data", "data_dir", "revision", "fingerprint"}
        data, revision = data.get("data", "?"), data.get("revision") or revision
    source = ranked_task.removeprefix("LongLaMP_") if ranked_task else public_name(str(data))
    return f"{source}@{revision}" if revision else source


def _summary_file(folder: Path) -> Path | None:
    return next((folder / name for name in SUMMARY_FILES if (folder / name).is_file()), None)


def _zero_shot_run(path: Path, summary_path: Path, name: str, where: str, cache_dir: Path) -> Run | Skipped:
    summary = files.load_json(summary_path)
    if not isinstance(summary, dict) or "settings" not in summary:
        return Skipped(where, f"{summary_path.name} is not a zero-shot run's summary")
    if not summary.get("scores"):
        return Skipped(where, summary.get("not_scored") or "the run was not scored")
    settings = summary["settings"]
    if (path / PER_SAMPLE_FILE).exists():
        ids, _, scores = per_sample.read(path / PER_SAMPLE_FILE)
    elif (path / GOLDS_FILE).exists() and (path / PREDICTIONS_FILE).exists():
        ids, scores = _score_files(path / GOLDS_FILE, path / PREDICTIONS_FILE, cache_dir)
    else:
        return Skipped(where, f"neither {PER_SAMPLE_FILE} nor {PREDICTIONS_FILE} with {GOLDS_FILE}")
    profile = settings.get("use_profile")
    return Run(path, name, where, "zero-shot", summary["task"], settings.get("model", "?"),
               settings.get("retriever") if profile else None, settings.get("num_retrieved") if profile else None,
               settings.get("split", "?"),
               data_identity(settings, summary["task"] if settings.get("ranked_by") else None),
               scorer_identity(summary["scores"].get("versions", {}), summary["scores"].get("settings", {})), ids,
               scores)


def _training_run(path: Path, name: str, where: str, golds_by_task: dict[str, Path], cache_dir: Path) -> Run | Skipped:
    record = next((path / r for r in RECORD_FILES if (path / r).is_file()), None)
    if record is None:
        return Skipped(where, f"{TEST_PREDICTIONS_FILE} without {FINAL_DIR}/{TRAINING_RECORD_FILE}")
    config = files.load_json(record)
    task = files.read_task_file(path / TEST_PREDICTIONS_FILE, "predictions").task
    if task not in golds_by_task:
        return Skipped(where, f"a training run of {task}: pass its test golds with --golds")
    ids, scores = _score_files(golds_by_task[task], path / TEST_PREDICTIONS_FILE, cache_dir)
    profile = config.get("use_profile")
    return Run(path, name, where, "training", task, config.get("model_name", "?"),
               config.get("retriever") if profile else None, config.get("num_retrieved") if profile else None, "test",
               data_identity({"data": config.get("test_data", "?"), "revision": config.get("revision")},
                             task if profile and config.get("is_ranked") else None),
               _current_scorer(), ids, scores)


def load_run(path: Path, golds_by_task: dict[str, Path], cache_dir: Path, name: str | None = None,
             where: str | None = None) -> Run | Skipped:
    """A run folder as a Run (with its no_profile/ baseline when present), or why it cannot be ranked."""
    name, where = name or path.name, where or str(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such run folder")
    summary = _summary_file(path)
    if summary is not None:
        run = _zero_shot_run(path, summary, name, where, cache_dir)
        baseline_summary = _summary_file(path / NO_PROFILE_DIR)
        if isinstance(run, Run) and baseline_summary is not None:
            baseline = _zero_shot_run(path / NO_PROFILE_DIR, baseline_summary, f"{name}/{NO_PROFILE_DIR}",
                                      f"{where}/{NO_PROFILE_DIR}", cache_dir)
            run.baseline = baseline if isinstance(baseline, Run) else None
        return run
    if (path / TEST_PREDICTIONS_FILE).exists():
        return _training_run(path, name, where, golds_by_task, cache_dir)
    return Skipped(where, f"not a run folder (no {' or '.join(SUMMARY_FILES)}, no {TEST_PREDICTIONS_FILE})")


def holds_run(folder: Path) -> bool:
    """Whether a folder holds a run of its own or published results of one (see the module docstring)."""
    return (_summary_file(folder) is not None or (folder / TEST_PREDICTIONS_FILE).is_file()
            or any(_summary_file(sub) for sub in (folder / PUBLISHED_RESULTS_DIR).glob("*")))


def load_runs(folder: Path, golds_by_task: dict[str, Path], cache_dir: Path, name: str | None = None,
              where: str | None = None) -> list[Run | Skipped]:
    """Every run a folder holds: its own, and each config's zero-shot results published into a model repository."""
    name, where = name or folder.name, where or str(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such run folder")
    published = sorted(sub for sub in (folder / PUBLISHED_RESULTS_DIR).glob("*") if _summary_file(sub))
    found = []
    if not published or _summary_file(folder) or (folder / TEST_PREDICTIONS_FILE).is_file():
        found.append(load_run(folder, golds_by_task, cache_dir, name, where))
    for sub in published:
        inside = sub.relative_to(folder).as_posix()
        found.append(load_run(sub, golds_by_task, cache_dir, f"{name}/{inside}", f"{where}/{inside}"))
    return found
