"""Compare two systems on the same examples: per metric, b - a with a paired bootstrap interval and p-value.

    python evaluation/compare.py --golds golds.json --preds_a baseline.json --preds_b ours.json \\
        [--metrics rouge1,rougeL,meteor] [--resamples 10000] [--seed 0] [--by_user] [--output_file cmp.json]

Both prediction files are scored against the golds as eval_task.py scores them; the comparison is
scoring/paired.py's, the statistics scoring/significance.py's (see docs/evaluation.md,
"Comparing two systems"). With --by_user each user's examples are averaged first, so that every user counts once.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import ArgumentParser, WorkerArguments, arg, reuse, run_command  # noqa: E402
from longlamp_io import write_json_atomic  # noqa: E402
from scoring import HEADLINE_METRICS, files, metrics  # noqa: E402
from scoring.cli import ComparisonArguments, ScoringArguments, metric_names  # noqa: E402
from scoring.paired import comparison, table  # noqa: E402

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class CompareArguments(WorkerArguments, ComparisonArguments):
    _argument_group_name = "files"
    golds: str = arg("gold outputs (the benchmark's JSON format)", aliases=("--golds_json",))
    preds_a: str = arg("predictions of system a, the baseline (same format)")
    preds_b: str = arg("predictions of system b; differences are b - a")
    metrics: str = arg(f"comma-separated per-sample metrics, among {','.join(metrics.PER_SAMPLE_METRICS)}",
                       default=HEADLINE_METRICS, type=metric_names(metrics.PER_SAMPLE_METRICS, "or corpus-level "))
    by_user: bool = arg("also compare per-user means (each user counts once; the golds need a 'user' field)",
                        default=False)
    output_file: str | None = reuse(ScoringArguments, "output_file", default=None,
                                    help="write the comparison here (JSON) (default: printed only)")


def make_parser() -> ArgumentParser:
    return ArgumentParser(CompareArguments, description=__doc__.split("\n")[0])


def main(argv=None) -> int:
    args = make_parser().parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
