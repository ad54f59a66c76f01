"""Train one LoRA adapter per user (OPPU) on the user's own profile: `accelerate launch training/train_per_user.py`.

Every user of `--split` gets a small adapter trained on their profile items (each item a task example, see
`personalization.users`), on top of the base model or of a task adapter from `training/train.py` (merged into
the base once, in memory). The base is loaded once per process and shared by all its users; users are dealt to
the processes in turn and trained independently (no gradient exchange). A killed run started again with the
same flags continues with the next unfinished user. Each user's held-out loss on their rows of the split is
recorded with and without the adapter; `per_user_report.json` sums up time and storage per user. The run is
training/per_user_run.py's, the trainer training/user_adapters.py's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

from longlamp_cli import ArgumentParser, add_flag, positive_int
from longlamp_io import RunLock
from longlamp_tasks import parse_config_name
from training.per_user_run import check_settings, per_user_record, run


def parser() -> argparse.ArgumentParser:
    """The project's shared flags (longlamp_cli.FLAGS) with this command's defaults, and its own."""
    p = ArgumentParser(description=__doc__.splitlines()[0])
    add_flag(p, "model_name", required=True, help="base model: Hub id or folder")
    p.add_argument("--task_adapter", help="a LoRA adapter folder from training/train.py to start from (merged into "
                                          "the base in memory); default: the base model alone")
    p.add_argument("--data", required=True, help="the users' data: a LongLaMP config name or a file/folder")
    add_flag(p, "task", help="task or config name (default: --data when it is a config name)")
    add_flag(p, "split", default="test", choices=("train", "validation", "test"),
             help="which split of --data is read: its users get adapters, and their rows of this split are the "
                  "held-out examples")
    add_flag(p, "data_dir")
    add_flag(p, "cache_dir")
    add_flag(p, "revision")
    add_flag(p, "output_dir", required=True, help="where users/<user>/ adapters and the report go")
    add_flag(p, "use_profile", help="put retrieved profile items (the user's other items) in each training prompt")
    add_flag(p, "retriever")
    add_flag(p, "retriever_model")
    add_flag(p, "num_retrieved", type=positive_int, default=1)
    add_flag(p, "max_prompt_length", type=positive_int)
    add_flag(p, "max_target_length", type=positive_int, default=1024)
    p.add_argument("--long_targets", choices=("skip", "error"), default="skip",
                   help="a profile item longer than --max_target_length is skipped or an error")
    p.add_argument("--max_items_per_user", type=positive_int, help="train on at most the first N profile items")
    p.add_argument("--max_users", type=positive_int, help="train only the first N users (sorted by id)")
    add_flag(p, "lora_r", type=positive_int, default=8)
    add_flag(p, "lora_alpha", type=positive_int, default=16)
    add_flag(p, "lora_dropout", default=0.0)
    add_flag(p, "lora_target_modules")
    add_flag(p, "learning_rate", default=1e-4)
    add_flag(p, "num_train_epochs", type=positive_int, default=2, help="passes over a user's items")
    add_flag(p, "per_device_train_batch_size", type=positive_int, default=4)
    add_flag(p, "max_grad_norm", default=1.0)
    add_flag(p, "dtype", "--model_dtype", help="weights dtype (auto: bfloat16 on a GPU that has it, else float32)")
    add_flag(p, "use_chat_template")
    add_flag(p, "seed", default=42, help="seed of each user's adapter initialisation and data order")
    p.add_argument("--cpu_threads", type=positive_int, default=1,
                   help="compute threads of each process when training on a CPU. A float sum splits differently "
                        "over another number of threads, so this number, not the process count, is what keeps an "
                        "adapter the same whichever process trains it; scale with processes "
                        "(accelerate launch --num_processes N)")
    add_flag(p, "log_level")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    if args.task is None:
        args.task = args.data
    parse_config_name(args.task)  # ValueError naming the choices
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from accelerate import Accelerator

    args = parse_args(argv)
    accelerator = Accelerator()
    if accelerator.device.type == "cpu":
        import torch

        torch.set_num_threads(args.cpu_threads)  # the same sums in every process, one or several (see --cpu_threads)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=getattr(logging, args.log_level.upper()))
    output_dir = Path(args.output_dir)
    check_settings(output_dir, per_user_record(args), write=accelerator.is_main_process)  # every process alike
    accelerator.wait_for_everyone()
    with RunLock(output_dir, "training/train_per_user.py") if accelerator.is_main_process else nullcontext():
        run(args, accelerator, output_dir)
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
