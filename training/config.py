"""Every training setting in one dataclass, read from a YAML/JSON file and the command line.

The flag names follow the benchmark README (`--train_data`, `--model_name`, `--task`, `--retriever`,
`--use_profile`, `--is_ranked`, `--num_retrieved`, ...) and the Hugging Face training knobs users know.
Precedence: defaults < `--config FILE` < command-line flags. Problems are reported before any compute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from generation.dtypes import DTYPES
from longlamp_cli import json_object, warn_ignored_profile_flags
from longlamp_errors import ConfigError
from longlamp_tasks import config_names, parse_config_name
from retrieval.ranked import ranked_task_and_retriever
from scoring import HEADLINE_METRICS

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay")
TRACKERS = ("tensorboard", "wandb")

# Older names kept for flags and config-file keys (the project's one vocabulary; docs/training.md has the table).
ALIASES = {
    "model_addr": "model_name",
    "model_dtype": "dtype",
    "max_prompt_tokens": "max_prompt_length",
    "generation_max_new_tokens": "max_new_tokens",
    "preprocessing_num_workers": "num_workers",
}
PATH_FIELDS = ("train_data", "validation_data", "test_data", "data_dir", "cache_dir", "model_name", "output_dir",
               "resume_from_checkpoint", "retriever_model")
SECRET_FIELDS = ("hub_token",)  # never recorded, logged or echoed
HUB_STRATEGIES = ("end", "checkpoint")


def _help(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass
class TrainConfig:
    """What one fine-tuning run does; `validate()` checks it, `to_dict()` records it next to the model."""

    # Data (README flags): a path (parquet/Arrow/JSON/JSONL, a save_to_disk folder, LaMP-style *_questions.json)
    # or a LongLaMP config name such as "product_review_user" (then the matching split is loaded).
    task: str | None = _help("task or config name, e.g. product_review_user (default: the config name of --train_data)",
                             default=None)
    train_data: str | None = _help("training data: a file/folder or a LongLaMP config name", default=None)
    validation_data: str | None = _help("validation data: a file/folder or a LongLaMP config name", default=None)
    test_data: str | None = _help("test data to write predictions for after training", default=None)
    data_dir: str | None = _help("local copy of the LongLaMP data used with config names", default=None)
    cache_dir: str | None = _help("datasets cache for config names (default: the Hugging Face cache)", default=None)
    revision: str | None = _help("branch, tag or commit of the Hub's LongLaMP data for config names (default: the "
                                 "newest)", default=None)
    use_profile: bool = _help("personalise: put retrieved profile items in the prompt", default=False)
    retriever: str = _help("ranking model for profile items", default="bm25")
    retriever_model: str = _help("dense encoder of --retriever contriever when ranking on the fly (a Hub id or "
                                 "folder of a Contriever-style model)", default="facebook/contriever")
    is_ranked: bool = _help("profiles are already ranked: take the first --num_retrieved items", default=False)
    num_retrieved: int = _help("profile items per prompt", default=1)
    max_train_examples: int | None = _help("use only the first N training rows (quick runs)", default=None)
    max_eval_examples: int | None = _help("use only the first N validation rows", default=None)
    num_workers: int | None = _help("processes that build prompts (alias --preprocessing_num_workers)", default=None)

    # Model
    model_name: str | None = _help("Hub id or local folder of the model to fine-tune (alias --model_addr)",
                                   default=None)
    use_chat_template: bool | None = _help("wrap prompts in the tokenizer's chat template (default: when it has one)",
                                           default=None)
    attn_implementation: str | None = _help("eager, sdpa, flash_attention_2, ... (default: transformers' choice)",
                                            default=None)
    dtype: str = _help("dtype of the loaded weights: auto is float32 for trained weights, the mixed-precision dtype "
                       "for a frozen LoRA base (float32 without mixed precision; see generation/dtypes.py) (alias "
                       "--model_dtype)", default="auto")
    max_prompt_length: int | None = _help("token budget of a prompt; profile items are shortened to fit it (default: "
                                          "1024, lowered to what the position limit leaves: the zero-shot rule; "
                                          "alias --max_prompt_tokens)", default=None)
    max_target_length: int = _help("longest target in tokens, end-of-sequence included (targets are never cut)",
                                   default=1024)
    long_targets: str = _help("what to do with a target longer than --max_target_length", default="error")

    # Parameter-efficient fine-tuning
    use_lora: bool = _help("train a LoRA adapter instead of all weights", default=False)
    lora_r: int = _help("LoRA rank", default=16)
    lora_alpha: int = _help("LoRA alpha", default=32)
    lora_dropout: float = _help("LoRA dropout", default=0.05)
    lora_target_modules: str = _help("comma-separated module names, all-linear, or auto (peft's per-architecture "
                                     "default, else all-linear)", default="auto")
    load_in_4bit: bool = _help("QLoRA: load the frozen base in 4-bit NF4 (needs a CUDA GPU and bitsandbytes)",
                               default=False)
    merge_lora: bool = _help("also export the base model with the adapter merged in (final-merged/)", default=False)

    # Optimisation
    output_dir: str | None = _help("where checkpoints, logs and the final model go", default=None)
    overwrite_output_dir: bool = _help("replace the outputs of another run found in --output_dir (without it such a "
                                       "folder is refused)", default=False)
    seed: int = _help("seed of weights init, data order and dropout", default=42)
    learning_rate: float = _help("peak learning rate", default=5e-5)
    weight_decay: float = _help("AdamW weight decay (not applied to biases and norms)", default=0.0)
    lr_scheduler: str = _help("learning-rate schedule", default="linear")
    lr_scheduler_kwargs: str | None = _help("JSON object of the schedule's own arguments, e.g. "
                                            "'{\"min_lr_rate\": 0.1}' for cosine_with_min_lr, "
                                            "'{\"num_decay_steps\": 100}' for warmup_stable_decay", default=None)
    warmup_steps: int = _help("warm-up optimizer steps (wins over --warmup_ratio)", default=0)
    warmup_ratio: float = _help("warm-up as a fraction of all optimizer steps", default=0.0)
    num_train_epochs: int = _help("passes over the training data", default=3)
    max_steps: int = _help("optimizer steps in total; > 0 overrides --num_train_epochs", default=-1)
    per_device_train_batch_size: int = _help("examples per micro-batch on each process", default=4)
    per_device_eval_batch_size: int = _help("examples per evaluation batch on each process", default=8)
    gradient_accumulation_steps: int = _help("micro-batches per optimizer step", default=1)
    max_grad_norm: float = _help("gradient clipping norm (0 disables)", default=1.0)
    mixed_precision: str | None = _help("mixed precision (default: the accelerate config's)", default=None)
    gradient_checkpointing: bool = _help("recompute activations in the backward pass to save memory", default=False)
    packing: bool = _help("decoder-only models: pack each micro-batch's examples without padding", default=False)
    group_by_length: bool = _help("batch examples of similar length together (less padding)", default=False)
    ddp_timeout: int = _help("seconds the processes wait for each other (e.g. while rank 0 encodes the data) before "
                             "giving up", default=1800)

    # Evaluation, checkpoints, logging
    eval_steps: int | None = _help("evaluate every N optimizer steps (default: at the end of each epoch)",
                                   default=None)
    eval_generation_examples: int = _help("validation examples to generate and score with ROUGE/METEOR at each "
                                          "evaluation (0: loss only)", default=0)
    max_new_tokens: int | None = _help("longest generation (default: --max_target_length; alias "
                                       "--generation_max_new_tokens)", default=None)
    num_beams: int = _help("beam search width for generation", default=1)
    metric_for_best_model: str = _help("eval_loss is lower-is-better, the generation metrics higher-is-better",
                                       default="eval_loss")
    save_steps: int | None = _help("save a resumable checkpoint every N optimizer steps (default: each epoch)",
                                   default=None)
    save_total_limit: int | None = _help("keep only the newest N checkpoints", default=2)
    resume_from_checkpoint: str | None = _help("'latest' or a checkpoint folder to continue from", default=None)
    logging_steps: int = _help("log loss, learning rate and throughput every N optimizer steps", default=10)
    report_to: str = _help("trackers: auto (tensorboard when installed), none, tensorboard, wandb, or a "
                           "comma-separated list", default="auto")
    project_name: str = _help("tracker project name", default="longlamp")
    log_level: str = _help("how much the run logs", default="info")

    # Publishing (publishing/hub.py): the card is written to output_dir/README.md in every run
    push_to_hub: bool = _help("push the final model (or the LoRA adapter), its card and results to the Hub",
                              default=False)
    hub_model_id: str | None = _help("Hub repository NAMESPACE/NAME to push to", default=None)
    hub_private: bool = _help("create the Hub repository as private", default=False)
    hub_revision: str | None = _help("branch of the Hub repository to push to (default: main)", default=None)
    hub_strategy: str = _help("end: push at the end of training; checkpoint: also push each checkpoint as it is saved "
                              "to last-checkpoint/ (resumable from the Hub)", default="end")
    hub_token: str | None = _help("Hub token (default: HF_TOKEN or the saved login); never written or logged",
                                  default=None, repr=False)

    def __post_init__(self):
        # Paths may come as os.PathLike from Python callers; the run records and compares them as strings.
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))

    def validate(self) -> TrainConfig:
        """Raise ConfigError on anything that would fail later; fill the task from a config-name data source."""
        for spec in dataclasses.fields(self):
            check_type(spec.name, getattr(self, spec.name))
        for name in ("model_name", "output_dir", "train_data"):
            if not getattr(self, name):
                raise ConfigError(f"--{name} is required")
        changed = [f"--{name}" for name in ("retriever", "num_retrieved", "is_ranked") if getattr(self, name) !=
                   next(spec.default for spec in dataclasses.fields(self) if spec.name == name)]
        warn_ignored_profile_flags(self.use_profile, changed)
        if self.is_ranked and self.use_profile and self.train_data not in config_names():  # the data names both
            self.task, self.retriever = ranked_task_and_retriever(self.train_data, self.task, self.retriever)
        if self.task is None:
            if self.train_data not in config_names():
                raise ConfigError("--task is required when --train_data is a file or folder")
            self.task = self.train_data
        try:
            parse_config_name(self.task)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        for name in ("num_retrieved", "max_target_length", "lora_r", "lora_alpha",
                     "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
                     "gradient_accumulation_steps", "logging_steps", "num_beams", "ddp_timeout"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("eval_steps", "save_steps", "save_total_limit", "max_train_examples", "max_eval_examples",
                     "max_new_tokens", "num_workers", "max_prompt_length"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1 when given, got {getattr(self, name)}")
        for name, choices in choices_of().items():
            if getattr(self, name) is not None:
                _check_choice(name, getattr(self, name), choices)
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
        _check_choice("hub_strategy", self.hub_strategy, HUB_STRATEGIES)
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
            _check_choice("report_to", name, TRACKERS)
        return names

    @property
    def best_is_lower(self) -> bool:
        return self.metric_for_best_model == "eval_loss"

    def to_dict(self) -> dict:
        """Every setting except secrets (the run record, training/record.py, is built from it)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in SECRET_FIELDS}


def _check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ConfigError(f"--{name} {value!r} is not one of: {', '.join(map(str, choices))}")


def choices_of() -> dict[str, tuple]:
    """The settings that take one of a fixed set of values, with those values."""
    from retrieval import RETRIEVERS

    return {
        "retriever": tuple(RETRIEVERS), "lr_scheduler": SCHEDULERS, "long_targets": ("error", "skip"),
        "dtype": DTYPES, "log_level": ("debug", "info", "warning"),
        "mixed_precision": ("no", "fp16", "bf16"), "metric_for_best_model": ("eval_loss",) + HEADLINE_METRICS,
    }


_TYPES = {"int": int, "float": float, "str": str}
_FIELD_TYPES = {spec.name: spec.type for spec in dataclasses.fields(TrainConfig)}


def check_type(name: str, value, where: str = "--") -> None:
    """Refuse a value of the wrong type for setting `name` (e.g. YAML 1.1 reads 2e-4 as the string "2e-4")."""
    declared = _FIELD_TYPES[name]
    base = declared.replace(" | None", "")
    if value is None and declared.endswith("| None"):
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if {"bool": isinstance(value, bool), "int": number and isinstance(value, int), "float": number,
            "str": isinstance(value, str)}[base]:
        return
    hint = ""
    if base in ("int", "float") and isinstance(value, str):
        hint = " (YAML reads numbers like 2e-4 as strings: write 2.0e-4)"
    raise ConfigError(f"{where}{name}: expected {'an' if base == 'int' else 'a'} {base}"
                      f"{' or nothing' if declared.endswith('| None') else ''}, got {type(value).__name__} "
                      f"{value!r}{hint}")


class _Switch(argparse.BooleanOptionalAction):
    """`--x` / `--no-x` as argparse writes them, and `--no_x`: the project's spelling (`--no_use_chat_template`)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.option_strings += [f"--no_{name[2:]}" for name in option_strings if name.startswith("--")]

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not option_string.startswith(("--no-", "--no_")))


def _help_text(spec) -> str:
    default = spec.default
    shown = "" if "(default:" in spec.metadata["help"] else f" (default: {default})"
    return spec.metadata["help"].replace("%", "%%") + shown


def _parser() -> argparse.ArgumentParser:
    """Flags generated from TrainConfig (older names as aliases), every default suppressed so that only given
    flags override; the help shows the defaults and choices."""
    parser = argparse.ArgumentParser(
        description="Fine-tune a model on a LongLaMP task (run with `accelerate launch`).",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="YAML or JSON file of settings (keys: the flag names); flags given here "
                                         "override it")
    aliases = {name: [f"--{old}" for old, new in ALIASES.items() if new == name] for name in _FIELD_TYPES}
    choices = choices_of()
    for spec in dataclasses.fields(TrainConfig):
        base = spec.type.replace(" | None", "")
        names = [f"--{spec.name}", *aliases[spec.name]]
        if base == "bool":
            parser.add_argument(*names, dest=spec.name, action=_Switch, help=_help_text(spec))
        else:
            parser.add_argument(*names, dest=spec.name, type=_TYPES[base], help=_help_text(spec),
                                choices=choices.get(spec.name), metavar=None if spec.name in choices else base.upper())
    return parser


def load_config_file(path: str | Path) -> dict:
    """Settings from a YAML (.yaml/.yml) or JSON file, older key names mapped to the current ones; an unknown key
    or a value of the wrong type is an error that names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of setting names to values")
    unknown = sorted(key for key in values if key not in _FIELD_TYPES and key not in ALIASES)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(map(str, unknown))}")
    settings, keys = {}, {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if name in settings:
            raise ConfigError(f"{path}: {keys[name]} and {key} name the same setting; keep one")
        keys[name] = key
        if name == "lr_scheduler_kwargs" and isinstance(value, dict):
            value = json.dumps(value)
        check_type(name, value, where=f"{path}: ")
        settings[name] = value
    return settings


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The validated configuration from `--config FILE` and command-line flags."""
    given = vars(_parser().parse_args(argv))
    values = load_config_file(given.pop("config")) if "config" in given else {}
    values.update(given)
    return TrainConfig(**values).validate()
