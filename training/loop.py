"""The training loop: prepare, forward, backward, step, evaluate, checkpoint; the same code on one CPU,
several GPUs (DDP, FSDP) or a DeepSpeed cluster, as chosen by `accelerate launch --config_file`.

The loss of an optimizer step is the mean over all target tokens of its micro-batches on all processes:
the loop reads a step's micro-batches ahead, counts their target tokens everywhere, and scales each
micro-batch's summed loss accordingly, so that accumulation, sharding and packing do not change the
gradient. Checkpoints are taken between optimizer steps and record the epoch and the micro-batches done,
so a resumed run continues with the same batches, schedule and random states.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from generation.decoding import GenerationSettings
from generation.preparation import training_source
from longlamp_errors import ConfigError, MissingNLTKDataError, ModelLoadError
from longlamp_io import RunLock
from longlamp_runs import (
    BEST_DIR,
    FINAL_DIR,
    MERGED_DIR,
    STATE_FILE,
    TEST_PREDICTIONS_FILE,
    VALIDATION_DIR,
    RunRecord,
    TrainingOutcome,
    describe_differences,
)
from longlamp_tasks import parse_config_name, scorer_task_name
from scoring.files import write_predictions
from training.checkpoints import (
    TrainerState,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
    trainable_names,
)
from training.collate import GenerationCollator, TrainingCollator
from training.config import TrainConfig
from training.data import (
    IGNORE_INDEX,
    ExampleEncoder,
    cached_encoding,
    encode_dataset,
    encoded_cache_dir,
    encoding_key,
)
from training.loss import token_losses
from training.modeling import (
    accepts_logits_to_keep,
    check_packing_supported,
    check_quantization_available,
    load_model,
)
from training.record import changes, prompt_rules, training_record
from training.run_folder import check_output_dir, claim_output_dir
from training.sampling import EpochSampler
from training.saving import export_merged_in_clean_process, save_model
from training.validation import generate_texts, score_and_keep, validation_loss

logger = logging.getLogger(__name__)
NO_DECAY = ("bias", "norm")
TRAIN_COLUMNS = ["input_ids", "labels", "row"]
PROMPT_COLUMNS = ["input_ids", "prompt_length", "row"]
VARIABLE_LENGTH_ATTENTION = ("flash_attention", "flex_attention")
# The settings that change how rows become token ids (with the rows, tokenizer and code: see encoding_key).
ENCODING_SETTINGS = ("task", "use_profile", "retriever", "retriever_model", "is_ranked", "num_retrieved",
                     "max_prompt_length", "max_target_length", "long_targets", "use_chat_template")


@dataclass
class TrainResult:
    """What a run produced: the trained model (unwrapped), where it was saved, and the run's state."""

    model: torch.nn.Module
    tokenizer: object
    final_dir: Path
    state: TrainerState


@dataclass
class Splits:
    """The encoded data of a run (datasets.Dataset); generation is the first validation rows to generate for."""

    train: object
    validation: object | None
    generation: object | None
    test: object | None


def train(config: TrainConfig) -> TrainResult:
    """Fine-tune as `config` says. Every check that can fail runs before anything is written, the data encoded or
    the model loaded; the main process then holds the output folder's lock until the run ends."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, InitProcessGroupKwargs, ProjectConfiguration

    config.validate()
    check_scheduler(config)
    if config.eval_generation_examples:
        check_scorer_available()
    if config.load_in_4bit:
        check_quantization_available()
    output_dir = Path(config.output_dir)
    model_config, tokenizer, encoder_decoder, budget = prompt_rules(config)
    record = training_record(config, budget, tokenizer)
    resume_from = resolve_resume(config.resume_from_checkpoint, output_dir)
    recorded = TrainerState.read(resume_from / STATE_FILE) if resume_from is not None else None
    if recorded is not None:
        changed = changes(recorded.record(resume_from / STATE_FILE), record)
        if changed:
            raise ConfigError(f"cannot resume from {resume_from}: these settings differ from the run's: "
                              f"{describe_differences(changed)}")
    check_output_dir(config, record)

    accelerator = Accelerator(
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        mixed_precision=config.mixed_precision,
        log_with=config.trackers() or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        step_scheduler_with_optimizer=False,
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=config.ddp_timeout))],
    )
    _setup_logging(accelerator, config.log_level)
    if recorded is not None and recorded.num_processes != accelerator.num_processes:
        raise ConfigError(f"cannot resume from {resume_from}: it ran on {recorded.num_processes} process(es), this run "
                          f"has {accelerator.num_processes} (the data order and random states depend on it)")
    if encoder_decoder and getattr(model_config, "decoder_start_token_id", None) is None:
        raise ModelLoadError(f"{config.model_name!r} is an encoder-decoder model without a decoder_start_token_id")
    if config.packing:
        if encoder_decoder:
            raise ConfigError("--packing needs a decoder-only model; use --group_by_length for encoder-decoder models")
        check_packing_supported(model_config)
    sharded = _is_sharded(accelerator)

    created = not output_dir.exists()
    try:
        with RunLock(output_dir, "training/train.py") if accelerator.is_main_process else nullcontext():
            return _train(accelerator, config, record, output_dir, resume_from, model_config, tokenizer,
                          encoder_decoder, sharded, budget)
    finally:
        if created and accelerator.is_main_process and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # a run refused before it wrote anything leaves no folder behind


def check_scheduler(config: TrainConfig) -> None:
    """Build the schedule once on a stand-in optimizer, so that missing or unknown --lr_scheduler_kwargs fail now."""
    from transformers import get_scheduler

    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    try:
        get_scheduler(config.lr_scheduler, stand_in, num_warmup_steps=1, num_training_steps=10,
                      scheduler_specific_kwargs=config.scheduler_kwargs())
    except (TypeError, ValueError) as error:
        raise ConfigError(f"--lr_scheduler {config.lr_scheduler}: {error} (pass the schedule's arguments as "
                          "--lr_scheduler_kwargs JSON)") from None


def check_scorer_available() -> None:
    """Generation metrics during training need the project's scorer and NLTK's data (METEOR): check them now,
    not at the first evaluation after hours of training."""
    try:
        import scoring.metrics  # noqa: F401
        from scoring.nltk_setup import require_nltk_data
    except ImportError as error:
        raise ConfigError(f"--eval_generation_examples needs the project's scorer: {error}") from None
    try:
        require_nltk_data()
    except MissingNLTKDataError as error:
        message = " ".join(line.strip() for line in str(error).splitlines())
        raise ConfigError(f"--eval_generation_examples: {message}") from None


def _train(accelerator, config: TrainConfig, record: RunRecord, output_dir: Path, resume_from: Path | None,
           model_config, tokenizer, encoder_decoder: bool, sharded: bool, budget: int) -> TrainResult:
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    task, setting = parse_config_name(config.task)
    _fill_deepspeed_auto_values(accelerator, config)
    set_seed(config.seed)
    if config.packing and not any(name in (config.attn_implementation or "") for name in VARIABLE_LENGTH_ATTENTION):
        logger.warning("--packing without a variable-length attention kernel (--attn_implementation "
                       "flash_attention_2, flash_attention_3 or flex_attention) attends through a block-diagonal "
                       "mask over the whole packed row, usually slower than padded batches")

    with accelerator.local_main_process_first():
        splits = build_splits(config, task, tokenizer, encoder_decoder, budget)
    if accelerator.is_main_process:
        claim_output_dir(config, record)
    accelerator.wait_for_everyone()
    model = load_model(config, model_config, accelerator.mixed_precision, accelerator.local_process_index, sharded)
    keep_target_logits = not encoder_decoder and accepts_logits_to_keep(model)

    collator = TrainingCollator(
        pad_token_id=tokenizer.pad_token_id,
        is_encoder_decoder=encoder_decoder,
        decoder_start_token_id=getattr(model_config, "decoder_start_token_id", None),
        packing=config.packing,
    )
    world = accelerator.num_processes
    sampler = EpochSampler(
        len(splits.train), config.seed,
        lengths=splits.train["length"] if config.group_by_length else None,
        global_batch_size=config.per_device_train_batch_size * world,
    )
    train_loader = DataLoader(
        splits.train.select_columns(TRAIN_COLUMNS),
        batch_size=config.per_device_train_batch_size,
        sampler=sampler,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(config.seed),  # keeps DataLoader from drawing on the global RNG
    )
    prompts = GenerationCollator(tokenizer.pad_token_id, encoder_decoder)
    validation_loader, generation_loader, test_loader = (
        None if data is None else accelerator.prepare(
            DataLoader(data.select_columns(columns), batch_size=config.per_device_eval_batch_size, collate_fn=collate)
        )
        for data, columns, collate in (
            (splits.validation, TRAIN_COLUMNS, collator),
            (splits.generation, PROMPT_COLUMNS, prompts),
            (splits.test, PROMPT_COLUMNS, prompts),
        )
    )
    train_loader = accelerator.prepare(train_loader)

    micro_batches_per_epoch = len(train_loader)
    steps_per_epoch = math.ceil(micro_batches_per_epoch / config.gradient_accumulation_steps)
    total_steps = config.max_steps if config.max_steps > 0 else steps_per_epoch * config.num_train_epochs
    warmup = config.warmup_steps or math.ceil(config.warmup_ratio * total_steps)
    optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps,
                              scheduler_specific_kwargs=config.scheduler_kwargs())
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state = TrainerState(config=record.to_dict(), num_processes=accelerator.num_processes)
    if resume_from is not None:
        state = load_checkpoint(accelerator, resume_from, model)
        state.config = record.to_dict()
        logger.info("resumed from %s at step %d (epoch %d, micro-batch %d)", resume_from, state.global_step,
                    state.epoch, state.batches_done)
    accelerator.init_trackers(config.project_name, config=_tracker_config(config))
    logger.info("training %s on %d examples for %d optimizer steps (%d per epoch) on %d process(es)",
                config.model_name, len(splits.train), total_steps, steps_per_epoch, world)

    source = training_source(config.model_name, model_config, tokenizer, accelerator.unwrap_model(model))
    run = _Run(accelerator, config, record, model, tokenizer, source, optimizer, scheduler, state, encoder_decoder,
               keep_target_logits, output_dir, splits, validation_loader, generation_loader, total_steps)
    run.fit(train_loader, sampler, micro_batches_per_epoch)

    outcome = TrainingOutcome(global_step=state.global_step, best_metric=state.best_metric, best_step=state.best_step)
    final_dir = save_model(accelerator, model, tokenizer, output_dir / FINAL_DIR, record, outcome)
    if config.merge_lora:
        if accelerator.is_main_process:
            export_merged_in_clean_process(final_dir, output_dir / MERGED_DIR)
        accelerator.wait_for_everyone()
    if test_loader is not None:
        texts = generate_texts(accelerator, model, run.generation_source, test_loader, run.generation,
                               run.synced_gpus)
        if accelerator.is_main_process:
            ids = splits.test["id"]
            write_predictions(output_dir / TEST_PREDICTIONS_FILE, scorer_task_name(task, setting), ids,
                              dict(zip(ids, (texts[i] for i in range(len(ids))))))
    if accelerator.is_main_process:  # the card always; the push when asked (publishing/hub.py)
        from publishing.hub import finish_training_run

        finish_training_run(output_dir, push=config.push_to_hub, repo_id=config.hub_model_id,
                            private=config.hub_private, revision=config.hub_revision, token=config.hub_token,
                            create_pr=config.create_pr)
    accelerator.end_training()
    return TrainResult(accelerator.unwrap_model(model), tokenizer, final_dir, state)


def build_splits(config: TrainConfig, task, tokenizer, encoder_decoder: bool, budget: int) -> Splits:
    """Load and encode every split the run needs; bad rows raise here, before the model is loaded. The encoded data
    is saved in the datasets cache (--cache_dir) under longlamp-encoded/, keyed by everything it depends on: the
    first process of each machine encodes, the others (run after it by `local_main_process_first`) and later runs
    with the same encoding read it."""
    retriever = config.retriever  # ranked data: only checked against the ranking's retriever
    if config.use_profile and not config.is_ranked:
        from retrieval import get_retriever

        options = {"model_name": config.retriever_model} if config.retriever == "contriever" else {}
        retriever = get_retriever(config.retriever, **options)
    encoder = ExampleEncoder(
        task=task,
        tokenizer=tokenizer,
        is_encoder_decoder=encoder_decoder,
        max_prompt_length=budget,
        max_target_length=config.max_target_length,
        num_retrieved=config.num_retrieved if config.use_profile else 0,
        retriever=retriever,
        is_ranked=config.is_ranked,
        use_chat_template=config.use_chat_template,
    )

    import longlamp

    def encoded(source, split, limit, with_target=True):
        if source is None:
            return None
        rows = longlamp.load_rows(source, split, task=config.task, data_dir=config.data_dir,
                                  cache_dir=config.cache_dir, revision=config.revision, limit=limit)
        settings = {**{name: getattr(config, name) for name in ENCODING_SETTINGS}, "max_prompt_length": budget}
        settings.update(split=split, with_target=with_target, encoder_decoder=encoder_decoder)
        folder = encoded_cache_dir(config.cache_dir) / f"{split}-{encoding_key(rows, tokenizer, settings)}"

        def encode():
            data = encode_dataset(rows, encoder, f"{source} ({split})", with_target=with_target,
                                  skip_long_targets=config.long_targets == "skip", num_proc=config.num_workers)
            return data.add_column("row", list(range(len(data))))

        return cached_encoding(folder, encode)

    validation = encoded(config.validation_data, "validation", config.max_eval_examples)
    generation = None
    if config.eval_generation_examples:
        generation = validation.select(range(min(config.eval_generation_examples, len(validation))))
    return Splits(
        train=encoded(config.train_data, "train", config.max_train_examples),
        validation=validation,
        generation=generation,
        test=encoded(config.test_data, "test", None, with_target=False),
    )


class _Run:
    """The state one training run threads through its steps, evaluations and checkpoints."""

    def __init__(self, accelerator, config, record, model, tokenizer, generation_source, optimizer, scheduler, state,
                 encoder_decoder, keep_target_logits, output_dir, splits, validation_loader, generation_loader,
                 total_steps):
        self.accelerator, self.config, self.record, self.model = accelerator, config, record, model
        self.tokenizer = tokenizer
        self.optimizer, self.scheduler, self.state = optimizer, scheduler, state
        self.encoder_decoder, self.keep_target_logits = encoder_decoder, keep_target_logits
        self.output_dir, self.splits, self.total_steps = output_dir, splits, total_steps
        self.validation_loader, self.generation_loader = validation_loader, generation_loader
        self.generation_source = generation_source
        self.generation = GenerationSettings(max_new_tokens=config.max_new_tokens or config.max_target_length,
                                             num_beams=config.num_beams)  # greedy, or beam search
        self.synced_gpus = synced_gpus(accelerator)
        self.meter = _Meter()

    def fit(self, train_loader, sampler: EpochSampler, micro_batches_per_epoch: int) -> None:
        config, state, accelerator = self.config, self.state, self.accelerator
        progress = tqdm(total=self.total_steps, initial=state.global_step, desc="Training",
                        disable=not accelerator.is_local_main_process)
        while state.global_step < self.total_steps:
            loader = train_loader
            if state.batches_done:
                from accelerate import skip_first_batches

                loader = skip_first_batches(train_loader, state.batches_done)
            loader.set_epoch(state.epoch)
            # The epoch goes to the sampler itself: accelerate's set_epoch searches a fixed depth of wrappers,
            # and with several processes skip_first_batches puts the sampler one wrapper deeper than it looks.
            sampler.set_epoch(state.epoch)
            batches = iter(loader)
            while state.global_step < self.total_steps:
                started = time.perf_counter()
                window = [batch for _, batch in zip(range(config.gradient_accumulation_steps), batches)]
                if not window:
                    break
                self._optimizer_step(window)
                self.meter.seconds += time.perf_counter() - started  # data and step time, not evaluation
                state.batches_done += len(window)
                state.global_step += 1
                progress.update(1)
                epoch_done = state.batches_done >= micro_batches_per_epoch
                if epoch_done:
                    state.epoch, state.batches_done = state.epoch + 1, 0
                    next(batches, None)  # lets accelerate see the loader finish
                self._after_step(epoch_done)
                if epoch_done:
                    break
        progress.close()

    def _optimizer_step(self, window: list[dict]) -> None:
        """One optimizer step over the micro-batches of `window` (the step's share on this process)."""
        accelerator, model = self.accelerator, self.model
        model.train()
        local = torch.tensor(sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in window), device=accelerator.device)
        global_targets = accelerator.reduce(local, reduction="sum").item()
        # accelerator.backward divides by the accumulation steps and DDP averages over processes: undo both.
        scale = accelerator.gradient_accumulation_steps * accelerator.num_processes / max(global_targets, 1)
        for i, batch in enumerate(window):
            last = i == len(window) - 1
            # The window was read ahead, so accelerate cannot tell where the step ends: say it (as HF Trainer does).
            accelerator.gradient_state._set_sync_gradients(last)
            with accelerator.no_sync(model) if not last else nullcontext():
                losses, _ = token_losses(model, batch, self.encoder_decoder, self.keep_target_logits)
                accelerator.backward(losses.sum() * scale)
            self._log_debug_rows(batch)
            self.meter.add(losses.detach().sum(), losses.numel(), _real_tokens(batch, self.encoder_decoder))
        if self.config.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        if not accelerator.optimizer_step_was_skipped:
            self.scheduler.step()
        self.optimizer.zero_grad()

    def _after_step(self, epoch_done: bool) -> None:
        config, step = self.config, self.state.global_step
        last = step >= self.total_steps
        if step % config.logging_steps == 0 or last:
            self._log_training()
        if self.validation_loader is not None and (
            last or (config.eval_steps and step % config.eval_steps == 0) or (config.eval_steps is None and epoch_done)
        ):
            self._evaluate()
        if (config.save_steps and step % config.save_steps == 0) or (config.save_steps is None and epoch_done) or last:
            checkpoint = save_checkpoint(self.accelerator, self.output_dir, self.state, config.save_total_limit)
            if config.push_to_hub and config.hub_strategy == "checkpoint" and self.accelerator.is_main_process:
                from publishing.hub import push_checkpoint

                push_checkpoint(checkpoint, config.hub_model_id, private=config.hub_private,
                                revision=config.hub_revision, token=config.hub_token,
                                trainable=trainable_names(self.model) if config.use_lora else None)

    def _log_training(self) -> None:
        values = self.meter.flush(self.accelerator)
        if values is None:
            return
        values.update(learning_rate=self.scheduler.get_last_lr()[0], epoch=self.state.epoch)
        self._record(values)

    def _evaluate(self) -> None:
        """Validation loss (and generation scores); export the model to best/ when the chosen metric improves."""
        metrics = {"eval_loss": validation_loss(self.accelerator, self.model, self.validation_loader,
                                                self.encoder_decoder, self.keep_target_logits)}
        if self.generation_loader is not None:
            texts = generate_texts(self.accelerator, self.model, self.generation_source, self.generation_loader,
                                   self.generation, self.synced_gpus)
            references = self.splits.generation["output"]
            metrics.update(score_and_keep(
                self.output_dir / VALIDATION_DIR, self.record, self.state.global_step, self.splits.generation["id"],
                [texts[i] for i in range(len(references))], references, write=self.accelerator.is_main_process))
        self._record(metrics)
        value, best = metrics[self.config.metric_for_best_model], self.state.best_metric
        if best is None or (value < best if self.config.best_is_lower else value > best):
            self.state.best_metric, self.state.best_step = value, self.state.global_step
            save_model(self.accelerator, self.model, self.tokenizer, self.output_dir / BEST_DIR, self.record,
                       TrainingOutcome(global_step=self.state.global_step, metrics=metrics))

    def _record(self, values: dict) -> None:
        step = self.state.global_step
        entry = {"step": step, **values}
        if self.state.history and self.state.history[-1]["step"] == step:
            self.state.history[-1].update(values)
        else:
            self.state.history.append(entry)
        self.accelerator.log(values, step=step)
        logger.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    def _log_debug_rows(self, batch: dict) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            ids = self.splits.train.select(batch["row"].tolist())["id"]
            logger.debug("process %d step %d trains on %s", self.accelerator.process_index, self.state.global_step,
                         ",".join(ids))


class _Meter:
    """Loss and throughput of the training steps since the last log line, summed over processes when read."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.loss, self.targets, self.tokens, self.seconds = 0.0, 0, 0, 0.0

    def add(self, loss_sum: torch.Tensor, targets: int, tokens: int) -> None:
        self.loss += float(loss_sum)
        self.targets += targets
        self.tokens += tokens

    def flush(self, accelerator) -> dict | None:
        totals = accelerator.reduce(torch.tensor([self.loss, self.targets, self.tokens], dtype=torch.float64,
                                                 device=accelerator.device), reduction="sum").tolist()
        seconds = self.seconds
        self.reset()
        if not totals[1]:
            return None
        return {"loss": totals[0] / totals[1], "target_tokens_per_second": totals[1] / seconds,
                "tokens_per_second": totals[2] / seconds}


def _real_tokens(batch: dict, encoder_decoder: bool) -> int:
    """Tokens the model processes for real (padding excluded): inputs, plus decoder targets for encoder-decoders."""
    if encoder_decoder:
        return int(batch["attention_mask"].sum()) + int((batch["example_index"] >= 0).sum())
    return int((batch["example_index"] >= 0).sum())


def _parameter_groups(model, weight_decay: float) -> list[dict]:
    """Trainable parameters, with no weight decay on biases and normalisation weights. Empty groups are left out:
    DeepSpeed drops them from its optimizer, and a schedule built with them then fails at the first step (LoRA
    trains no biases or norms)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if any(part in name.lower() for part in NO_DECAY) else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def synced_gpus(accelerator) -> bool | None:
    """True where generate must be forced to keep every rank stepping (ZeRO-3 on several processes); None
    elsewhere, so that transformers decides itself (it syncs under FSDP, which an explicit False would hang)."""
    return True if accelerator.num_processes > 1 and _zero_stage(accelerator) == 3 else None


def _is_sharded(accelerator) -> bool:
    """Whether FSDP or ZeRO-3 shards the parameters (the model is then loaded without a device_map)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP or _zero_stage(accelerator) == 3


def _zero_stage(accelerator) -> int | None:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin.zero_stage if plugin is not None else None


def _fill_deepspeed_auto_values(accelerator, config: TrainConfig) -> None:
    """Resolve the DeepSpeed JSON's "auto" values that accelerate infers only when loaders and model are
    prepared together (here the loaders are prepared first, to size the schedule)."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    ds = plugin.deepspeed_config
    for key, value in (("train_micro_batch_size_per_gpu", config.per_device_train_batch_size),
                       ("gradient_clipping", config.max_grad_norm)):
        if ds.get(key) == "auto":
            ds[key] = value


def _tracker_config(config: TrainConfig) -> dict:
    """The configuration as trackers accept it (TensorBoard's hparams take only scalars and strings)."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.to_dict().items()}


def _setup_logging(accelerator, level: str) -> None:
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    local_level = getattr(logging, level.upper())
    logging.getLogger("training").setLevel(local_level if accelerator.is_local_main_process or level == "debug"
                                           else logging.WARNING)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
