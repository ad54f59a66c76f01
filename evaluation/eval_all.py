"""Score every task of a gold zip against a prediction zip (the benchmark's `eval_all.py`).

    python evaluation/eval_all.py --golds_zip golds.zip --preds_zip preds.zip --temp_dir tmp \\
        --output_file results.json

Each zip holds task files (`{"task": ..., "golds": [...]}`, any names, any folders); a file's task is the one
it names. Every task of the golds is scored that has a prediction file; the others are listed as missing.
Unlike LaMP's scorer, no fixed set of tasks is required. See docs/evaluation.md.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.scoring import files, per_sample  # noqa: E402
from evaluation.eval_task import (  # noqa: E402
    add_scoring_arguments,
    exit_code_for_missing_nltk_data,
    score_task_with_samples,
    scoring_options,
)
from longlamp_cli import ArgumentParser, check_folder, positive_int, run_command  # noqa: E402
from longlamp_io import write_json_atomic  # noqa: E402
from longlamp_errors import DataError  # noqa: E402

logger = logging.getLogger(__name__)


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
    anything is written. `scoring` goes to `evaluation.scoring.metrics.score`.
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


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golds_zip", required=True, help="zip of gold files, one per task")
    parser.add_argument("--preds_zip", required=True, help="zip of prediction files, one per task")
    parser.add_argument("--temp_dir", default=None, help="folder to extract into (default: the system's temp folder)")
    parser.add_argument("--max_unzipped_mb", type=positive_int, default=files.MAX_UNZIPPED_BYTES // 2**20,
                        help="refuse a zip that unpacks to more than this many MiB")
    add_scoring_arguments(parser)
    parser.add_argument("--per_sample_dir", default=None,
                        help="also write each task's per-sample scores into this folder, as "
                             "<task>.per_sample.jsonl (eval_task.py's --per_sample_file format)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = scoring_options(args)
    temp_dir = check_folder(args.temp_dir, "--temp_dir") if args.temp_dir is not None else None
    per_sample_dir = check_folder(args.per_sample_dir, "--per_sample_dir") if args.per_sample_dir else None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return exit_code_for_missing_nltk_data(
        lambda: evaluate_zips(args.golds_zip, args.preds_zip, temp_dir, args.output_file,
                              max_unzipped_bytes=args.max_unzipped_mb * 2**20,
                              per_sample_dir=per_sample_dir, **options))


if __name__ == "__main__":
    sys.exit(run_command(main))
