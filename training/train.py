"""Fine-tune a model on a LongLaMP task.

    accelerate launch --config_file accelerate_configs/<setup>.yaml training/train.py \\
        --train_data product_review_user --validation_data product_review_user \\
        --model_name google/flan-t5-base --output_dir runs/review --use_profile --num_retrieved 4

Also `python -m training.train ...` (one process). See docs/training.md for every flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: import the toolkit from the repository root, not from this folder.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from longlamp_cli import run_command  # noqa: E402
from training.config import parser as make_parser  # noqa: E402
from training.loop import train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    train(make_parser().parse_into(argv).validate())
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
