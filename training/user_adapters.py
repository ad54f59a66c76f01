"""Training one LoRA adapter per user (OPPU) on one shared base model (training/train_per_user.py's trainer).

The base (with a task adapter merged in) is loaded once however many users there are: each user's adapter is added
to the same `PeftModel`, trained alone, saved into the run's `personalization.user_adapters.AdapterStore` and
deleted. Each user's seed comes from the run's seed and the user id, so an adapter is the same whichever process
trains it, and after a restart.
"""

from __future__ import annotations

import hashlib
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import torch

from generation.dtypes import torch_dtype
from longlamp_errors import ConfigError, DataError, PromptBudgetError
from longlamp_prompts import context_length, prompt_budget
from personalization.summaries import SummaryPromptBuilder
from personalization.user_adapters import AdapterStore
from training.collate import TrainingCollator
from training.data import ExampleEncoder
from training.loss import per_example_sums, token_losses
from training.modeling import (
    accepts_logits_to_keep,
    is_encoder_decoder,
    load_model_config,
    load_tokenizer,
    lora_target_modules,
)


def user_seed(seed: int, user_id: str) -> int:
    """A user's own seed: the same adapter initialisation and data order whichever process trains it, and after
    a restart."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{user_id}".encode()).digest()[:4], "little")


def adapter_name(user_id: str) -> str:
    """The name a user's adapter has inside the PeftModel (module attribute names cannot hold dots)."""
    return "user_" + hashlib.sha256(user_id.encode()).hexdigest()[:16]


# OPPU's own numbers (TamSiuhin/OPPU, OPPU.py): each field of a profile item cut to its first 768 words.
OPPU_MAX_WORDS = 768


@dataclass
class TrainSettings:
    """One user's optimisation; the defaults are OPPU's (its transformers.TrainingArguments)."""

    learning_rate: float = 1e-4
    num_train_epochs: int = 2
    batch_size: int = 16
    max_grad_norm: float = 0.3
    seed: int = 42
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    lr_scheduler: str = "linear"


def optimization(settings: TrainSettings, parameters, steps: int):
    """(optimizer, schedule) of one user's `steps` optimizer steps: AdamW with weight decay, the learning rate
    warmed up over the first ceil(warmup_ratio * steps) steps, then the schedule's decay (as transformers' Trainer
    does for OPPU)."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    return optimizer, get_scheduler(settings.lr_scheduler, optimizer, num_training_steps=steps,
                                    num_warmup_steps=math.ceil(settings.warmup_ratio * steps))


class UserAdapterTrainer:
    """Trains users' adapters one after another on one model: add, train, save, delete."""

    def __init__(self, model, lora_config, collator, encoder_decoder: bool, keep_target_logits: bool,
                 settings: TrainSettings, device):
        self.base, self.lora_config, self.collator = model, lora_config, collator
        self.encoder_decoder, self.keep_target_logits = encoder_decoder, keep_target_logits
        self.settings, self.device = settings, device
        self.model = None  # the PeftModel, made with the first user's adapter

    def _add(self, name: str):
        from peft import get_peft_model

        if self.model is None:
            self.model = get_peft_model(self.base, self.lora_config, adapter_name=name)
        else:
            self.model.add_adapter(name, self.lora_config)
        self.model.set_adapter(name)  # only this adapter's weights require gradients

    def train_user(self, user_id: str, examples: Sequence[dict], held_out: Sequence[dict], store: AdapterStore,
                   left_out: int = 0, profile_summary: dict | None = None) -> dict:
        """Train, evaluate and save one user's adapter (`left_out`: the profile items kept from it as leaks;
        `profile_summary`: with +PAG, what the summaries in its prompts read and said; both recorded); returns its
        record."""
        started = time.perf_counter()
        name = adapter_name(user_id)
        seed = user_seed(self.settings.seed, user_id)
        torch.manual_seed(seed)
        self._add(name)
        before = self.loss(held_out, with_adapter=False) if held_out else None
        try:
            train_loss = self._fit(user_id, examples, torch.Generator().manual_seed(seed))
            after = self.loss(held_out) if held_out else None
            if after is not None and not math.isfinite(after):
                raise ConfigError(f"user {user_id!r}: the held-out loss with the trained adapter is {after}: the "
                                  "adapter is broken (check --learning_rate); it is not saved")
        except BaseException:
            self.model.delete_adapter(name)
            raise
        record = {"adapter_name": name, "profile_examples": len(examples), "profile_items_left_out": left_out,
                  "held_out_examples": len(held_out),
                  "train_loss": train_loss, "held_out_loss": after, "held_out_loss_without_adapter": before,
                  "seconds": round(time.perf_counter() - started, 3)}
        if profile_summary is not None:
            record["profile_summary"] = profile_summary
        store.save(self.model, name, user_id, record)
        self.model.delete_adapter(name)
        return store.record(user_id)

    def _fit(self, user_id: str, examples: Sequence[dict], generator: torch.Generator) -> float | None:
        """OPPU's loop: AdamW, linear warm-up over the first `warmup_ratio` of the steps then linear decay to 0,
        clipping; a non-finite loss stops the user (nothing is saved for them)."""
        settings, model = self.settings, self.model
        parameters = [p for p in model.parameters() if p.requires_grad]
        steps = settings.num_train_epochs * math.ceil(len(examples) / settings.batch_size)
        optimizer, scheduler = optimization(settings, parameters, steps)
        model.train()
        last, step = None, 0
        for _ in range(settings.num_train_epochs):
            order = torch.randperm(len(examples), generator=generator).tolist()
            for start in range(0, len(order), settings.batch_size):
                batch = self._batch([examples[i] for i in order[start:start + settings.batch_size]])
                losses, _ = token_losses(model, batch, self.encoder_decoder, self.keep_target_logits)
                loss = losses.sum() / max(losses.numel(), 1)  # mean over this step's target tokens, as train.py
                step += 1
                if not torch.isfinite(loss):
                    raise ConfigError(f"user {user_id!r}: the training loss is {float(loss)} at step {step} of "
                                      f"{steps} (learning rate {scheduler.get_last_lr()[0]:g}): the adapter would be "
                                      "broken, so it is not saved (check --learning_rate)")
                loss.backward()
                if settings.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                last = float(loss.detach())
        return last

    @torch.no_grad()
    def loss(self, examples: Sequence[dict], with_adapter: bool = True) -> float:
        """Mean cross-entropy per target token of `examples` with the active adapter, or the model without it."""
        model = self.model
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64)
        with nullcontext() if with_adapter else model.disable_adapter():
            for start in range(0, len(examples), self.settings.batch_size):
                chunk = examples[start:start + self.settings.batch_size]
                losses, owners = token_losses(model, self._batch(chunk), self.encoder_decoder, self.keep_target_logits)
                totals += per_example_sums(losses, owners, len(chunk)).sum(dim=0).double().cpu()
        return float(totals[0] / totals[1])

    def _batch(self, examples: Sequence[dict]) -> dict:
        rows = [{**example, "row": index} for index, example in enumerate(examples)]
        return {key: value.to(self.device) for key, value in self.collator(rows).items()}


def prompt_rules(args) -> tuple:
    """(model config, tokenizer, whether it is an encoder-decoder, the prompt budget) of the per-user training run
    `args` describes: what its record and its training read, without the weights."""
    model_config = load_model_config(args.model_name)
    tokenizer = load_tokenizer(args.model_name)
    encoder_decoder = is_encoder_decoder(model_config)
    budget = prompt_budget(args.max_prompt_length, context_length(model_config, tokenizer), args.max_target_length,
                           encoder_decoder, new_tokens_flag="--max_target_length")
    return model_config, tokenizer, encoder_decoder, budget


class SummaryExampleEncoder(ExampleEncoder):
    """Training's encoder with each example's profile summary (its "summary") before the task input (OPPU's +PAG),
    built as evaluate_per_user.py builds its prompts (`SummaryPromptBuilder`: the summary cut first so that the
    input fits, the retrieved items sharing what is left)."""

    def prompt(self, row) -> str:
        return SummaryPromptBuilder(self.prompts)(self.retrieved(row), row["input"], row["summary"])


def example_encoder(args, task) -> tuple:
    """(training encoder, model config, whether it is an encoder-decoder) of the run `args` describes: its prompts
    (with the retriever and, with --use_summary, the summaries), without the weights."""
    model_config, tokenizer, encoder_decoder, budget = prompt_rules(args)
    retriever = None
    if args.use_profile:
        from retrieval import get_retriever

        options = {"model_name": args.retriever_model} if args.retriever == "contriever" else {}
        retriever = get_retriever(args.retriever, **options)
    encoder_class = SummaryExampleEncoder if args.use_summary else ExampleEncoder
    encoder = encoder_class(task=task, tokenizer=tokenizer, is_encoder_decoder=encoder_decoder,
                            max_prompt_length=budget, max_target_length=args.max_target_length,
                            num_retrieved=args.num_retrieved if args.use_profile else 0, retriever=retriever,
                            use_chat_template=args.use_chat_template)
    return encoder, model_config, encoder_decoder


def load_for_training(args, encoder: ExampleEncoder, model_config, encoder_decoder: bool, device):
    """The shared model (task adapter merged in), frozen, and the collator of `encoder`'s examples."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto_class = AutoModelForSeq2SeqLM if encoder_decoder else AutoModelForCausalLM
    model = auto_class.from_pretrained(args.model_name, dtype=torch_dtype(args.dtype))
    if args.task_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.task_adapter).merge_and_unload()
    model.to(device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    collator = TrainingCollator(encoder.tokenizer.pad_token_id, encoder_decoder,
                                getattr(model_config, "decoder_start_token_id", None))
    torch.manual_seed(args.seed)
    return model, collator, not encoder_decoder and accepts_logits_to_keep(model)


def adapter_trainer(args, model, collator, encoder_decoder: bool, keep_target_logits: bool,
                    device) -> UserAdapterTrainer:
    """The trainer of train_per_user.py's flags: their LoRA and optimisation (OPPU's by default)."""
    settings = TrainSettings(args.learning_rate, args.num_train_epochs, args.per_device_train_batch_size,
                             args.max_grad_norm, args.seed, args.warmup_ratio, args.weight_decay, args.lr_scheduler)
    return UserAdapterTrainer(model, lora_config(args, model.config, encoder_decoder), collator, encoder_decoder,
                              keep_target_logits, settings, device)


def lora_config(args, model_config, encoder_decoder: bool):
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM, r=args.lora_r,
                      lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      target_modules=lora_target_modules(args.lora_target_modules, model_config.model_type))


def encode_all(encoder, examples: list[dict], source: str, max_target_length: int, long_targets: str) -> list[dict]:
    """Training's encoding of each example; targets over the limit skipped, refused, or cut to the limit (OPPU's
    truncation: the target's end, its end-of-sequence token included, is lost) as `long_targets` says."""
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
                                f"than --max_target_length {max_target_length} (or pass --long_targets skip or "
                                "truncate)")
            if long_targets == "skip":
                continue
            item = truncated(item, max_target_length, encoder.is_encoder_decoder)
        encoded.append(item)
    return encoded


def truncated(item: dict, max_target_length: int, encoder_decoder: bool) -> dict:
    """An encoded example with its target cut to its first `max_target_length` tokens."""
    cut = max_target_length if encoder_decoder else item["prompt_length"] + max_target_length
    input_ids = item["input_ids"] if encoder_decoder else item["input_ids"][:cut]
    labels = item["labels"][:cut]
    return {**item, "input_ids": input_ids, "labels": labels, "target_length": max_target_length,
            "length": len(input_ids) + (len(labels) if encoder_decoder else 0)}
