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
from typing import Callable

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.scoring import files, metrics, per_sample  # noqa: E402
from evaluation.scoring.task_names import canonical_task_name  # noqa: E402
from longlamp_cli import (  # noqa: E402
    ArgumentParser,
    add_flag,
    check_output_file,
    non_negative_int,
    positive_int,
    run_command,
)
from longlamp_io import write_json_atomic  # noqa: E402
from longlamp_errors import DataError, MissingNLTKDataError  # noqa: E402

logger = logging.getLogger(__name__)

EXIT_MISSING_DATA = 3


def score_task_with_samples(golds: files.TaskFile, predictions: files.TaskFile, task_name: str | None = None,
                            **scoring) -> tuple[dict, list[dict]]:
    """Check that two read task files belong together, then score them: the report {"task", "golds_json",
    "preds_json", ...} and the per-sample rows (evaluation/scoring/per_sample.py) in gold order."""
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
    and one line per example to `per_sample_file` if given (evaluation/scoring/per_sample.py).

    `task_name` defaults to the golds' task; `scoring` goes to `evaluation.scoring.metrics.score` (metrics, bootstrap,
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
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(repeated)} given more than once")
    return names


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The scoring options both commands share."""
    parser.add_argument("--output_file", required=True, help="where to write the results (JSON)")
    parser.add_argument("--metrics", type=_metric_names, default=metrics.DEFAULT_METRICS,
                        help=f"comma-separated, among {','.join(metrics.METRICS)} (default: "
                        f"{','.join(metrics.DEFAULT_METRICS)})")
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000, metavar="N",
                        help="bootstrap resamples, 0 for none")
    add_flag(parser, "seed", type=non_negative_int, default=0,
             help="seed of the bootstrap and evaluate-compatible values")
    add_flag(parser, "num_workers", type=positive_int, help="worker processes (default: all cores)")


def scoring_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of metrics.score that the shared options set; refuses a folder as --output_file."""
    check_output_file(args.output_file, "--output_file")
    return {"metrics": args.metrics, "bootstrap": args.bootstrap, "seed": args.seed, "num_workers": args.num_workers,
            "progress": True}


def exit_code_for_missing_nltk_data(command: Callable[[], object]) -> int:
    """Run a scoring command; missing NLTK data is exit code 3 (documented) with the fix, bad input raises on."""
    try:
        command()
    except MissingNLTKDataError as error:
        logger.error("error: %s", error)
        return EXIT_MISSING_DATA
    return 0


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golds_json", required=True, help="gold outputs of the task (JSON)")
    parser.add_argument("--preds_json", required=True, help="predictions for the same ids (JSON)")
    parser.add_argument("--task_name", type=_task_name, default=None,
                        help="e.g. LongLaMP_product_review_user (default: the task named in the gold file)")
    add_scoring_arguments(parser)
    parser.add_argument("--per_sample_file", default=None,
                        help="also write each example's scores here, one JSON line per example (id, user, "
                             "prediction_words, each per-sample metric); see docs/evaluation.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = scoring_options(args)
    if args.per_sample_file is not None:
        check_output_file(args.per_sample_file, "--per_sample_file")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return exit_code_for_missing_nltk_data(
        lambda: evaluate_files(args.golds_json, args.preds_json, args.task_name, args.output_file,
                               args.per_sample_file, **options))


if __name__ == "__main__":
    sys.exit(run_command(main))
