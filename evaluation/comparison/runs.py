"""Finding and reading finished runs, each into one `Run` of per-sample scores, for the leaderboard.

Every folder is read by `longlamp_runs.read_run`, the reader the cards and uploads use, so a run reads the same
whether it was written here or downloaded from the Hub (evaluation/comparison/hub_runs.py). A folder holds a run
when it has:

- a zero-shot or per-user summary: `scores.json` or `results.json`, its published copy (machine paths reduced),
  with `per_sample.jsonl`, else `predictions.json` and `golds.json`, scored here (golds are never published) and
  cached under the cache folder by the two files' contents; its `no_profile/` run is its baseline;
- a training run: `predictions_test.json` and its model's record (`final/` or `best/` `training_config.json`, or
  `training_config.json` at the top once published), scored against the gold file of its task given with --golds;
- zero-shot results published into a model repository: `longlamp/<config>/`, each one a run as above.

A per-sample file is checked where it is read (`scoring.per_sample.read_variant`): one that is not the run's (a
truncated file, an id twice, a NaN, ids other than the golds', another count than its scores) is not ranked, and
the reason names the file and the problem.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longlamp_errors import DataError, RunFolderError
from longlamp_runs import (
    NO_PROFILE_DIR,
    PER_SAMPLE_FILE,
    PREDICTIONS_FILE,
    TEST_PREDICTIONS_FILE,
    RunFolder,
    RunRecord,
    Variant,
    published_runs,
    read_run,
    summary_file,
)
from publishing.runs import public_name
from scoring import files, metrics, per_sample

SCORER_PACKAGES = ("nltk", "rouge_score", "sacrebleu")  # the versions that can change a score (rust ROUGE is
# checked bit-identical to rouge_score at run time, so its version does not)


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


def data_identity(record: RunRecord, data: str | None = None) -> str:
    """The data a run read: its source (`data`, else the record's) and the dataset revision where one was recorded.
    A local path counts by its last part, as the toolkit publishes it, so a run and its published copy are ranked
    together. Ranked data (retrieval/rank_profiles.py: the split's rows, ids and outputs, each profile reordered)
    counts as the config it was ranked from, so a retriever's run ranks beside the no-profile run on that config."""
    ranked = record.data.ranked_by is not None or (record.kind == "training" and record.retrieval.is_ranked)
    source = record.task.config if ranked else public_name(str(data or record.data.data))
    revision = record.data.revision
    return f"{source}@{revision}" if revision else source


def _zero_shot_run(variant: Variant, name: str, where: str, cache_dir: Path) -> Run | Skipped:
    if variant.scores is None:
        return Skipped(where, variant.not_scored)
    path = variant.folder
    try:
        if variant.per_sample_file.exists():
            ids, _, scores = per_sample.read_variant(variant)
        elif variant.golds_file.exists() and variant.predictions_file.exists():
            ids, scores = _score_files(variant.golds_file, variant.predictions_file, cache_dir)
        else:
            return Skipped(where, f"neither {PER_SAMPLE_FILE} nor {PREDICTIONS_FILE} with {variant.golds_file.name}")
    except (DataError, RunFolderError) as error:
        return Skipped(where, str(error))
    record = variant.record
    retrieval = record.retrieval
    profile = retrieval.use_profile
    return Run(path, name, where, "zero-shot", variant.task_name, record.model.name,
               (retrieval.signature or retrieval.retriever) if profile else None,
               retrieval.num_retrieved if profile else None, record.task.split, data_identity(record),
               scorer_identity(variant.scores.versions, variant.scores.scorer_settings), ids, scores)


def _training_run(run: RunFolder, name: str, where: str, golds_by_task: dict[str, Path],
                  cache_dir: Path) -> Run | Skipped:
    record = run.record
    task = files.read_task_file(run.test_predictions, "predictions").task
    if task not in golds_by_task:
        return Skipped(where, f"a training run of {task}: pass its test golds with --golds")
    ids, scores = _score_files(golds_by_task[task], run.test_predictions, cache_dir)
    retrieval = record.retrieval
    profile = retrieval.use_profile
    return Run(run.folder, name, where, "training", task, record.model.name,
               retrieval.retriever if profile else None, retrieval.num_retrieved if profile else None, "test",
               data_identity(record, (record.training.test_data if record.training else None) or "?"),
               _current_scorer(), ids, scores)


def load_run(path: Path, golds_by_task: dict[str, Path], cache_dir: Path, name: str | None = None,
             where: str | None = None) -> Run | Skipped:
    """A run folder as a Run (with its no_profile/ baseline when present), or why it cannot be ranked."""
    name, where = name or path.name, where or str(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such run folder")
    try:
        run = read_run(path)
    except RunFolderError as error:
        return Skipped(where, str(error))
    if run.kind == "training":  # its test predictions are ranked (its validation generations are not)
        if run.test_predictions is None:
            return Skipped(where, f"a training run without {TEST_PREDICTIONS_FILE}: nothing to rank")
        return _training_run(run, name, where, golds_by_task, cache_dir)
    ranked = _zero_shot_run(run.variants[0], name, where, cache_dir)
    if isinstance(ranked, Run) and len(run.variants) > 1:
        baseline = _zero_shot_run(run.variants[1], f"{name}/{NO_PROFILE_DIR}", f"{where}/{NO_PROFILE_DIR}", cache_dir)
        ranked.baseline = baseline if isinstance(baseline, Run) else None
    return ranked


def holds_run(folder: Path) -> bool:
    """Whether a folder holds a run of its own or published results of one (see the module docstring)."""
    return (summary_file(folder) is not None or (folder / TEST_PREDICTIONS_FILE).is_file()
            or bool(published_runs(folder)))


def load_runs(folder: Path, golds_by_task: dict[str, Path], cache_dir: Path, name: str | None = None,
              where: str | None = None) -> list[Run | Skipped]:
    """Every run a folder holds: its own, and each config's zero-shot results published into a model repository."""
    name, where = name or folder.name, where or str(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such run folder")
    published = published_runs(folder)
    found = []
    if not published or summary_file(folder) or (folder / TEST_PREDICTIONS_FILE).is_file():
        found.append(load_run(folder, golds_by_task, cache_dir, name, where))
    for sub in published:
        inside = sub.relative_to(folder).as_posix()
        found.append(load_run(sub, golds_by_task, cache_dir, f"{name}/{inside}", f"{where}/{inside}"))
    return found
