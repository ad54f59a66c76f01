"""Compare two systems on the same examples: per metric, b - a with a paired bootstrap interval and p-value.

    python evaluation/compare.py --golds golds.json --preds_a baseline.json --preds_b ours.json \\
        [--metrics rouge1,rougeL,meteor] [--resamples 10000] [--seed 0] [--by_user] [--output_file cmp.json]

Both prediction files are scored against the golds as eval_task.py scores them; the comparison is
scoring/paired.py's, the statistics scoring/significance.py's (see docs/evaluation.md,
"Comparing two systems"). With --by_user each user's examples are averaged first, so that every user counts once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import run_command  # noqa: E402
from longlamp_io import write_json_atomic  # noqa: E402
from scoring import (  # noqa: E402
    HEADLINE_METRICS,
    files,
    metrics,
    significance,  # noqa: E402
)
from scoring.paired import comparison, table  # noqa: E402

logger = logging.getLogger(__name__)


def _metric_names(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in metrics.PER_SAMPLE_METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown or corpus-level metrics {unknown}; choose among {', '.join(metrics.PER_SAMPLE_METRICS)}")
    return names


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golds", "--golds_json", required=True, help="gold outputs (the benchmark's JSON format)")
    parser.add_argument("--preds_a", required=True, help="predictions of system a, the baseline (same format)")
    parser.add_argument("--preds_b", required=True, help="predictions of system b; differences are b - a")
    parser.add_argument("--metrics", type=_metric_names, default=HEADLINE_METRICS,
                        help=f"comma-separated, among {','.join(metrics.PER_SAMPLE_METRICS)} "
                             f"(default: {','.join(HEADLINE_METRICS)})")
    parser.add_argument("--resamples", type=int, default=significance.DEFAULT_RESAMPLES,
                        help="bootstrap resamples and random sign patterns (default: %(default)s)")
    parser.add_argument("--confidence", type=float, default=significance.DEFAULT_CONFIDENCE,
                        help="confidence of the interval (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: %(default)s)")
    parser.add_argument("--by_user", action="store_true",
                        help="also compare per-user means (each user counts once; the golds need a 'user' field)")
    parser.add_argument("--num_workers", type=int, default=None, help="scoring processes (default: all cores)")
    parser.add_argument("--output_file", default=None, help="write the comparison here (JSON)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.resamples < 1 or not 0 < args.confidence < 1:
        raise ValueError(f"--resamples must be >= 1 and --confidence in (0, 1), got {args.resamples}, "
                         f"{args.confidence}")
    golds = files.read_task_file(args.golds, "golds")
    a, b = files.read_task_file(args.preds_a, "predictions"), files.read_task_file(args.preds_b, "predictions")
    result = comparison(golds, a, b, args.metrics, args.resamples, args.confidence, args.seed, args.by_user,
                        args.num_workers)
    if args.output_file:
        write_json_atomic(args.output_file, result)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
