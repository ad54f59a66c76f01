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
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import ArgumentParser, arg, output_file, run_command  # noqa: E402
from scoring.cli import ScoringArguments, exit_code_for_missing_nltk_data  # noqa: E402
from scoring.task_names import canonical_task_name  # noqa: E402
from scoring.tasks import evaluate_files  # noqa: E402


def task_name(value: str) -> str:
    """argparse type: a scorer task name or one of its aliases, as the canonical name."""
    try:
        return canonical_task_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(kw_only=True)
class EvalTaskArguments(ScoringArguments):
    _argument_group_name = "files"
    golds_json: str = arg("gold outputs of the task (JSON)")
    preds_json: str = arg("predictions for the same ids (JSON)")
    task_name: str | None = arg("e.g. LongLaMP_product_review_user (default: the task named in the gold file)",
                                default=None, type=task_name)
    per_sample_file: str | None = arg("also write each example's scores here, one JSON line per example (id, user, "
                                      "prediction_words, each per-sample metric); see docs/evaluation.md (default: "
                                      "none)", default=None, type=output_file)


def make_parser() -> ArgumentParser:
    return ArgumentParser(EvalTaskArguments, description=__doc__.split("\n")[0])


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return exit_code_for_missing_nltk_data(
        lambda: evaluate_files(args.golds_json, args.preds_json, args.task_name, args.output_file,
                               args.per_sample_file, **args.options()))


if __name__ == "__main__":
    sys.exit(run_command(main))
