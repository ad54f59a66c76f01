"""A leaderboard of finished runs: one ranked table per config, with intervals, significance and plots.

    python evaluation/leaderboard.py RUN_DIR_OR_HUB_REPO... --output leaderboard/ [--metric rougeL] \\
        [--golds test_golds.json]

Each argument is a run folder, zero-shot (evaluation/zero_shot/) or training (training/loop.py, scored against
the gold file of its task given with --golds), or the Hub repository a run was published to (`owner/name`,
`owner/name@revision`; evaluation/push_results.py): its scores and per-sample files are downloaded into the Hub
cache and read as a folder. Runs are ranked together only when they were scored on the same split, data,
examples and scorer versions; the others are ranked apart, with the reason. The library is
evaluation/comparison/ (runs, hub_runs, ranking, tables, plots, board); docs/evaluation.md says what is read.

Written to DIR: leaderboard.md, leaderboard.html (self-contained: the plots inline), leaderboard.json,
<config>.csv per config and <config>.png (the metric by retriever and k).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.comparison.board import build  # noqa: E402
from evaluation.comparison.ranking import DEFAULT_RESAMPLES  # noqa: E402
from longlamp_cli import ArgumentParser, add_flag, run_command  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_HUB_REPO",
                        help="finished run folders (zero-shot or training) or Hub repositories they were pushed to "
                             "(owner/name[@revision]; datasets/owner/name for a dataset repository only)")
    parser.add_argument("--output", "--output_dir", type=Path, required=True, help="folder for the leaderboard files")
    parser.add_argument("--metric", default="rougeL", help="per-sample metric to rank by")
    parser.add_argument("--golds", type=Path, action="append", default=[],
                        help="gold file of a task (repeatable): training runs of that task are scored against it")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help="sign patterns of each family's adjusted test (docs/evaluation.md)")
    add_flag(parser, "seed", help="seed of the resampling", default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {args.resamples}")
    result = build(args.runs, args.output, args.metric, args.golds, args.resamples, args.seed)
    ranked = sum(len(g["rows"]) for groups in result["configs"].values() for g in groups)
    print(f"{ranked} runs ranked in {len(result['configs'])} config(s), {len(result['not_ranked'])} not ranked: "
          f"{args.output / 'leaderboard.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
