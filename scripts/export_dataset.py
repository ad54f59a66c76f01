"""Write LongLaMP configs as a standard Hub dataset folder (parquet per split, a card), and push it if asked.

    python scripts/export_dataset.py --config product_review_user topic_writing_temporal --data_dir data/sample \
        --output exported/ [--push_to_hub NS/NAME] [--private]
    python scripts/export_dataset.py --config product_review_user --ranked validation=ranked/val_bm25.parquet \
        --output exported/

Plain `datasets.load_dataset("exported/", "product_review_user")` loads the folder (no import of this toolkit),
and `load_dataset("NS/NAME", "product_review_user")` after the push. The email task (Avocado, LDC-licensed) is
exported and pushed privately unless `--public_despite_license` is given.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, not from scripts/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import ArgumentParser, DataArguments, arg, output_folder, reuse, run_command  # noqa: E402
from longlamp_errors import PublishError  # noqa: E402
from longlamp_tasks import parse_config_name  # noqa: E402
from publishing.cli import HubArguments, HubRepositoryArguments  # noqa: E402
from publishing.dataset_export import AVOCADO_LICENSE, export_config  # noqa: E402

SPLITS = ("train", "validation", "test")


def ranked_spec(value: str) -> tuple[str, str]:
    """argparse type: `[SPLIT=]FILE` (SPLIT defaults to validation)."""
    split, _, path = value.rpartition("=") if "=" in value else ("validation", "", value)
    if split not in SPLITS:
        raise argparse.ArgumentTypeError(f"{value!r}: the split must be one of {', '.join(SPLITS)}")
    return split, path


@dataclass(kw_only=True)
class ExportArguments(HubRepositoryArguments):
    """The configs to export, and where."""

    _argument_group_name = "export"
    config_name: list[str] = arg("one or more LongLaMP configs, e.g. product_review_user (several go into the same "
                                 "folder); `--config NAME...` still works", config_alias=True)
    data_dir: str | None = reuse(DataArguments, "data_dir")
    cache_dir: str | None = reuse(DataArguments, "cache_dir")
    revision: str | None = reuse(DataArguments, "revision")
    ranked: list[str] = arg("a ranked split from retrieval/rank_profiles.py (SPLIT defaults to validation); repeat for "
                            "several splits; exported as config <config>_<retriever>_ranked (default: none)",
                            default_factory=list, action="append", type=ranked_spec, metavar="[SPLIT=]FILE")
    output: str = arg("the dataset folder to write (created or added to)", type=output_folder)
    push_to_hub: bool = reuse(HubArguments, "push_to_hub", help="upload the folder to a dataset repository: "
                              "--push_to_hub NAMESPACE/NAME, or with --hub_model_id NAMESPACE/NAME")


def make_parser() -> ArgumentParser:
    return ArgumentParser(ExportArguments, description=__doc__.split("\n\n")[0])


def ranked_files(specs: list[tuple[str, str]]) -> dict[str, str] | None:
    files = {}
    for split, path in specs:
        if split in files:
            raise PublishError(f"--ranked gives the {split} split twice ({files[split]}, {path})")
        files[split] = path
    return files or None


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = make_parser().parse_into(argv)
    if args.push_to_hub and not args.hub_model_id:  # before the export, not after
        raise PublishError("--push_to_hub needs the repository: --push_to_hub NAMESPACE/NAME")
    ranked = ranked_files(args.ranked)
    if ranked and len(args.config_name) > 1:
        raise PublishError("--ranked files belong to one config: give a single --config_name")
    licensed = [c for c in args.config_name if not parse_config_name(c)[0].public]
    if licensed:
        print(f"warning: {AVOCADO_LICENSE}", file=sys.stderr)
    names = [export_config(c, args.output, data_dir=args.data_dir, cache_dir=args.cache_dir, ranked=ranked,
                           revision=args.revision) for c in args.config_name]
    print(f"wrote {', '.join(names)} to {args.output}")
    if args.push_to_hub:
        from publishing.hub import upload

        private = args.hub_private or (bool(licensed) and not args.public_despite_license)
        if licensed and not private:
            print("warning: pushing the email task publicly (--public_despite_license)", file=sys.stderr)
        url = upload(Path(args.output), args.hub_model_id, repo_type="dataset", private=private, token=args.hub_token,
                     revision=args.hub_revision, commit_message=f"LongLaMP export: {', '.join(names)}",
                     create_pr=args.create_pr, public_ok=not licensed or args.public_despite_license)
        print(f"pushed to {url}{' (private)' if private else ''}")  # upload refuses a public repository then
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
