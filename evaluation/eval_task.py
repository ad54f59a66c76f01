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

from longlamp_cli import ArgumentParser, check_output_file, run_command  # noqa: E402
from scoring.cli import add_scoring_arguments, exit_code_for_missing_nltk_data, scoring_options  # noqa: E402
from scoring.task_names import canonical_task_name  # noqa: E402
from scoring.tasks import evaluate_files  # noqa: E402


def _task_name(value: str) -> str:
    try:
        return canonical_task_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
