"""Score one LongLaMP task: a gold file against a prediction file (the benchmark's `eval_task.py`).

    python evaluation/eval_task.py --golds_json golds.json --preds_json preds.json \\
        --task_name LongLaMP_product_review_user --output_file results.json

Both files are `{"task": ..., "golds": [{"id", "output"}]}`; see docs/evaluation.md for the checks, the output
file and the exit codes (0 scored, 2 bad input or arguments, 3 NLTK data missing).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation import files, metrics, per_sample  # noqa: E402
from evaluation.nltk_setup import MissingNLTKDataError  # noqa: E402
from evaluation.task_names import canonical_task_name  # noqa: E402

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
EXIT_MISSING_DATA = 3


def score_task_with_samples(golds: files.TaskFile, predictions: files.TaskFile, task_name: str | None = None,
                            **scoring) -> tuple[dict, list[dict]]:
    """Check that two read task files belong together, then score them: the report {"task", "golds_json",
    "preds_json", ...} and the per-sample rows (evaluation/per_sample.py) in gold order."""
    task = files.check_task(golds, predictions, task_name)
    outputs = files.predictions_in_gold_order(golds, predictions)
    result, scores = metrics.score_with_samples(outputs, golds.outputs, user_ids=golds.users, **scoring)
    report = {"task": task, "golds_json": golds.path, "preds_json": predictions.path, **result}
    return report, per_sample.rows(golds.ids, outputs, scores, golds.users)


def score_task(golds: files.TaskFile, predictions: files.TaskFile, task_name: str | None = None, **scoring) -> dict:
    """Check that two read task files belong together, then score them: {"task", "golds_json", "preds_json", ...}."""
    return score_task_with_samples(golds, predictions, task_name, **scoring)[0]


def evaluate_files(
    golds_json: str | Path, preds_json: str | Path, task_name: str | None = None, output_file: str | Path | None = None,
    per_sample_file: str | Path | None = None, **scoring,
) -> dict:
    """Score a prediction file against a gold file; write the result to `output_file` (atomically) if given,
    and one line per example to `per_sample_file` if given (evaluation/per_sample.py).

    `task_name` defaults to the golds' task; `scoring` goes to `evaluation.metrics.score` (metrics, bootstrap,
    seed, num_workers, progress, ...). Raises files.InputFileError for bad input, before anything is written.
    """
    golds = files.read_task_file(golds_json, "golds")
    predictions = files.read_task_file(preds_json, "predictions")
    logger.info("scoring %d predictions for %s", len(predictions.ids), golds.task)
    report, samples = score_task_with_samples(golds, predictions, task_name, **scoring)
    if per_sample_file is not None:
        per_sample.write(per_sample_file, samples)
    if output_file is not None:
        files.write_json_atomic(output_file, report)
    return report


def _task_name(value: str) -> str:
    try:
        return canonical_task_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _metric_names(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in metrics.METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metrics {unknown}; choose among {', '.join(metrics.METRICS)}")
    return names


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The scoring options both commands share."""
    parser.add_argument("--output_file", required=True, help="where to write the results (JSON)")
    parser.add_argument("--metrics", type=_metric_names, default=metrics.DEFAULT_METRICS,
                        help=f"comma-separated, among {','.join(metrics.METRICS)} (default: the first five)")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap resamples, 0 for none (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and evaluate-compatible values")
    parser.add_argument("--num_workers", type=int, default=None, help="worker processes (default: all cores)")


def scoring_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of metrics.score that the shared options set."""
    return {"metrics": args.metrics, "bootstrap": args.bootstrap, "seed": args.seed, "num_workers": args.num_workers,
            "progress": True}


def report_errors(function, *args, **kwargs) -> int:
    """Run a command; bad input and missing NLTK data become one message on stderr and an exit code."""
    try:
        function(*args, **kwargs)
    except files.InputFileError as error:
        logger.error("error: %s", error)
        return EXIT_BAD_INPUT
    except MissingNLTKDataError as error:
        logger.error("error: %s", error)
        return EXIT_MISSING_DATA
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golds_json", required=True, help="gold outputs of the task (JSON)")
    parser.add_argument("--preds_json", required=True, help="predictions for the same ids (JSON)")
    parser.add_argument("--task_name", type=_task_name, default=None,
                        help="e.g. LongLaMP_product_review_user (default: the task named in the gold file)")
    add_scoring_arguments(parser)
    parser.add_argument("--per_sample_file", default=None,
                        help="also write each example's scores here, one JSON line per example (id, user, "
                             "prediction_words, each per-sample metric); see docs/evaluation.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return report_errors(evaluate_files, args.golds_json, args.preds_json, args.task_name, args.output_file,
                         args.per_sample_file, **scoring_options(args))


if __name__ == "__main__":
    sys.exit(main())
