"""Scoring task files: one gold file against one prediction file, or every task of a gold zip against a prediction
zip, as evaluation/eval_task.py and evaluation/eval_all.py (the benchmark's commands) do."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from longlamp_cli import check_folder
from longlamp_errors import DataError
from longlamp_io import write_json_atomic
from scoring import files, metrics, per_sample

logger = logging.getLogger(__name__)


def score_task_with_samples(golds: files.TaskFile, predictions: files.TaskFile, task_name: str | None = None,
                            **scoring) -> tuple[dict, list[dict]]:
    """Check that two read task files belong together, then score them: the report {"task", "golds_json",
    "preds_json", ...} and the per-sample rows (scoring/per_sample.py) in gold order."""
    task = files.check_task(golds, predictions, task_name)
    outputs = files.predictions_in_gold_order(golds, predictions)
    result, scores = metrics.score_with_samples(outputs, golds.outputs, user_ids=golds.users, **scoring)
    report = {"task": task, "golds_json": golds.path, "preds_json": predictions.path, **result}
    return report, per_sample.rows(golds.ids, outputs, scores, golds.users)


def evaluate_files(
    golds_json: str | Path, preds_json: str | Path, task_name: str | None = None, output_file: str | Path | None = None,
    per_sample_file: str | Path | None = None, **scoring,
) -> dict:
    """Score a prediction file against a gold file; write the result to `output_file` (atomically) if given,
    and one line per example to `per_sample_file` if given (scoring/per_sample.py).

    `task_name` defaults to the golds' task; `scoring` goes to `scoring.metrics.score` (metrics, bootstrap,
    seed, num_workers, progress, ...). Raises DataError for bad input, before anything is written.
    """
    golds = files.read_task_file(golds_json, "golds")
    predictions = files.read_task_file(preds_json, "predictions")
    logger.info("scoring %d predictions for %s", len(predictions.ids), golds.task)
    report, samples = score_task_with_samples(golds, predictions, task_name, **scoring)
    if per_sample_file is not None:
        per_sample.write(per_sample_file, samples)
    if output_file is not None:
        write_json_atomic(output_file, report)
    return report


def read_zip_tasks(zip_path: str | Path, folder: Path, role: str, max_bytes: int) -> dict[str, files.TaskFile]:
    """Extract a zip into `folder` and read each JSON file in it as a task file: {task: file}."""
    tasks: dict[str, files.TaskFile] = {}
    for path in files.extract_zip(zip_path, folder, max_bytes):
        task_file = files.read_task_file(path, role, name=f"{zip_path}:{path.relative_to(folder).as_posix()}")
        if task_file.task in tasks:
            raise DataError(
                f"{zip_path}: two files for {task_file.task}: {tasks[task_file.task].path} and {task_file.path}"
            )
        tasks[task_file.task] = task_file
    if not tasks:
        raise DataError(f"{zip_path}: no JSON task file found")
    return tasks


def evaluate_zips(
    golds_zip: str | Path, preds_zip: str | Path, temp_dir: str | Path | None = None,
    output_file: str | Path | None = None, *, max_unzipped_bytes: int = files.MAX_UNZIPPED_BYTES,
    per_sample_dir: str | Path | None = None, **scoring,
) -> dict:
    """Score each task of `golds_zip` that `preds_zip` has predictions for; write to `output_file` if given, and
    each task's per-sample scores to `per_sample_dir/<task>.per_sample.jsonl` (once every task is scored).

    Extraction happens in a fresh folder inside `temp_dir` (default: the system's), removed afterwards.
    Every file is read and checked before any task is scored; DataError for bad input, before
    anything is written. `scoring` goes to `scoring.metrics.score`.
    """
    if temp_dir is not None:
        temp_dir = check_folder(temp_dir, "--temp_dir")  # absolute: member paths are reported relative to it
        temp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="longlamp-eval-", dir=temp_dir) as work:
        golds = read_zip_tasks(golds_zip, Path(work) / "golds", "golds", max_unzipped_bytes)
        predictions = read_zip_tasks(preds_zip, Path(work) / "predictions", "predictions", max_unzipped_bytes)
    tasks = [task for task in golds if task in predictions]
    missing = sorted(set(golds) - set(predictions))
    unexpected = sorted(set(predictions) - set(golds))
    if not tasks:
        raise DataError(
            f"{preds_zip} has predictions for none of the tasks of {golds_zip}: {', '.join(golds)}"
        )
    for task in tasks:  # every id check before the long part
        files.predictions_in_gold_order(golds[task], predictions[task])
    if missing:
        logger.warning("no predictions for %s", ", ".join(missing))
    if unexpected:
        logger.warning("predictions for tasks that have no golds, not scored: %s", ", ".join(unexpected))
    results, samples = {}, {}
    for task in sorted(tasks):
        logger.info("scoring %s (%d samples)", task, len(golds[task].ids))
        results[task], samples[task] = score_task_with_samples(golds[task], predictions[task], **scoring)
    if per_sample_dir is not None:
        Path(per_sample_dir).mkdir(parents=True, exist_ok=True)
        for task, rows in samples.items():
            per_sample.write(Path(per_sample_dir) / per_sample_file_name(task), rows)
    first = next(iter(results.values()))
    report = {
        "golds_zip": str(golds_zip),
        "preds_zip": str(preds_zip),
        "tasks": {task: {k: v for k, v in result.items() if k not in ("settings", "versions")}
                  for task, result in results.items()},
        "missing_predictions": missing,
        "unexpected_predictions": unexpected,
        "settings": first["settings"],
        "versions": first["versions"],
    }
    if output_file is not None:
        write_json_atomic(output_file, report)
    return report


def per_sample_file_name(task: str) -> str:
    """One task's per-sample file in --per_sample_dir (the per-sample format holds one task per file)."""
    return f"{task}.per_sample.jsonl"
