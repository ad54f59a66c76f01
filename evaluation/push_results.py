"""Publish an existing run folder (training or zero-shot) to the Hub, with its card, plot and results.

    python evaluation/push_results.py --run_dir runs/review --hub_model_id NS/NAME [--hub_repo_type dataset]
        [--private] [--dry_run]

`--dry_run` writes the folder that would be uploaded (beside the run, in RUN_DIR/hub-upload/), uploads nothing and
changes nothing else in the run folder. A push also (re)writes the card as RUN_DIR/README.md.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import ArgumentParser, arg, reuse, run_command  # noqa: E402
from publishing.cli import HubArguments, HubRepositoryArguments, publish  # noqa: E402

DRY_RUN_FOLDER = "hub-upload"


@dataclass(kw_only=True)
class PushResultsArguments(HubRepositoryArguments):
    """The run to publish, and where: HubArguments' flags (this command always pushes, so no --push_to_hub)."""

    _argument_group_name = "push"
    run_dir: str = arg("a training output_dir or a zero-shot run folder", exists="folder")
    dry_run: bool = arg(f"write what would be uploaded into RUN_DIR/{DRY_RUN_FOLDER}/; upload nothing", default=False)
    hub_model_id: str = reuse(HubRepositoryArguments, "hub_model_id", default=dataclasses.MISSING,
                              help="Hub repository NAMESPACE/NAME to publish to")
    hub_repo_type: str = reuse(HubArguments, "hub_repo_type")


def make_parser() -> ArgumentParser:
    return ArgumentParser(PushResultsArguments, description=__doc__.split("\n\n")[0])


def main(argv=None) -> int:
    from publishing.cards import write_run_card

    args = make_parser().parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.run_dir)
    dry_run_dir = run_dir / DRY_RUN_FOLDER if args.dry_run else None
    where = publish(run_dir, args, dry_run_dir)
    if dry_run_dir is None:  # after the push, so that a refused one leaves the run folder as it was
        print(f"card: {write_run_card(run_dir, args.hub_model_id)}")
    print(f"{'would upload' if dry_run_dir else 'pushed to'}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
