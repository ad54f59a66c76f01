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

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.comparison.board import build  # noqa: E402
from longlamp_cli import ArgumentParser, SeedArguments, arg, output_folder, reuse, run_command  # noqa: E402
from scoring import metrics  # noqa: E402
from scoring.cli import ComparisonArguments  # noqa: E402


@dataclass(kw_only=True)
class LeaderboardArguments(SeedArguments):
    _argument_group_name = "leaderboard"
    runs: list[str] = arg("finished run folders (zero-shot or training) or Hub repositories they were pushed to "
                          "(owner/name[@revision]; datasets/owner/name for a dataset repository only)",
                          positional=True, metavar="RUN_DIR_OR_HUB_REPO")
    output: str = arg("folder for the leaderboard files", aliases=("--output_dir",), type=output_folder)
    metric: str = arg("per-sample metric to rank by", default="rougeL", choices=metrics.PER_SAMPLE_METRICS)
    golds: list[str] = arg("gold file of a task (repeatable): training runs of that task are scored against it "
                           "(default: none)", default_factory=list, action="append")
    resamples: int = reuse(ComparisonArguments, "resamples")


def make_parser() -> ArgumentParser:
    return ArgumentParser(LeaderboardArguments, description=__doc__.split("\n")[0])


def main(argv=None) -> int:
    args = make_parser().parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    output = Path(args.output)
    result = build(args.runs, output, args.metric, [Path(golds) for golds in args.golds], args.resamples, args.seed)
    ranked = sum(len(g["rows"]) for groups in result["configs"].values() for g in groups)
    print(f"{ranked} runs ranked in {len(result['configs'])} config(s), {len(result['not_ranked'])} not ranked: "
          f"{output / 'leaderboard.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
