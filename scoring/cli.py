"""The flags of scoring and comparing prediction files, as argument dataclasses (longlamp_cli explains how commands
combine them), and exit code 3 with the fix when NLTK's data is missing."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Callable

from longlamp_cli import SeedArguments, WorkerArguments, arg, bounded_int, output_file
from longlamp_errors import MissingNLTKDataError
from scoring import metrics, significance

logger = logging.getLogger(__name__)
EXIT_MISSING_DATA = 3
# A million resamples put an interval's ends within about a thousandth of their spread, past anything a table shows;
# more only costs memory and time (ten billion asked numpy for 224 GiB).
MAX_RESAMPLES = 1_000_000


def metric_names(choices: tuple[str, ...], what: str = "") -> Callable[[str], tuple[str, ...]]:
    """argparse type: comma-separated metric names among `choices`, each once."""
    def convert(value: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in value.split(",") if name.strip())
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {what}metrics {unknown}; choose among {', '.join(choices)}")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise argparse.ArgumentTypeError(f"{', '.join(repeated)} given more than once")
        return names

    convert.__name__ = "metrics"
    return convert


def confidence_level(value: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    number = float(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


@dataclass(kw_only=True)
class ScoringArguments(SeedArguments, WorkerArguments):
    """What the scorers compute and where it goes (eval_task.py, eval_all.py)."""

    _argument_group_name = "scoring"
    output_file: str = arg("where the results go (JSON)", type=output_file)
    metrics: str = arg(f"comma-separated, among {','.join(metrics.METRICS)}", default=metrics.DEFAULT_METRICS,
                       type=metric_names(metrics.METRICS))
    bootstrap: int = arg("bootstrap resamples of each metric's 95% interval, 0 for none", default=1000,
                         type=bounded_int(0, MAX_RESAMPLES), metavar="N")

    def options(self) -> dict:
        """The keyword arguments of metrics.score that these flags set."""
        return {"metrics": self.metrics, "bootstrap": self.bootstrap, "seed": self.seed,
                "num_workers": self.num_workers, "progress": True}


@dataclass(kw_only=True)
class ComparisonArguments(SeedArguments):
    """The paired comparison of two systems (compare.py, leaderboard.py): scoring/significance.py's one test."""

    _argument_group_name = "comparison"
    resamples: int = arg("bootstrap resamples and random sign patterns per test", metavar="N",
                         default=significance.DEFAULT_RESAMPLES, type=bounded_int(1, MAX_RESAMPLES))
    confidence: float = arg("confidence of the interval", default=significance.DEFAULT_CONFIDENCE,
                            type=confidence_level)


def exit_code_for_missing_nltk_data(command: Callable[[], object]) -> int:
    """Run a scoring command; missing NLTK data is exit code 3 (documented) with the fix, bad input raises on."""
    try:
        command()
    except MissingNLTKDataError as error:
        logger.error("error: %s", error)
        return EXIT_MISSING_DATA
    return 0
