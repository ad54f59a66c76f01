"""Merge a saved LoRA adapter into its base model: `python -m training.export ADAPTER_DIR OUTPUT_DIR`.

Run in a fresh process by training (`training.saving.export_merged_in_clean_process`, for --merge_lora) or by hand;
the merging itself is `training.saving.export_merged`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from longlamp_cli import ArgumentParser, arg, output_folder
from training.saving import export_merged


@dataclass(kw_only=True)
class ExportArguments:
    _argument_group_name = "export"
    adapter_dir: str = arg("a PEFT adapter folder written by training (final/ or best/)", positional=True,
                           exists="folder")
    output_dir: str = arg("where the merged model goes", positional=True, type=output_folder)


def make_parser() -> ArgumentParser:
    return ArgumentParser(ExportArguments, description="Merge a saved LoRA adapter into its base model.")


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    export_merged(args.adapter_dir, args.output_dir)
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
