"""Train one LoRA adapter per user (OPPU) on the user's own profile: `accelerate launch training/train_per_user.py`.

Every user of `--split` gets a small adapter trained on their profile items (each item a task example, see
`personalization.users`), on top of the base model or of a task adapter from `training/train.py` (merged into
the base once, in memory). The base is loaded once per process and shared by all its users; users are dealt to
the processes in turn and trained independently (no gradient exchange). A killed run started again with the
same flags continues with the next unfinished user. Each user's held-out loss on their rows of the split is
recorded with and without the adapter; `per_user_report.json` sums up time and storage per user. With
`--use_summary` (OPPU's +PAG) every training prompt holds the user's profile summary, as evaluate_per_user.py's
prompts will. The run is training/per_user_run.py's, the trainer training/user_adapters.py's.
"""

from __future__ import annotations

import logging
import math
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from longlamp_cli import ArgumentParser, LoggingArguments, arg, positive_int, reuse
from longlamp_errors import ConfigError
from longlamp_io import RunLock
from longlamp_tasks import parse_config_name
from personalization.cli import PerUserArguments, ProfileSummaryArguments, summary_refusal
from training.config import TrainConfig
from training.per_user_run import check_settings, forget_settings_if_nothing_trained, per_user_record, run

# Schedules that need no arguments of their own (train.py's --lr_scheduler_kwargs is not offered here).
PER_USER_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass(kw_only=True)
class TrainPerUserArguments(LoggingArguments, ProfileSummaryArguments, PerUserArguments):
    """Each user's adapter: training's flags, with OPPU's smaller defaults for one user's few items."""

    _argument_group_name = "per-user adapters"
    task_adapter: str | None = arg("a LoRA adapter folder from training/train.py to start from (merged into the base "
                                   "in memory; its training record gives the prompt settings' defaults) (default: "
                                   "the base model alone)", default=None)
    max_target_length: int = reuse(TrainConfig, "max_target_length")
    long_targets: str = reuse(TrainConfig, "long_targets", default="truncate", choices=("truncate", "skip", "error"),
                              help="a profile item longer than OPPU's limit: truncate (OPPU's: every field cut to 768 "
                                   "words, then a target over --max_target_length cut to it), skip, or error")
    max_items_per_user: int | None = arg("train on at most the first N profile items (default: all)", default=None,
                                         type=positive_int)
    max_users: int | None = arg("train only the first N users, sorted by id (default: all)", default=None,
                                type=positive_int)
    # OPPU's per-user settings (TamSiuhin/OPPU, OPPU.py's LoraConfig and TrainingArguments; docs/personalization.md)
    lora_r: int = reuse(TrainConfig, "lora_r", default=8)
    lora_alpha: int = reuse(TrainConfig, "lora_alpha", default=8)
    lora_dropout: float = reuse(TrainConfig, "lora_dropout", default=0.05)
    lora_target_modules: str = reuse(TrainConfig, "lora_target_modules")
    learning_rate: float = reuse(TrainConfig, "learning_rate", default=1e-4)
    weight_decay: float = reuse(TrainConfig, "weight_decay", default=0.01)
    lr_scheduler: str = reuse(TrainConfig, "lr_scheduler", choices=PER_USER_SCHEDULERS)
    warmup_ratio: float = reuse(TrainConfig, "warmup_ratio", default=0.1)
    num_train_epochs: int = reuse(TrainConfig, "num_train_epochs", default=2)
    per_device_train_batch_size: int = reuse(TrainConfig, "per_device_train_batch_size", default=16)
    max_grad_norm: float = reuse(TrainConfig, "max_grad_norm", default=0.3)
    seed: int = reuse(TrainConfig, "seed")
    cpu_threads: int = arg("compute threads of each process when training on a CPU. A float sum splits differently "
                           "over another number of threads, so this number, not the process count, is what keeps an "
                           "adapter the same whichever process trains it; scale with processes "
                           "(accelerate launch --num_processes N)", default=1, type=positive_int)


def make_parser() -> ArgumentParser:
    return ArgumentParser(TrainPerUserArguments, description=__doc__.splitlines()[0],
                          trained_settings_from="task_adapter")


def parse_args(argv: Sequence[str] | None = None) -> TrainPerUserArguments:
    args = make_parser().parse_into(argv)
    parse_config_name(args.task)  # ValueError naming the choices
    for name in ("learning_rate", "max_grad_norm", "weight_decay", "warmup_ratio", "lora_dropout"):
        if not math.isfinite(getattr(args, name)) or getattr(args, name) < 0:
            raise ConfigError(f"--{name} must be a finite number >= 0, got {getattr(args, name)}")
    if args.learning_rate == 0 or args.warmup_ratio >= 1 or args.lora_dropout >= 1:
        raise ConfigError("--learning_rate must be > 0, and --warmup_ratio and --lora_dropout below 1")
    refusal = summary_refusal(args)
    if refusal:
        raise ConfigError(refusal)
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
    # The lock comes first: a second instance on the folder is refused before it writes or forgets the settings
    # record of the one running.
    with RunLock(output_dir, "training/train_per_user.py") if accelerator.is_main_process else nullcontext():
        try:
            check_settings(output_dir, per_user_record(args), write=accelerator.is_main_process)  # every process
            accelerator.wait_for_everyone()
            run(args, accelerator, output_dir)
        except ValueError:
            if accelerator.is_main_process:
                forget_settings_if_nothing_trained(output_dir)
            raise
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
