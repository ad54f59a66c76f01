"""Merge a saved LoRA adapter into its base model: `python -m training.export ADAPTER_DIR OUTPUT_DIR`.

Run in a fresh process by training (`training.saving.export_merged_in_clean_process`, for --merge_lora) or by hand;
the merging itself is `training.saving.export_merged`. A folder that is not an adapter, or one whose weights cannot
be read, is one error line; two exports to one output folder at once are refused (a lock beside it, since the
folder itself is replaced whole), and a killed export leaves the output as it was (rerun it).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from longlamp_cli import ArgumentParser, arg, output_folder
from longlamp_errors import ModelLoadError
from longlamp_io import RunLock
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
    adapter, output = Path(args.adapter_dir), Path(args.output_dir)
    if not (adapter / "adapter_config.json").is_file():
        inside = " (it holds final/: give that)" if (adapter / "final" / "adapter_config.json").is_file() else ""
        raise ModelLoadError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json){inside}")
    lock_folder = output.with_name(f".{output.name}.export")
    from safetensors import SafetensorError

    try:
        with RunLock(lock_folder, "training/export.py"):
            export_merged(adapter, output)
    except (SafetensorError, OSError, RuntimeError) as error:  # unreadable weights or config
        raise ModelLoadError(f"{adapter}: cannot merge the adapter: {str(error).splitlines()[0]}") from None
    finally:
        try:
            lock_folder.rmdir()  # empty unless another export holds the lock
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
