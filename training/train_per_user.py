"""Train one LoRA adapter per user (OPPU) on the user's own profile: `accelerate launch training/train_per_user.py`.

Every user of `--split` gets a small adapter trained on their profile items (each item a task example, see
`personalization.users`), on top of the base model or of a task adapter from `training/train.py` (merged into
the base once, in memory). The base is loaded once per process and shared by all its users; users are dealt to
the processes in turn and trained independently (no gradient exchange). A killed run started again with the
same flags continues with the next unfinished user. Each user's held-out loss on their rows of the split is
recorded with and without the adapter; `per_user_report.json` sums up time and storage per user.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

from longlamp_cli import ArgumentParser, add_flag, positive_int
from longlamp_prompts import context_length, prompt_budget
from longlamp_errors import DataError, PromptBudgetError, RunFolderError
from longlamp_io import RunLock, write_json_atomic
from longlamp_tasks import parse_config_name

logger = logging.getLogger(__name__)
CONFIG_FILE = "per_user_config.json"
REPORT_FILE = "per_user_report.json"
# Settings a continued run may change: which users it goes on to, how it logs.
RESUMABLE = frozenset({"output_dir", "max_users", "log_level", "cache_dir", "data_dir"})


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
    settings = {k: v for k, v in vars(args).items() if k not in RESUMABLE}
    check_settings(output_dir, settings, write=accelerator.is_main_process)  # every process refuses alike
    accelerator.wait_for_everyone()
    with RunLock(output_dir, "training/train_per_user.py") if accelerator.is_main_process else nullcontext():
        run(args, accelerator, output_dir)
    return 0


def check_settings(output_dir: Path, settings: dict, write: bool) -> None:
    """Refuse a folder holding adapters trained with other settings; record the settings (`write`) if new."""
    recorded_file = output_dir / CONFIG_FILE
    if recorded_file.is_file():
        recorded = json.loads(recorded_file.read_text())
        changed = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
        if changed:
            listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
            raise RunFolderError(f"{output_dir} holds per-user adapters trained with other settings ({listed}); "
                                 "use another --output_dir or the same flags to continue")
        return
    if write:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(recorded_file, settings)


def run(args, accelerator, output_dir: Path) -> None:
    from tqdm.auto import tqdm

    from personalization.user_adapters import AdapterStore, TrainSettings, UserAdapterTrainer
    from personalization.users import group_users, profile_examples
    from training.data import load_rows

    task, _ = parse_config_name(args.task)
    rows = load_rows(args.data, args.split, args.task, args.data_dir, args.cache_dir, revision=args.revision)
    users = group_users(rows, task, f"{args.data} ({args.split})")[: args.max_users]
    store = AdapterStore(output_dir)
    if accelerator.is_main_process:
        store.clean_temporary()
    accelerator.wait_for_everyone()
    mine = users[accelerator.process_index::accelerator.num_processes]
    pending = [user for user in mine if not store.is_done(user.user_id)]
    logger.info("process %d: %d users, %d already done", accelerator.process_index, len(mine), len(mine) - len(pending))
    if pending:
        model, _, encoder, collator, encoder_decoder, keep = load_for_training(args, task, accelerator.device)
        trainer = UserAdapterTrainer(model, lora_config(args, model.config, encoder_decoder), collator, encoder_decoder,
                                     keep, TrainSettings(args.learning_rate, args.num_train_epochs,
                                                         args.per_device_train_batch_size, args.max_grad_norm,
                                                         args.seed), accelerator.device)
        for user in tqdm(pending, desc="Users", disable=not accelerator.is_local_main_process):
            items = profile_examples(task, user)[: args.max_items_per_user]
            examples = encode_all(encoder, items, f"user {user.user_id!r} profile", args.max_target_length,
                                  args.long_targets)
            held_out = encode_all(encoder, [r for r in user.rows if r.get("output")], f"user {user.user_id!r} rows",
                                  args.max_target_length, "skip")
            if not examples:
                logger.warning("user %r has no usable profile item: no adapter (the task model serves them)",
                               user.user_id)
                continue
            record = trainer.train_user(user.user_id, examples, held_out, store)
            logger.info("user %r: %d items, %.2fs, %d bytes, held-out loss %s -> %s", user.user_id, len(examples),
                        record["seconds"], record["adapter_bytes"], record["held_out_loss_without_adapter"],
                        record["held_out_loss"])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(output_dir / REPORT_FILE, report(store, [u.user_id for u in users]))


def load_for_training(args, task, device):
    """The shared model (task adapter merged in), tokenizer, the training encoder and collator."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from generation.dtypes import torch_dtype
    from training.collate import TrainingCollator
    from training.data import ExampleEncoder
    from training.modeling import accepts_logits_to_keep, is_encoder_decoder, load_model_config, load_tokenizer

    model_config = load_model_config(args.model_name)
    tokenizer = load_tokenizer(args.model_name)
    encoder_decoder = is_encoder_decoder(model_config)
    auto_class = AutoModelForSeq2SeqLM if encoder_decoder else AutoModelForCausalLM
    model = auto_class.from_pretrained(args.model_name, dtype=torch_dtype(args.dtype))
    if args.task_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.task_adapter).merge_and_unload()
    model.to(device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    budget = prompt_budget(args.max_prompt_length, context_length(model_config, tokenizer), args.max_target_length,
                           encoder_decoder, new_tokens_flag="--max_target_length")
    retriever = None
    if args.use_profile:
        from retrieval import get_retriever

        options = {"model_name": args.retriever_model} if args.retriever == "contriever" else {}
        retriever = get_retriever(args.retriever, **options)
    encoder = ExampleEncoder(task=task, tokenizer=tokenizer, is_encoder_decoder=encoder_decoder,
                             max_prompt_length=budget, max_target_length=args.max_target_length,
                             num_retrieved=args.num_retrieved if args.use_profile else 0, retriever=retriever,
                             use_chat_template=args.use_chat_template)
    collator = TrainingCollator(tokenizer.pad_token_id, encoder_decoder,
                                getattr(model_config, "decoder_start_token_id", None))
    torch.manual_seed(args.seed)
    return model, tokenizer, encoder, collator, encoder_decoder, not encoder_decoder and accepts_logits_to_keep(model)


def lora_config(args, model_config, encoder_decoder: bool):
    from peft import LoraConfig, TaskType

    from training.modeling import lora_target_modules

    return LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM, r=args.lora_r,
                      lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      target_modules=lora_target_modules(args.lora_target_modules, model_config.model_type))


def encode_all(encoder, examples: list[dict], source: str, max_target_length: int, long_targets: str) -> list[dict]:
    """Training's encoding of each example; targets over the limit skipped or refused as `long_targets` says."""

    encoded = []
    for example in examples:
        try:
            item = encoder.encode(example)
        except PromptBudgetError as error:
            raise DataError(f"{source}: {example['id']!r}: {error}; the budget is --max_prompt_length "
                            f"{encoder.max_prompt_length}") from None
        if item["target_length"] > max_target_length:
            if long_targets == "error":
                raise DataError(f"{source}: {example['id']!r}: the target takes {item['target_length']} tokens, more "
                                f"than --max_target_length {max_target_length} (or pass --long_targets skip)")
            continue
        encoded.append(item)
    return encoded


def report(store, user_ids: list[str]) -> dict:
    """Time and storage per user, and the held-out losses with and without the users' adapters."""
    records = [store.record(u) for u in user_ids if store.is_done(u)]

    def mean(key):
        values = [r[key] for r in records if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {"users": len(user_ids), "users_with_adapter": len(records),
            "mean_seconds_per_user": mean("seconds"), "mean_adapter_bytes": mean("adapter_bytes"),
            "total_adapter_bytes": sum(r["adapter_bytes"] for r in records),
            "mean_held_out_loss": mean("held_out_loss"),
            "mean_held_out_loss_without_adapter": mean("held_out_loss_without_adapter")}


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
