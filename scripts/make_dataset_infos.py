"""Write `dataset_infos.json` from the builder, so the file can never say something the builder does not.

Usage: python scripts/make_dataset_infos.py [--check]
`--check` exits non-zero when the file on disk differs from what the builder declares (tests run it).
Split sizes are left out: the public data's exact per-split counts are not verified (docs/dataset.md lists
the approximate ones), and a wrong size would make `datasets` reject a correct download.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import longlamp  # noqa: E402
from longlamp_tasks import SPLITS, config_names  # noqa: E402

PATH = REPO / "dataset_infos.json"


def dataset_infos() -> dict:
    infos = {}
    for name in config_names():
        builder = longlamp.LongLaMP(config_name=name)
        info = builder.info
        infos[name] = {
            "config_name": name,
            "description": info.description,
            "citation": info.citation,
            "homepage": info.homepage,
            "license": info.license,
            "features": info.features.to_dict(),
            "version": str(builder.config.version),
            "splits": {split: {"name": split} for split in SPLITS},
            "source": {"repo_id": builder.config.source_repo_id, "config": builder.config.source_name,
                       "manual_download": not builder.task.public},
        }
    return infos


def render() -> str:
    return json.dumps(dataset_infos(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when dataset_infos.json is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not PATH.exists() or PATH.read_text() != text:
            print(f"{PATH} is out of date: run python scripts/make_dataset_infos.py", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text)
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
