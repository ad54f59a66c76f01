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
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, not from scripts/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import run_command  # noqa: E402
from longlamp_errors import PublishError  # noqa: E402
from longlamp_tasks import parse_config_name  # noqa: E402
from publishing.dataset_export import AVOCADO_LICENSE, export_config  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", nargs="+", required=True, help="one or more LongLaMP configs, e.g. "
                        "product_review_user (several go into the same folder)")
    parser.add_argument("--data_dir", help="local copy of the data (e.g. data/sample; the Avocado folder for email)")
    parser.add_argument("--cache_dir", help="datasets cache folder (default: the datasets library's)")
    parser.add_argument("--revision", help="revision of the LongLaMP Hub repository to read")
    parser.add_argument("--ranked", action="append", metavar="[SPLIT=]FILE",
                        help="a ranked split from retrieval/rank_profiles.py (SPLIT defaults to validation); "
                             "repeat for several splits; exported as config <config>_<retriever>_ranked")
    parser.add_argument("--output", required=True, help="the dataset folder to write (created or added to)")
    parser.add_argument("--push_to_hub", metavar="NS/NAME", help="upload the folder to this dataset repository")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--public_despite_license", action="store_true",
                        help="push the email (Avocado) task publicly anyway: you answer for the LDC licence")
    parser.add_argument("--hub_token", help="Hub token (default: HF_TOKEN or the saved login); never written or shown")
    return parser.parse_args(argv)


def ranked_files(specs: list[str] | None) -> dict[str, str] | None:
    if not specs:
        return None
    files = {}
    for spec in specs:
        split, _, path = spec.rpartition("=") if "=" in spec else ("validation", "", spec)
        if split not in ("train", "validation", "test"):
            raise PublishError(f"--ranked {spec!r}: the split must be train, validation or test")
        files[split] = path
    return files


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    ranked = ranked_files(args.ranked)
    if ranked and len(args.config) > 1:
        raise PublishError("--ranked files belong to one config: give a single --config")
    licensed = [c for c in args.config if not parse_config_name(c)[0].public]
    if licensed:
        print(f"warning: {AVOCADO_LICENSE}", file=sys.stderr)
    names = [export_config(c, args.output, data_dir=args.data_dir, cache_dir=args.cache_dir, ranked=ranked,
                           revision=args.revision) for c in args.config]
    print(f"wrote {', '.join(names)} to {args.output}")
    if args.push_to_hub:
        from publishing.hub import upload

        private = args.private or (bool(licensed) and not args.public_despite_license)
        if licensed and not private:
            print("warning: pushing the email task publicly (--public_despite_license)", file=sys.stderr)
        url = upload(Path(args.output), args.push_to_hub, repo_type="dataset", private=private, token=args.hub_token,
                     commit_message=f"LongLaMP export: {', '.join(names)}")
        print(f"pushed to {url}{' (private)' if private else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
