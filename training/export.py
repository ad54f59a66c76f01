"""Merge a saved LoRA adapter into its base model: `python -m training.export ADAPTER_DIR OUTPUT_DIR`.

Run in a fresh process by training (`training.saving.export_merged_in_clean_process`, for --merge_lora) or by hand;
the merging itself is `training.saving.export_merged`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from training.saving import export_merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Merge a saved LoRA adapter into its base model.")
    parser.add_argument("adapter_dir", help="a PEFT adapter folder written by training (final/ or best/)")
    parser.add_argument("output_dir", help="where the merged model goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    export_merged(args.adapter_dir, args.output_dir)
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
