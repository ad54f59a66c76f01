"""The per-user adapter training run (training/train_per_user.py's): its settings recorded and checked in the
output folder (the weights trained on fingerprinted, so that evaluation can match the adapters to them), every
pending user trained (with +PAG, on prompts holding the user's profile summary), and the report of time, storage and
held-out losses."""

from __future__ import annotations

import dataclasses
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
    the model (its config and tokenizer are read), the fingerprint of the weights the adapters are trained on (the
    base and the task adapter, as evaluation fingerprints the model it is given: `generation.fingerprints`), and
    the profile summary in the prompts (+PAG; none without --use_summary)."""
    from generation import model_source
    from generation.fingerprints import model_fingerprint
    from training.user_adapters import prompt_rules

    _, tokenizer, _, budget = prompt_rules(args)
    values = {**vars(args), "max_prompt_length": budget,
              "use_chat_template": uses_chat_template(tokenizer, args.use_chat_template)}
    record = record_from_flags("per_user_adapters", values, "per-user training settings")
    source = model_source(args.task_adapter or args.model_name,
                          base_model=args.model_name if args.task_adapter else None)
    return dataclasses.replace(record, model=dataclasses.replace(record.model, fingerprint=model_fingerprint(source)))


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
    from training.user_adapters import OPPU_MAX_WORDS, adapter_trainer, encode_all, example_encoder, load_for_training

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
        encoder, model_config, encoder_decoder = example_encoder(args, task)
        max_words = OPPU_MAX_WORDS if args.long_targets == "truncate" else None
        examples = {user.user_id: profile_examples(task, user, max_words)[: args.max_items_per_user]
                    for user in pending}
        held_out = {user.user_id: [row for row in user.rows if row.get("output")] for user in pending}
        summaries = {}
        if args.use_summary:  # before the model is loaded: the summary model's memory is given back first
            summaries = with_summaries(args, task, pending, examples, held_out, encoder, accelerator.device,
                                       output_dir)
        model, collator, keep = load_for_training(args, encoder, model_config, encoder_decoder, accelerator.device)
        trainer = adapter_trainer(args, model, collator, encoder_decoder, keep, accelerator.device)
        for user in tqdm(pending, desc="Users", disable=not accelerator.is_local_main_process):
            encoded = encode_all(encoder, examples[user.user_id], f"user {user.user_id!r} profile",
                                 args.max_target_length, args.long_targets)
            held = encode_all(encoder, held_out[user.user_id], f"user {user.user_id!r} rows", args.max_target_length,
                              "skip")
            if not encoded:
                logger.warning("user %r has no usable profile item: no adapter (the task model serves them)",
                               user.user_id)
                continue
            record = trainer.train_user(user.user_id, encoded, held, store, user.left_out,
                                        summaries.get(user.user_id))
            logger.info("user %r: %d items, %.2fs, %d bytes, held-out loss %s -> %s", user.user_id, len(encoded),
                        record["seconds"], record["adapter_bytes"], record["held_out_loss_without_adapter"],
                        record["held_out_loss"])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(output_dir / PER_USER_REPORT_FILE, report(store, users))


def with_summaries(args, task, users: list, examples: dict, held_out: dict, encoder, device,
                   output_dir: Path) -> dict[str, dict]:
    """+PAG: every prompt of `users` (their profile examples and held-out rows, by user id) gets its "summary" (in
    place): the user's profile summary, or with --summary_of retrieved that of the prompt's retrieved items, built
    as evaluation builds it (the same requests within the run's prompt budget, the same cache). Returns each user's
    record of what its summaries read and said (user.json's "profile_summary"). Written by --summary_model or the
    run's own model (base and task adapter); `auto` runs either on transformers, on this process's device (vLLM would
    keep its memory from the adapters trained next), released once done."""
    import gc

    import torch

    from generation import FALLBACK_BACKEND
    from generation.decoding import GenerationSettings
    from generation.preparation import prepare_model
    from personalization.summaries import (
        SUMMARY_CACHE_DIR,
        retrieved_sets,
        summaries_for,
        summary_writer,
        user_profiles,
    )

    prompts = [(user.user_id, prompt) for user in users
               for prompt in (*examples[user.user_id], *held_out[user.user_id])]
    if args.summary_of == "profile":
        sets = user_profiles(users, [owner for owner, _ in prompts])
    else:
        sets = retrieved_sets([prompt["id"] for _, prompt in prompts], [encoder.retrieved(p) for _, p in prompts])
    cache_dir = Path(args.summary_cache_dir or output_dir / SUMMARY_CACHE_DIR)
    device_map = str(device) if device.type != "cpu" else None
    backend = FALLBACK_BACKEND if args.summary_backend == "auto" else args.summary_backend
    writer = generator = None
    if args.summary_model:
        writer = summary_writer(args, cache_dir, backend, device_map)
    else:
        options = {"dtype": args.dtype, **({"device_map": device_map} if device_map else {})}
        own = prepare_model(args.task_adapter or args.model_name,
                            GenerationSettings(max_new_tokens=args.summary_max_new_tokens), backend=FALLBACK_BACKEND,
                            options=options, base_model=args.model_name if args.task_adapter else None)
        generator = own.load(encoder.max_prompt_length, args.summary_max_new_tokens)
    try:
        found, record = summaries_for(args, sets, task, encoder.tokenizer, encoder.max_prompt_length, cache_dir,
                                      writer=writer, generator=generator)
    finally:
        del writer, generator
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    for (_, prompt), summary in zip(prompts, found):
        prompt["summary"] = summary
    if args.summary_of == "profile":
        owners = [user.user_id for user in users]
    else:
        owners = [owner for owner, _ in prompts]
    by_user: dict[str, dict] = {user.user_id: {"of": record["of"], "sets": []} for user in users}
    for owner, entry in zip(owners, record["sets"]):
        by_user[owner]["sets"].append(entry)
    return by_user


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
