"""Every training setting in one dataclass, read from a settings file and the command line.

The flag names follow the benchmark README (`--train_data`, `--model_name`, `--task`, `--retriever`,
`--use_profile`, `--is_ranked`, `--num_retrieved`, ...) and the Hugging Face training knobs users know; the
concepts shared with the other commands (data, retrieval, model, prompt, publishing) are the shared argument
dataclasses' fields (longlamp_cli). Precedence: defaults < `--config FILE` < command-line flags. Problems are
reported before any compute.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Sequence

from generation.cli import DecodingArguments, ModelArguments
from longlamp_cli import (
    ArgumentParser,
    DataArguments,
    DataSourceArguments,
    LoggingArguments,
    OutputArguments,
    SeedArguments,
    WorkerArguments,
    arg,
    check_fields,
    json_object,
    non_negative_int,
    positive_int,
    reuse,
    warn_ignored_profile_flags,
)
from longlamp_errors import ConfigError
from longlamp_tasks import config_names, parse_config_name
from publishing.cli import HubArguments
from retrieval.cli import DEFAULT_RETRIEVER, ProfileArguments, PromptSettingsArguments, retrieval_flags_set
from retrieval.ranked import ranked_task_and_retriever
from scoring import HEADLINE_METRICS

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay")
TRACKERS = ("tensorboard", "wandb")

PATH_FIELDS = ("train_data", "validation_data", "test_data", "data_dir", "cache_dir", "model_name", "output_dir",
               "resume_from_checkpoint", "retriever_model")
SECRET_FIELDS = ("hub_token",)  # never recorded, logged or echoed
HUB_STRATEGIES = ("end", "checkpoint")


# Fields come from the last base first: the model, the data, the prompt, the output folder, logging, then its own.
@dataclass(kw_only=True)
class TrainConfig(LoggingArguments, OutputArguments, PromptSettingsArguments, DataSourceArguments, ModelArguments):
    """What one fine-tuning run does; `validate()` checks it, `to_dict()` records it next to the model."""

    _argument_group_name = "training"
    # Data (README flags): a path (parquet/Arrow/JSON/JSONL, a save_to_disk folder, LaMP-style *_questions.json)
    # or a LongLaMP config name such as "product_review_user" (then the matching split is loaded).
    train_data: str = arg("training data: a file/folder or a LongLaMP config name")
    validation_data: str | None = arg("validation data: a file/folder or a LongLaMP config name (default: none, no "
                                      "evaluation)", default=None)
    test_data: str | None = arg("test data to write predictions for after training (default: none)", default=None)
    is_ranked: bool = reuse(ProfileArguments, "is_ranked")
    max_train_examples: int | None = arg("use only the first N training rows (quick runs) (default: all)",
                                         default=None, type=positive_int)
    max_eval_examples: int | None = reuse(DataArguments, "max_eval_examples")
    num_workers: int | None = reuse(WorkerArguments, "num_workers")

    # Model and prompt
    attn_implementation: str | None = arg("eager, sdpa, flash_attention_2, ... (default: transformers' choice)",
                                          default=None)
    max_target_length: int = arg("longest target in tokens, end-of-sequence included (targets are never cut)",
                                 default=1024, type=positive_int)
    long_targets: str = arg("what to do with a target longer than --max_target_length", default="error",
                            choices=("error", "skip"))

    # Parameter-efficient fine-tuning
    use_lora: bool = arg("train a LoRA adapter instead of all weights", default=False)
    lora_r: int = arg("LoRA rank", default=16, type=positive_int)
    lora_alpha: int = arg("LoRA alpha", default=32, type=positive_int)
    lora_dropout: float = arg("LoRA dropout", default=0.05)
    lora_target_modules: str = arg("comma-separated module names, all-linear, or auto (peft's per-architecture "
                                   "default, else all-linear)", default="auto")
    load_in_4bit: bool = arg("QLoRA: load the frozen base in 4-bit NF4 (needs a CUDA GPU and bitsandbytes)",
                             default=False)
    merge_lora: bool = arg("also export the base model with the adapter merged in (final-merged/)", default=False)

    # Optimisation
    overwrite_output_dir: bool = arg("replace the outputs of another run found in --output_dir (without it such a "
                                     "folder is refused)", default=False)
    seed: int = reuse(SeedArguments, "seed", default=42)
    learning_rate: float = arg("peak learning rate", default=5e-5)
    weight_decay: float = arg("AdamW weight decay (not applied to biases and norms)", default=0.0)
    lr_scheduler: str = arg("learning-rate schedule", default="linear", choices=SCHEDULERS)
    lr_scheduler_kwargs: str | None = arg("JSON object of the schedule's own arguments, e.g. "
                                          "'{\"min_lr_rate\": 0.1}' for cosine_with_min_lr, "
                                          "'{\"num_decay_steps\": 100}' for warmup_stable_decay (default: none)",
                                          default=None)
    warmup_steps: int = arg("warm-up optimizer steps (wins over --warmup_ratio)", default=0, type=non_negative_int)
    warmup_ratio: float = arg("warm-up as a fraction of all optimizer steps", default=0.0)
    num_train_epochs: int = arg("passes over the training data", default=3, type=positive_int)
    max_steps: int = arg("optimizer steps in total; > 0 overrides --num_train_epochs", default=-1)
    per_device_train_batch_size: int = arg("examples per micro-batch on each process", default=4, type=positive_int)
    per_device_eval_batch_size: int = arg("examples per evaluation batch on each process", default=8,
                                          type=positive_int)
    gradient_accumulation_steps: int = arg("micro-batches per optimizer step", default=1, type=positive_int)
    max_grad_norm: float = arg("gradient clipping norm (0 disables)", default=1.0)
    mixed_precision: str | None = arg("mixed precision (default: the accelerate config's)", default=None,
                                      choices=("no", "fp16", "bf16"))
    gradient_checkpointing: bool = arg("recompute activations in the backward pass to save memory", default=False)
    packing: bool = arg("decoder-only models: pack each micro-batch's examples without padding", default=False)
    group_by_length: bool = arg("batch examples of similar length together (less padding)", default=False)
    ddp_timeout: int = arg("seconds the processes wait for each other (e.g. while rank 0 encodes the data) before "
                           "giving up", default=1800, type=positive_int)

    # Evaluation, checkpoints, logging
    eval_steps: int | None = arg("evaluate every N optimizer steps (default: at the end of each epoch)",
                                 default=None, type=positive_int)
    eval_generation_examples: int = arg("validation examples to generate and score with ROUGE/METEOR at each "
                                        "evaluation (0: loss only)", default=0, type=non_negative_int)
    max_new_tokens: int | None = reuse(DecodingArguments, "max_new_tokens", default=None,
                                       help="longest validation generation (default: --max_target_length)",
                                       aliases=("--generation_max_new_tokens",))
    num_beams: int = reuse(DecodingArguments, "num_beams")
    metric_for_best_model: str = arg("eval_loss is lower-is-better, the generation metrics higher-is-better",
                                     default="eval_loss", choices=("eval_loss",) + HEADLINE_METRICS)
    save_steps: int | None = arg("save a resumable checkpoint every N optimizer steps (default: each epoch)",
                                 default=None, type=positive_int)
    save_total_limit: int | None = arg("keep only the newest N checkpoints (none: keep all)", default=2,
                                       type=positive_int)
    resume_from_checkpoint: str | None = arg("'latest' or a checkpoint folder to continue from (default: start "
                                             "afresh)", default=None)
    logging_steps: int = arg("log loss, learning rate and throughput every N optimizer steps", default=10,
                             type=positive_int)
    report_to: str = arg("trackers: auto (tensorboard when installed), none, tensorboard, wandb, or a "
                         "comma-separated list", default="auto")
    project_name: str = arg("tracker project name", default="longlamp")

    # Publishing (publishing/hub.py): the card is written to output_dir/README.md in every run
    push_to_hub: bool = reuse(HubArguments, "push_to_hub")
    hub_model_id: str | None = reuse(HubArguments, "hub_model_id")
    hub_private: bool = reuse(HubArguments, "hub_private")
    hub_revision: str | None = reuse(HubArguments, "hub_revision")
    hub_token: str | None = reuse(HubArguments, "hub_token")
    create_pr: bool = reuse(HubArguments, "create_pr")
    hub_strategy: str = arg("end: push at the end of training; checkpoint: also push each checkpoint as it is saved "
                            "to last-checkpoint/ (resumable from the Hub)", default="end", choices=HUB_STRATEGIES)

    def __post_init__(self):
        # Paths may come as os.PathLike from Python callers; the run records and compares them as strings.
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))

    def validate(self) -> TrainConfig:
        """Raise ConfigError on anything that would fail later; fill the task from a config-name data source."""
        check_fields(self)
        warn_ignored_profile_flags(self.use_profile, retrieval_flags_set(self))
        if self.is_ranked and self.use_profile and self.train_data not in config_names():  # the data names both
            self.task, self.retriever = ranked_task_and_retriever(self.train_data, self.task, self.retriever)
        self.retriever = self.retriever or DEFAULT_RETRIEVER
        if self.task is None:
            if self.train_data not in config_names():
                raise ConfigError("--task is required when --train_data is a file or folder")
            self.task = self.train_data
        try:
            parse_config_name(self.task)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        self.scheduler_kwargs()
        if self.load_in_4bit and not self.use_lora:
            raise ConfigError("--load_in_4bit (QLoRA) trains an adapter: add --use_lora")
        if self.merge_lora and not self.use_lora:
            raise ConfigError("--merge_lora needs --use_lora")
        if self.packing and self.group_by_length:
            raise ConfigError("--packing and --group_by_length are alternatives; choose one")
        if self.overwrite_output_dir and self.resume_from_checkpoint:
            raise ConfigError("--overwrite_output_dir starts the run afresh; it cannot be combined with "
                              "--resume_from_checkpoint")
        if self.metric_for_best_model != "eval_loss" and not self.eval_generation_examples:
            raise ConfigError(f"--metric_for_best_model {self.metric_for_best_model} is a generation metric: "
                              "set --eval_generation_examples to the number of examples to generate")
        if self.eval_generation_examples and not self.validation_data:
            raise ConfigError("--eval_generation_examples needs --validation_data")
        if self.push_to_hub and len((self.hub_model_id or "").split("/")) != 2:
            raise ConfigError(f"--push_to_hub needs --hub_model_id NAMESPACE/NAME, got {self.hub_model_id!r}")
        if self.push_to_hub and not self.hub_private and not parse_config_name(self.task)[0].public:
            raise ConfigError("--push_to_hub of an email_generation model needs --hub_private: its prompts and "
                              "predictions hold Avocado (LDC-licensed) text; to publish anyway, push the run with "
                              "evaluation/push_results.py --public_despite_license")
        self.trackers()
        return self

    def scheduler_kwargs(self) -> dict:
        """The schedule's own arguments (--lr_scheduler_kwargs), as a dict."""
        return json_object("--lr_scheduler_kwargs", self.lr_scheduler_kwargs)

    def trackers(self) -> list[str]:
        """The accelerate trackers `report_to` names ("auto": tensorboard when it is installed)."""
        if self.report_to == "none":
            return []
        if self.report_to == "auto":
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                return []
            return ["tensorboard"]
        names = list(TRACKERS) if self.report_to == "all" else [n.strip() for n in self.report_to.split(",")]
        for name in names:
            if name not in TRACKERS:
                raise ConfigError(f"--report_to {name!r} is not one of: {', '.join(TRACKERS)}")
        return names

    @property
    def best_is_lower(self) -> bool:
        return self.metric_for_best_model == "eval_loss"

    def to_dict(self) -> dict:
        """Every setting except secrets (the run record, training/record.py, is built from it)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in SECRET_FIELDS}


def parser() -> ArgumentParser:
    """train.py's flags: TrainConfig's fields (the shared concepts among them), older names as aliases."""
    return ArgumentParser(TrainConfig, description="Fine-tune a model on a LongLaMP task (run with `accelerate "
                                                   "launch`).")


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The validated configuration from `--config FILE` and command-line flags."""
    return parser().parse_into(argv).validate()
