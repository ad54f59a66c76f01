"""The per-user adapter training run (training/train_per_user.py's): its settings recorded and checked in the
output folder, every pending user trained, and the report of time, storage and held-out losses."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm.auto import tqdm

from longlamp_io import write_json_atomic
from longlamp_prompts import uses_chat_template
from longlamp_runs import (
    PER_USER_RECORD_FILE,
    PER_USER_REPORT_FILE,
    RunRecord,
    check_same_run,
    record_from_flags,
    write_record,
)
from longlamp_tasks import parse_config_name
from personalization.user_adapters import AdapterStore
from personalization.users import group_users, profile_examples

logger = logging.getLogger(__name__)
# Recorded settings a continued run may change: where the data's local copy lies. (Which users it goes on to and
# how it logs are not recorded at all.)
RESUMABLE = ("data.data_dir",)


def per_user_record(args) -> RunRecord:
    """The run record of train_per_user.py's flags, with the prompt budget and chat-template choice resolved for
    the model (its config and tokenizer are read, not its weights)."""
    from training.user_adapters import prompt_rules

    _, tokenizer, _, budget = prompt_rules(args)
    values = {**vars(args), "max_prompt_length": budget,
              "use_chat_template": uses_chat_template(tokenizer, args.use_chat_template)}
    return record_from_flags("per_user_adapters", values, "per-user training settings")


def check_settings(output_dir: Path, record: RunRecord, write: bool) -> None:
    """Refuse a folder holding adapters trained with other settings; record the settings (`write`) if new. Settings
    under which no user finished (a run refused or killed before its first adapter) bind nothing: replaced."""
    path = output_dir / PER_USER_RECORD_FILE
    if AdapterStore(output_dir).adapters():
        check_same_run(path, record, RESUMABLE, "per-user adapters")
    if write and (not path.is_file() or not AdapterStore(output_dir).adapters()):
        write_record(path, record)


def forget_settings_if_nothing_trained(output_dir: Path) -> None:
    """A refused run leaves no settings record behind when it trained no user (so the corrected command runs)."""
    if not AdapterStore(output_dir).adapters():
        (output_dir / PER_USER_RECORD_FILE).unlink(missing_ok=True)


def run(args, accelerator, output_dir: Path) -> None:
    """Train every pending user of this process's share (users dealt to the processes in turn), then (main process)
    write the report."""
    import longlamp
    from training.user_adapters import (
        OPPU_MAX_WORDS,
        TrainSettings,
        UserAdapterTrainer,
        encode_all,
        load_for_training,
        lora_config,
    )

    task, _ = parse_config_name(args.task)
    rows = longlamp.load_rows(args.data, args.split, task=args.task, data_dir=args.data_dir, cache_dir=args.cache_dir,
                              revision=args.revision)
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
                                                         args.seed, args.warmup_ratio, args.weight_decay,
                                                         args.lr_scheduler), accelerator.device)
        max_words = OPPU_MAX_WORDS if args.long_targets == "truncate" else None
        for user in tqdm(pending, desc="Users", disable=not accelerator.is_local_main_process):
            items = profile_examples(task, user, max_words)[: args.max_items_per_user]
            examples = encode_all(encoder, items, f"user {user.user_id!r} profile", args.max_target_length,
                                  args.long_targets)
            held_out = encode_all(encoder, [r for r in user.rows if r.get("output")], f"user {user.user_id!r} rows",
                                  args.max_target_length, "skip")
            if not examples:
                logger.warning("user %r has no usable profile item: no adapter (the task model serves them)",
                               user.user_id)
                continue
            record = trainer.train_user(user.user_id, examples, held_out, store, user.left_out)
            logger.info("user %r: %d items, %.2fs, %d bytes, held-out loss %s -> %s", user.user_id, len(examples),
                        record["seconds"], record["adapter_bytes"], record["held_out_loss_without_adapter"],
                        record["held_out_loss"])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(output_dir / PER_USER_REPORT_FILE, report(store, users))


def report(store, users: list) -> dict:
    """Time and storage per user, the held-out losses with and without the users' adapters, and how many profile
    items were kept from training for being a row's answer or dated at or after the user's first query."""
    records = [store.record(u.user_id) for u in users if store.is_done(u.user_id)]

    def mean(key):
        values = [r[key] for r in records if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {"users": len(users), "users_with_adapter": len(records),
            "profile_items_left_out": sum(user.left_out for user in users),
            "mean_seconds_per_user": mean("seconds"), "mean_adapter_bytes": mean("adapter_bytes"),
            "total_adapter_bytes": sum(r["adapter_bytes"] for r in records),
            "mean_held_out_loss": mean("held_out_loss"),
            "mean_held_out_loss_without_adapter": mean("held_out_loss_without_adapter")}
