"""The main job end to end on the bundled sample: load every config and summarise it.

Usage: python scripts/demo.py [--data_dir data/sample]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import longlamp  # noqa: E402
from longlamp_tasks import TASKS, config_names, parse_config_name  # noqa: E402


def summarise(name: str, dataset_dict) -> str:
    task, _ = parse_config_name(name)
    parts = []
    for split, ds in dataset_dict.items():
        sizes = [len(p) for p in ds["profile"]]
        words = [len(o.split()) for o in ds["output"] if o is not None]
        parts.append(f"{split} {len(ds):>3} rows, {len(set(ds[task.user_column])):>3} users, profile "
                     f"{min(sizes)}-{max(sizes)} items, output {statistics.mean(words):.0f} words")
    return f"{name:<30} " + "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, default=REPO / "data" / "sample")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        print("LongLaMP bundled sample (synthetic; see data/sample/README.md)\n")
        for name in config_names(with_aliases=False):
            task, _ = parse_config_name(name)
            data_dir = args.data_dir if task.public else args.data_dir / "avocado"
            loaded = longlamp.load(name, data_dir=str(data_dir), cache_dir=cache)
            print(summarise(name, loaded))
        example = loaded["validation"][1]
        print(f"\nexample {example['id']} ({len(example['profile'])} profile items)")
        print(f"  input:  {example['input'][:150]!r}")
        print(f"  output: {example['output'][:150]!r}")
        print(f"\ntasks: {', '.join(TASKS)}")


if __name__ == "__main__":
    main()
