"""Publish an existing run folder (training or zero-shot) to the Hub, with its card, plot and results.

    python evaluation/push_results.py --run_dir runs/review --hub_model_id NS/NAME [--hub_repo_type dataset]
        [--private] [--dry_run]

`--dry_run` writes the folder that would be uploaded (beside the run, in RUN_DIR/hub-upload/) and uploads
nothing. The card is also (re)written as RUN_DIR/README.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import run_command  # noqa: E402
from publishing.cli import add_publishing_arguments, publish, split_publishing  # noqa: E402

DRY_RUN_FOLDER = "hub-upload"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="a training output_dir or a zero-shot run folder")
    parser.add_argument("--dry_run", action="store_true", help="write what would be uploaded; upload nothing")
    add_publishing_arguments(parser, with_push_flag=False)
    args = parser.parse_args(argv)
    if not args.hub_model_id:
        parser.error("--hub_model_id is required")
    return args


def main(argv=None) -> int:
    from publishing.cards import write_run_card

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    values, hub = split_publishing(vars(parse_args(argv)))
    run_dir = Path(values["run_dir"])
    print(f"card: {write_run_card(run_dir, hub.hub_model_id)}")
    dry_run_dir = run_dir / DRY_RUN_FOLDER if values["dry_run"] else None
    where = publish(run_dir, hub, dry_run_dir)
    print(f"{'would upload' if dry_run_dir else 'pushed to'}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
