"""What the scoring commands (evaluation/eval_task.py, evaluation/eval_all.py) share: their scoring flags, and exit
code 3 with the fix when NLTK's data is missing."""

from __future__ import annotations

import argparse
import logging
from typing import Callable

from longlamp_cli import add_flag, check_output_file, non_negative_int, positive_int
from longlamp_errors import MissingNLTKDataError
from scoring import metrics

logger = logging.getLogger(__name__)
EXIT_MISSING_DATA = 3


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
