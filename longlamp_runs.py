"""Run folders: where each file of a run lies, the settings record every run writes, and the one reader of both.

# Run folder layout
Every name below is written by one package and read by another (cards, uploads, the leaderboard, the runner), so
it is defined here once; a name only its own package uses stays there.

# The run record
Every run (zero-shot, per-user evaluation, fine-tuning and its validation generations, per-user adapters, style
vectors) records what it was made from as one `RunRecord`: typed groups by concept (task, data, model, retrieval,
prompt, generation, training, per-user method) and a `version`. Producers build it and write `record.to_dict()`
under the key "settings" (scores.json, progress.jsonl's first line, training_config.json, training_run.json,
per_user_config.json); consumers (cards, the leaderboard, uploads, the runner, resume checks) read it with
`read_record`/`read_run` and use its fields, never dict keys, so a setting renamed in one place cannot go stale in
another. docs/runs.md describes every field.

Versions: a record names its version; one of a newer version than `RECORD_VERSION` is refused (written by a newer
toolkit). Records written before there was a record (toolkit 0.1.0: flat settings without a version) are read
through one explicit migration, `migrate_unversioned`. Changing the record's fields bumps `RECORD_VERSION` and adds
the step from the previous version there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from longlamp_errors import RunFolderError
from longlamp_io import folder_content_digest, write_json_atomic
from longlamp_tasks import parse_config_name, scorer_task_name

logger = logging.getLogger(__name__)

# A zero-shot run folder (evaluation/zero_shot/), which per-user evaluation and training's validation generations
# also write, and which cards, uploads, the leaderboard and the runner read.
PROMPTS_FILE = "prompts.json"  # what the model saw, per example
PROGRESS_FILE = "progress.jsonl"  # the resume log: settings line, then one line per finished example
PREDICTIONS_FILE = "predictions.json"  # the benchmark's {"task", "golds": [{"id", "output"}]}
GOLDS_FILE = "golds.json"  # the references, in the same format (never published)
SCORES_FILE = "scores.json"  # the scorer's numbers with every setting that produced them
PER_SAMPLE_FILE = "per_sample.jsonl"  # each example's scores (scoring.per_sample)
COMPARISON_FILE = "comparison.json"  # with profile against no profile
NO_PROFILE_DIR = "no_profile"  # the same run without profile, inside the run with profile
CARD_FILE = "README.md"  # a run's (or a Hub repository's) card
FRONT_MATTER = re.compile(r"^---[ \t]*\n(.*?)\n---[ \t]*(?:\n|$)", re.S)  # a card's YAML metadata

# An exported dataset folder (publishing/dataset_export.py): its card's metadata key listing each config exported
# from the Hub (`config_name`, `repo_id`, `revision`, `digest` of the config's folder), read back by `hub_origin`.
ORIGIN_KEY = "longlamp_origin"

# A training run folder (training/).
FINAL_DIR = "final"  # the model (or adapter) at the end of training
BEST_DIR = "best"  # the model of the best evaluation, with --metric_for_best_model
MERGED_DIR = "final-merged"  # with --merge_lora: the base with the adapter merged in
CHECKPOINTS_DIR = "checkpoints"  # resumable checkpoints, checkpoint-<step>/
STATE_FILE = "trainer_state.json"  # in each checkpoint: where the run stood
TRAINING_RECORD_FILE = "training_config.json"  # next to every exported model: the run's record and outcome
TRAINING_RUN_FILE = "training_run.json"  # the record of the run an output folder holds, written when it starts
VALIDATION_DIR = "validation"  # the last evaluation's generations and scores, in the zero-shot layout
TEST_PREDICTIONS_FILE = "predictions_test.json"  # predictions for --test_data after training

# Per-user runs (training/train_per_user.py, training/train_style_vectors.py).
PER_USER_RECORD_FILE = "per_user_config.json"  # the record of the per-user adapters or style vectors a folder holds
USER_RECORD_FILE = "user.json"  # in each user's adapter folder: time, storage, held-out losses (a finished user)
PER_USER_REPORT_FILE = "per_user_report.json"  # time, storage and losses of every user's adapter
STYLE_SELECTION_FILE = "style_selection.json"  # the layer and scale chosen on validation

# The experiment runner (benchmark_runner/stages.py).
STAGE_FILE = ".stage.json"  # in each stage's folder, written last: the stage finished

# What publishing/hub.py names the files of a pushed run (the leaderboard reads them back).
PUBLISHED_SUMMARY_FILE = "results.json"  # a variant's scores.json without machine paths
PUBLISHED_RESULTS_DIR = "longlamp"  # in a model repository: a zero-shot run's files, one folder per config

RECORD_VERSION = 2  # 2: data.origin
UNVERSIONED_TOOLKIT = "0.1.0"  # the toolkit version whose records have no version (see migrate_unversioned)
KINDS = ("zero_shot", "per_user", "training", "per_user_adapters", "style_vectors")
PATH = {"path": True}  # a setting that may name a place on this machine (publishing shows it by its last part)


# --- the record ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSettings:
    """Which LongLaMP task and split: `config` such as "product_review_user"; `split` the one generated for
    (training: "train")."""

    config: str
    split: str

    @property
    def scorer_task_name(self) -> str:
        """The task name of prediction files: "LongLaMP_product_review_user"."""
        return scorer_task_name(*parse_config_name(self.config))


@dataclass(frozen=True)
class HubOrigin:
    """Where a local copy of a config came from: the Hub dataset repository and the revision (a commit) that
    scripts/export_dataset.py read it from."""

    repo_id: str
    revision: str | None = None


@dataclass(frozen=True)
class DataSource:
    """Where the rows came from: the data as given (a config name, or a local path, resolved), the local copy of the
    LongLaMP data, the Hub revision, datasets' fingerprint of the loaded files, the row limit, for ranked data the
    retriever that ranked it, and the local copy's Hub origin (`hub_origin`: an export of the Hub dataset whose
    files are unchanged)."""

    data: str = field(metadata=PATH)
    data_dir: str | None = field(default=None, metadata=PATH)
    revision: str | None = None
    fingerprint: str | None = None
    limit: int | None = None
    ranked_by: str | None = field(default=None, metadata=PATH)
    origin: HubOrigin | None = None


@dataclass(frozen=True)
class ModelSettings:
    """The model: its name (Hub id, folder, or the name a server knows), an adapter's base, a fingerprint of its
    weights, the backend and dtype it ran with, whether it is a fine-tuned model with a training record
    (`trained_settings`), and for a served model the API mode and the tokenizer that counted the prompt budget."""

    name: str = field(metadata=PATH)
    base_model: str | None = field(default=None, metadata=PATH)
    fingerprint: dict | None = None  # generation.fingerprints: {"base", "adapter"} or a served model's
    backend: str | None = None
    dtype: str | None = None
    fine_tuned: bool = False
    api_mode: str | None = None
    prompt_tokenizer: str | None = field(default=None, metadata=PATH)


# The retrievers that rank with a dense encoder (--retriever_model); tests/test_run_record.py checks this against
# retrieval.registry, which this layer does not import.
ENCODER_RETRIEVERS = frozenset({"contriever"})


@dataclass(frozen=True)
class RetrievalSettings:
    """Profile items in the prompt: the retriever's name and its dense encoder (the flags), its full signature as it
    ranked (None where the run did not build it), k, and whether the prompts took a ranked file's order."""

    use_profile: bool = False
    retriever: str | None = None
    retriever_model: str | None = field(default=None, metadata=PATH)
    signature: str | None = field(default=None, metadata=PATH)
    num_retrieved: int | None = None
    is_ranked: bool = False

    def __post_init__(self):
        # A retriever without a dense encoder never used --retriever_model: its flag default is no setting of the
        # run (a BM25 card must not name facebook/contriever, nor a repeated command pass it).
        if self.retriever not in ENCODER_RETRIEVERS:
            object.__setattr__(self, "retriever_model", None)


@dataclass(frozen=True)
class PromptSettings:
    """The prompt budget in tokens the run used (resolved: the flag, or the default rule for its model), whether the
    chat template wrapped the prompt (resolved), and the template's keyword arguments."""

    max_prompt_length: int | None = None
    chat_template: bool | None = None
    chat_template_kwargs: dict | None = None


@dataclass(frozen=True)
class DecodingSettings:
    """How the run decoded (generation.decoding.GenerationSettings; sampling knobs only when sampling) and whether
    reasoning blocks were removed from the predictions."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    num_beams: int = 1
    seed: int | None = None
    strip_reasoning: bool = True


@dataclass(frozen=True)
class TrainingSettings:
    """Fine-tuning (training/train.py) and per-user adapter training (training/train_per_user.py): every setting of
    the run that is not task, data, model, retrieval, prompt or decoding; None where the run kind has no such
    setting. Named as the flags are."""

    max_target_length: int | None = None
    long_targets: str | None = None
    use_lora: bool | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    lora_target_modules: str | None = None
    load_in_4bit: bool | None = None
    merge_lora: bool | None = None
    attn_implementation: str | None = None
    seed: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    lr_scheduler: str | None = None
    lr_scheduler_kwargs: str | None = None
    warmup_steps: int | None = None
    warmup_ratio: float | None = None
    num_train_epochs: int | None = None
    max_steps: int | None = None
    per_device_train_batch_size: int | None = None
    per_device_eval_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    max_grad_norm: float | None = None
    mixed_precision: str | None = None
    gradient_checkpointing: bool | None = None
    packing: bool | None = None
    group_by_length: bool | None = None
    eval_steps: int | None = None
    eval_generation_examples: int | None = None
    metric_for_best_model: str | None = None
    save_steps: int | None = None
    save_total_limit: int | None = None
    validation_data: str | None = field(default=None, metadata=PATH)
    test_data: str | None = field(default=None, metadata=PATH)
    max_eval_examples: int | None = None
    task_adapter: str | None = field(default=None, metadata=PATH)  # per-user adapters: the task adapter they start from
    max_items_per_user: int | None = None
    cpu_threads: int | None = None


@dataclass(frozen=True)
class UserAdapters:
    """Per-user LoRA adapters (OPPU) served at evaluation: their folder and its content digest."""

    folder: str = field(metadata=PATH)
    fingerprint: str


@dataclass(frozen=True)
class StyleVectors:
    """Per-user style vectors added at evaluation: their folder, its digest, the steered layer and scale."""

    folder: str = field(metadata=PATH)
    fingerprint: str
    layer: int
    scale: float


@dataclass(frozen=True)
class ProfileSummary:
    """A summary of the user's profile (or of the retrieved items) in the prompt, and who wrote it."""

    of: str
    max_new_tokens: int
    model: str | None = field(default=None, metadata=PATH)
    backend: str | None = None

    @classmethod
    def from_flags(cls, values: Mapping[str, object]) -> ProfileSummary | None:
        """The record of the summary flags (personalization.cli.ProfileSummaryArguments: SUMMARY_FLAGS), None
        without --use_summary; a backend only with --summary_model (the run's own model writes them otherwise)."""
        if not values.get("use_summary"):
            return None
        model = values.get("summary_model")
        return cls(values["summary_of"], values["summary_max_new_tokens"], model,
                   values["summary_backend"] if model else None)


@dataclass(frozen=True)
class StyleVectorTraining:
    """How training/train_style_vectors.py computed the vectors and chose layer and scale."""

    layers: list[int]
    scales: list[float]
    max_items_per_user: int
    selection_split: str


@dataclass(frozen=True)
class PerUserSettings:
    """The per-user methods a run used (evaluation), or the style vectors it computed (style-vector training)."""

    adapters: UserAdapters | None = None
    style_vectors: StyleVectors | None = None
    profile_summary: ProfileSummary | None = None
    style_vector_training: StyleVectorTraining | None = None

    def methods(self) -> list[str]:
        """The methods used, in words."""
        named = []
        if self.adapters is not None:
            named.append("per-user adapters (OPPU)")
        if self.style_vectors is not None:
            named.append(f"style vectors (layer {self.style_vectors.layer}, scale {self.style_vectors.scale:g})")
        if self.profile_summary is not None:
            named.append(f"a summary of the {'profile' if self.profile_summary.of == 'profile' else 'retrieved items'}")
        return named


@dataclass(frozen=True)
class RunRecord:
    """What one run was made from. `kind`: zero_shot (evaluation/evaluate_llm.py), per_user
    (evaluation/evaluate_per_user.py), training (training/train.py, and its validation generations),
    per_user_adapters (training/train_per_user.py), style_vectors (training/train_style_vectors.py)."""

    kind: str
    task: TaskSettings
    data: DataSource
    model: ModelSettings
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)
    generation: DecodingSettings | None = None
    training: TrainingSettings | None = None
    per_user: PerUserSettings | None = None
    version: int = RECORD_VERSION

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"run record kind {self.kind!r} is not one of: {', '.join(KINDS)}")

    def to_dict(self) -> dict:
        """The record as written: the version first, every group (None where the run has none)."""
        data = dataclasses.asdict(self)
        return {"version": data.pop("version"), **data}

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "run record") -> RunRecord:
        """A record read back: checked field by field (type, unknown or missing names), migrated when written
        before there were versions; RunFolderError naming `where` and the field otherwise."""
        if not isinstance(data, Mapping):
            raise RunFolderError(f"{where}: the settings are {type(data).__name__}, not an object")
        if "version" not in data:
            return migrate_unversioned(data, where)
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RunFolderError(f"{where}: version {version!r} is not a run record version")
        if version > RECORD_VERSION:
            raise RunFolderError(f"{where}: a run record of version {version}, written by a newer LongLaMP toolkit "
                                 f"(this one reads versions up to {RECORD_VERSION}); update the toolkit")
        # 1 -> 2: version 1 had no data.origin; its runs read as runs on data of no known Hub origin
        return _load(cls, {**data, "version": RECORD_VERSION}, where)

    def map_paths(self, change: Callable[[str], str]) -> RunRecord:
        """The record with `change` applied to every setting that may name a place on this machine (publishing:
        local paths by their last part)."""
        return _map_paths(self, change)

    def flat(self) -> dict[str, object]:
        """Every setting by its dotted name ("retrieval.num_retrieved", "model.fingerprint.base"); a group the run
        has none of is one None."""
        return _flatten(self.to_dict())


def differences(old: RunRecord, new: RunRecord, ignore: Sequence[str] = ()) -> dict[str, tuple]:
    """{dotted name: (old value, new value)} of the settings that differ, apart from the names in `ignore` (a
    group's name ignores the whole group)."""
    before, after = old.flat(), new.flat()

    def ignored(name: str) -> bool:
        return any(name == prefix or name.startswith(prefix + ".") for prefix in ignore)

    names = [name for name in dict.fromkeys([*before, *after]) if not ignored(name)]
    return {name: (before.get(name), after.get(name)) for name in names if before.get(name) != after.get(name)}


def describe_differences(changes: Mapping[str, tuple]) -> str:
    return "; ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changes.items())


def _flatten(data: Mapping, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _load(cls, data, where: str):
    """An instance of the dataclass `cls` from its JSON object, every field checked against its annotation."""
    if not isinstance(data, Mapping):
        raise RunFolderError(f"{where}: expected an object, got {data!r:.80}")
    names = {spec.name for spec in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RunFolderError(f"{where}: unknown setting(s) {', '.join(unknown)} (a record of another toolkit "
                             "version, or edited by hand)")
    hints, values = typing.get_type_hints(cls), {}
    for spec in fields(cls):
        if spec.name in data:
            values[spec.name] = _value(hints[spec.name], data[spec.name], f"{where}.{spec.name}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise RunFolderError(f"{where}: no {spec.name!r}")
    try:
        return cls(**values)
    except ValueError as error:
        raise RunFolderError(f"{where}: {error}") from None


def _value(hint, value, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if is_dataclass(hint):
        return _load(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise RunFolderError(f"{where}: expected a list, got {value!r:.80}")
        return [_value(args[0], item, f"{where}[{index}]") for index, item in enumerate(value)]
    expected = {bool: lambda v: isinstance(v, bool),
                int: lambda v: isinstance(v, int) and not isinstance(v, bool),
                float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                str: lambda v: isinstance(v, str), dict: lambda v: isinstance(v, dict)}[origin or hint]
    if not expected(value):
        raise RunFolderError(f"{where}: expected {getattr(origin or hint, '__name__', hint)}, got {value!r:.80}")
    return value


def _map_paths(value, change: Callable[[str], str]):
    changed = {}
    for spec in fields(value):
        item = getattr(value, spec.name)
        if is_dataclass(item):
            changed[spec.name] = _map_paths(item, change)
        elif spec.metadata.get("path") and isinstance(item, str):
            changed[spec.name] = change(item)
    return dataclasses.replace(value, **changed)


# --- the training flags as record fields (training/record.py builds, cards write them back as flags) ---------------

# Flags that say where a run writes, how it logs and whether it is published: not settings of the run, never
# recorded (the token is a secret besides). `from_training_record` names which settings came from a fine-tuned
# model's record (longlamp_cli); their values are recorded under their own names.
RUN_CONTROL = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "push_to_hub", "hub_model_id", "hub_private",
    "hub_revision", "hub_strategy", "hub_token", "create_pr", "cache_dir", "num_workers", "logging_steps", "report_to",
    "project_name", "log_level", "ddp_timeout", "max_users", "from_training_record",
    "summary_cache_dir", "summary_api_base",  # where summaries are cached, where their model is served
    "summary_request_timeout", "summary_max_retries",  # how long a summary server is waited for
})
# The profile summary's flags (per-user adapters trained with it in their prompts): recorded as
# per_user.profile_summary (`ProfileSummary.from_flags`).
SUMMARY_FLAGS = frozenset({"use_summary", "summary_of", "summary_max_new_tokens", "summary_model", "summary_backend"})
_SHARED_FLAGS = {
    "task": "task.config", "data_dir": "data.data_dir", "revision": "data.revision", "model_name": "model.name",
    "dtype": "model.dtype", "use_profile": "retrieval.use_profile", "retriever": "retrieval.retriever",
    "retriever_model": "retrieval.retriever_model", "num_retrieved": "retrieval.num_retrieved",
    "is_ranked": "retrieval.is_ranked", "max_prompt_length": "prompt.max_prompt_length",
    "use_chat_template": "prompt.chat_template",
}
# train.py's flags (then every TrainingSettings field under its own name, "training.<name>").
TRAINING_FLAGS = {**_SHARED_FLAGS, "train_data": "data.data", "max_train_examples": "data.limit",
                  "max_new_tokens": "generation.max_new_tokens", "num_beams": "generation.num_beams"}
# train_per_user.py's flags.
USER_ADAPTER_FLAGS = {**_SHARED_FLAGS, "data": "data.data", "split": "task.split"}
# Names of the records of toolkit 0.1.0 that were renamed since (the flags keep them as aliases).
_RENAMED = {"model_addr": "model_name", "model_dtype": "dtype", "max_prompt_tokens": "max_prompt_length",
            "generation_max_new_tokens": "max_new_tokens", "preprocessing_num_workers": "num_workers"}
_TRAINING_FIELDS = {spec.name for spec in fields(TrainingSettings)}


def record_from_flags(kind: str, values: Mapping[str, object], where: str = "settings") -> RunRecord:
    """The record of a training run (kind "training") or a per-user adapter run ("per_user_adapters", its profile
    summary under per_user) from its flags' values (TrainConfig's, or train_per_user.py's); a name that is neither a
    record field nor run control is an error (a flag added without deciding where it is recorded)."""
    table = TRAINING_FLAGS if kind == "training" else USER_ADAPTER_FLAGS
    groups: dict[str, dict] = {"task": {"split": "train"}, "data": {}, "model": {}, "retrieval": {}, "prompt": {},
                               "generation": {}, "training": {}}
    summary = ProfileSummary.from_flags(values) if kind == "per_user_adapters" else None
    for name, value in values.items():
        name = _RENAMED.get(name, name)
        if name in RUN_CONTROL or (kind == "per_user_adapters" and name in SUMMARY_FLAGS):
            continue
        path = table.get(name) or (f"training.{name}" if name in _TRAINING_FIELDS else None)
        if path is None:
            raise RunFolderError(f"{where}: {name!r} is not a setting the run record knows")
        group, key = path.split(".")
        groups[group][key] = value
    groups["task"]["config"] = config_of(groups["task"]["config"])
    if groups["data"].get("data") is not None:
        origin = hub_origin(groups["data"].get("data_dir"), groups["data"]["data"])
        groups["data"]["origin"] = dataclasses.asdict(origin) if origin else None
    if kind == "training":  # validation generations decode greedily, up to the target length by default
        decoding = groups["generation"]
        decoding["max_new_tokens"] = decoding.get("max_new_tokens") or groups["training"].get("max_target_length")
        groups["generation"] = {**decoding, "strip_reasoning": False}
    else:
        groups.pop("generation")
    retrieval = groups["retrieval"]
    if not retrieval.get("use_profile"):  # retrieval flags without --use_profile change nothing: not recorded
        retrieval = {"use_profile": False, "is_ranked": False}
    record = {"version": RECORD_VERSION, "kind": kind, **groups, "retrieval": retrieval,
              "per_user": {"profile_summary": dataclasses.asdict(summary)} if summary else None}
    return RunRecord.from_dict(record, where)


def flags_of(record: RunRecord) -> dict[str, object]:
    """train.py's flags that repeat a training record: {flag name: value}, None left out (the inverse of
    `record_from_flags`)."""
    flat = record.flat()
    inverse = {path: name for name, path in TRAINING_FLAGS.items()}
    flags = {}
    for path, value in flat.items():
        group = path.split(".")[0]
        if value is None or group not in ("task", "data", "model", "retrieval", "prompt", "generation", "training"):
            continue
        name = inverse.get(path) or (path.removeprefix("training.") if group == "training" else None)
        if name is not None:
            flags[name] = value
    return flags


def data_source(data: str, data_dir: str | None = None, revision: str | None = None, rows=None,
                limit: int | None = None, ranked_by: str | None = None) -> DataSource:
    """Where a run's rows came from: the data as given (a local path resolved), the local copy of the LongLaMP data
    (resolved), the Hub revision asked for, datasets' fingerprint of the loaded rows (`rows`), the row limit, the
    local copy's Hub origin."""
    path = Path(data).expanduser()
    return DataSource(str(path.resolve()) if path.exists() else data,
                      str(Path(data_dir).expanduser().resolve()) if data_dir else None, revision,
                      getattr(rows, "_fingerprint", None), limit, ranked_by, hub_origin(data_dir, data))


def hub_origin(data_dir: str | Path | None, data: str) -> HubOrigin | None:
    """The Hub source that a local copy names for the config `data`, when its files are the ones exported: the
    folder's card (README.md, written by publishing/dataset_export.py) lists under `ORIGIN_KEY` each config it
    exported from the Hub with the repository, the revision read and a digest of the config's folder. A ranked file
    names the origin of the rows it ranked (`ranked_file_origin`). Any other data (no `data_dir`, another file or a
    folder as `data`, the bundled sample, a copy exported from local data, one whose files changed since) has
    none."""
    import yaml

    if Path(data).expanduser().is_file():
        return ranked_file_origin(Path(data).expanduser())
    if not data_dir or Path(data).expanduser().exists():
        return None
    try:
        config = config_of(data)
    except ValueError:  # neither a config nor a file: the loader refuses it
        return None
    card = Path(data_dir).expanduser() / CARD_FILE
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    header = FRONT_MATTER.match(text)
    try:
        metadata = yaml.safe_load(header.group(1)) if header else None
    except yaml.YAMLError:
        return None  # not a card that an export wrote
    entries = metadata.get(ORIGIN_KEY) if isinstance(metadata, dict) else None
    entry = next((e for e in entries or [] if isinstance(e, dict) and e.get("config_name") == config), None)
    if entry is None or not isinstance(entry.get("repo_id"), str):
        return None
    if folder_content_digest(card.parent / config) != entry.get("digest"):
        logger.warning("%s: the files of %s changed since they were exported from %s: their rows are local data, "
                       "not the Hub's", card.parent, config, entry["repo_id"])
        return None
    revision = entry.get("revision")
    return HubOrigin(entry["repo_id"], revision if isinstance(revision, str) else None)


def origin_metadata(origin: HubOrigin | None) -> dict[bytes, bytes]:
    """The Arrow schema metadata that carries the Hub origin of the rows a ranked file holds (none: {})."""
    return {ORIGIN_KEY.encode(): json.dumps(dataclasses.asdict(origin)).encode()} if origin else {}


def ranked_file_origin(path: Path) -> HubOrigin | None:
    """The Hub origin that retrieval/rank_profiles.py wrote into a ranked Parquet or Arrow file's schema when the rows
    it ranked came from the Hub (directly, or through an exported copy); None for any other file (JSON holds no
    schema: a ranked JSON file is local data)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            schema = pq.read_schema(path)
        elif path.suffix == ".arrow":
            with pa.OSFile(str(path)) as source:
                schema = pa.ipc.open_stream(source).schema
        else:
            return None
        entry = json.loads((schema.metadata or {}).get(ORIGIN_KEY.encode(), b"null"))
    except (OSError, ValueError, pa.ArrowException):
        return None  # not a file the loader reads either: it says so
    if not isinstance(entry, dict) or not isinstance(entry.get("repo_id"), str):
        return None
    revision = entry.get("revision")
    return HubOrigin(entry["repo_id"], revision if isinstance(revision, str) else None)


def config_of(name: str) -> str:
    """The config name of a config or bare task name ("product_review" -> "product_review_user")."""
    task, setting = parse_config_name(name)
    return f"{task.name}_{setting}"


# --- records written before versions -----------------------------------------------------------------------------


def migrate_unversioned(flat: Mapping, where: str = "run record") -> RunRecord:
    """A record of toolkit 0.1.0 (flat settings, no version) as a record of version 1. Settings that version did
    not record are None (the prompt budget of a training run given no --max_prompt_length, a served model's
    fine-tuning), so a resume compares them as changed."""
    try:
        return _migrate(flat, where)
    except RunFolderError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise RunFolderError(f"{where}: settings without a version that are not a record of toolkit "
                             f"{UNVERSIONED_TOOLKIT} ({error})") from None


def _migrate(flat: Mapping, where: str) -> RunRecord:
    flat = {_RENAMED.get(key, key): value for key, value in flat.items()}
    if "train_data" in flat:  # training/train.py's TrainConfig, with its outcome beside it in training_config.json
        values = {key: value for key, value in flat.items() if key not in TrainingOutcome.field_names()}
        return record_from_flags("training", values, where)
    if "lora_r" in flat and "data" in flat:  # training/train_per_user.py's arguments
        return record_from_flags("per_user_adapters", flat, where)
    if "model" not in flat or "task" not in flat:
        raise RunFolderError(f"{where}: settings without a version that no toolkit version wrote (no 'model' and "
                             "'task'); not a run record")
    source = flat.get("data") if isinstance(flat.get("data"), dict) else {"data": flat.get("data") or "?"}
    signature = flat.get("retriever") if flat.get("use_profile") else None
    methods = flat.get("personalization") or {}
    per_user = None
    if methods:
        per_user = {"adapters": methods.get("per_user_adapters"), "style_vectors": methods.get("style_vectors"),
                    "profile_summary": methods.get("profile_summary")}
    sampled = bool(flat.get("do_sample"))
    generation = None
    if "max_new_tokens" in flat:
        generation = {"max_new_tokens": flat["max_new_tokens"], "do_sample": sampled,
                      "temperature": flat.get("temperature") if sampled else None,
                      "top_p": flat.get("top_p") if sampled else None, "num_beams": flat.get("num_beams", 1),
                      "seed": flat.get("seed") if sampled else None,
                      "strip_reasoning": flat.get("strip_reasoning", True)}
    record = {
        "version": RECORD_VERSION, "kind": "per_user" if methods else "zero_shot",
        "task": {"config": config_of(f"{flat['task']}_{flat.get('setting', 'user')}"),
                 "split": flat.get("split", "validation")},
        "data": {"data": source.get("data") or "?", "data_dir": source.get("data_dir"),
                 "revision": source.get("revision") or flat.get("revision"), "fingerprint": source.get("fingerprint"),
                 "ranked_by": flat.get("ranked_by")},
        "model": {"name": flat["model"], "base_model": flat.get("base_model"),
                  "fingerprint": flat.get("model_fingerprint"), "backend": flat.get("backend"),
                  "dtype": flat.get("dtype"), "api_mode": flat.get("api_mode"),
                  "prompt_tokenizer": flat.get("prompt_tokenizer")},
        "retrieval": ({"use_profile": True, "retriever": signature.split("(")[0],
                       "retriever_model": _encoder(signature), "signature": signature,
                       "num_retrieved": flat.get("num_retrieved"), "is_ranked": bool(flat.get("is_ranked"))}
                      if signature else {"use_profile": False}),
        "prompt": {"max_prompt_length": flat.get("max_prompt_length"), "chat_template": flat.get("chat_template"),
                   "chat_template_kwargs": flat.get("chat_template_kwargs")},
        "generation": generation, "per_user": per_user,
    }
    return RunRecord.from_dict(record, where)


def _encoder(signature: str) -> str | None:
    """The dense encoder in a retriever signature "contriever(model_name=X, dtype=float32)", else None."""
    inside = signature.partition("(")[2].rstrip(")")
    options = dict(part.strip().split("=", 1) for part in inside.split(",") if "=" in part)
    return options.get("model_name")


# --- the scorer's numbers and training's outcome ----------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """The scorer's numbers (scoring.metrics.score's report: scores.json's "scores", eval_task.py's output): the
    exact means, their bootstrap intervals, and what must agree for two runs' numbers to be comparable."""

    num_samples: int
    metrics: dict[str, float]
    intervals: dict[str, dict[str, float]]
    confidence: float | None
    scorer_settings: dict  # the scorer's own settings (METEOR's parameters, the ROUGE implementation, ...)
    versions: dict  # the libraries that produced the numbers

    @classmethod
    def from_dict(cls, data, where: str) -> Scores:
        if not isinstance(data, Mapping) or not isinstance(data.get("metrics"), dict):
            raise RunFolderError(f"{where}: no scores (a 'metrics' object) in it")
        count = data.get("num_samples")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise RunFolderError(f"{where}: num_samples {count!r} is not a positive count")
        for name, value in data["metrics"].items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise RunFolderError(f"{where}: metrics.{name} is {value!r}, not a finite number")
        bootstrap = data.get("bootstrap") or {}
        return cls(count, dict(data["metrics"]), dict(bootstrap.get("intervals") or {}), bootstrap.get("confidence"),
                   dict(data.get("settings") or {}), dict(data.get("versions") or {}))


def read_scores(path: str | Path) -> Scores:
    """The scorer's output file (evaluation/eval_task.py's --output_file), checked."""
    return Scores.from_dict(_read_json(Path(path)), str(path))


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training run reached, saved with each model beside its record: the optimizer steps, the best value of
    --metric_for_best_model and its step, a best model's metrics, the adapter a merged model came from."""

    global_step: int | None = None
    best_metric: float | None = None
    best_step: int | None = None
    metrics: dict | None = None
    merged_from_adapter: str | None = None

    @staticmethod
    def field_names() -> set[str]:
        return {spec.name for spec in fields(TrainingOutcome)}


def write_model_record(folder: str | Path, record: RunRecord, outcome: TrainingOutcome) -> None:
    """training_config.json beside a saved model: {"settings": record, "outcome": outcome}."""
    write_json_atomic(Path(folder) / TRAINING_RECORD_FILE,
                      {"settings": record.to_dict(), "outcome": dataclasses.asdict(outcome)})


def read_model_record(path: str | Path) -> tuple[RunRecord, TrainingOutcome]:
    """A training_config.json (beside a model, or published at a repository's top): the record and the outcome."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: not a training record (an object)")
    if "settings" not in data:  # toolkit 0.1.0: the flat settings with the outcome among them
        outcome = {key: data[key] for key in TrainingOutcome.field_names() if key in data}
        return migrate_unversioned(data, str(path)), _load(TrainingOutcome, outcome, f"{path}: outcome")
    return (RunRecord.from_dict(data["settings"], f"{path}: settings"),
            _load(TrainingOutcome, data.get("outcome") or {}, f"{path}: outcome"))



def trained_settings(model_path: str | Path) -> dict | None:
    """The retrieval, k, prompt budget and chat-template settings a fine-tuned model (or adapter) folder was trained
    with, as evaluate_llm.py's flag values, from the training record saved beside it; None for a model without one
    (a Hub id, a model not trained by this toolkit). Retrieval flags only when it was trained with profile, and the
    encoder only when its retriever had one (see RetrievalSettings)."""
    path = Path(model_path).expanduser() / TRAINING_RECORD_FILE
    if not path.is_file():
        return None
    record, _ = read_model_record(path)
    settings = {"use_profile": record.retrieval.use_profile, "max_prompt_length": record.prompt.max_prompt_length,
                "use_chat_template": record.prompt.chat_template}
    if record.retrieval.use_profile:
        settings.update(retriever=record.retrieval.retriever, num_retrieved=record.retrieval.num_retrieved)
        if record.retrieval.retriever_model:
            settings["retriever_model"] = record.retrieval.retriever_model
    return settings


# --- reading a record file --------------------------------------------------------------------------------------


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path}: cannot read it as JSON ({error})") from None


def write_record(path: str | Path, record: RunRecord) -> None:
    """A file holding only a run's record (training_run.json, per_user_config.json): {"settings": record}."""
    write_json_atomic(path, {"settings": record.to_dict()})


def read_record(path: str | Path) -> RunRecord:
    """The record of a file that holds one under "settings" (scores.json, results.json, training_run.json,
    per_user_config.json, training_config.json) or is one flat (toolkit 0.1.0)."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict) and "settings" in data:
        return RunRecord.from_dict(data["settings"], f"{path}: settings")
    return RunRecord.from_dict(data, str(path))


def check_same_run(path: str | Path, record: RunRecord, resumable: Sequence[str], what: str) -> None:
    """Refuse a folder whose record (`path`) holds another run than `record` (the names in `resumable` aside), with
    the differences listed; `what` says what the folder holds ("per-user adapters")."""
    path = Path(path)
    if not path.is_file():
        return
    changes = differences(read_record(path), record, resumable)
    if changes:
        raise RunFolderError(f"{path.parent} holds {what} made with other settings ({describe_differences(changes)});"
                             " use another --output_dir, or the same settings to continue")


# --- the experiment runner's stage record ------------------------------------------------------------------------


@dataclass(frozen=True)
class StageRecord:
    """A finished stage of an experiment (benchmark_runner/stages.py): its name, the command it ran (the
    interpreter as `python`, paths in the output folder as `{output_dir}/...`, so a moved folder still matches), the
    outputs that prove it finished (relative to its folder), how long it took, what it was made from (`inputs`: a
    digest of each data or model path it read and of each earlier stage's outputs) and a digest of its own outputs
    (what the stages after it record as their input)."""

    stage: str
    command: list[str]
    outputs: list[str]
    seconds: float
    inputs: dict[str, str] = field(default_factory=dict)
    outputs_digest: str | None = None
    version: int = RECORD_VERSION


def write_stage_record(folder: str | Path, record: StageRecord) -> None:
    write_json_atomic(Path(folder) / STAGE_FILE, dataclasses.asdict(record))


def read_stage_record(folder: str | Path) -> StageRecord | None:
    """The stage record of a folder, None when the stage has not finished (a record of 0.1.0 has no version)."""
    path = Path(folder) / STAGE_FILE
    if not path.is_file():
        return None
    data = _read_json(path)
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: not a stage record (an object)")
    if not isinstance(data.get("version", 1), int) or data.get("version", 1) > RECORD_VERSION:
        raise RunFolderError(f"{path}: a stage record of version {data['version']!r}, written by a newer LongLaMP "
                             f"toolkit (this one reads versions up to {RECORD_VERSION})")
    return _load(StageRecord, {**data, "version": RECORD_VERSION}, str(path))


# --- the one reader of a run folder ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One scored generation run: a zero-shot or per-user run folder (or its no_profile/), training's validation
    generations, or their published copies (results.json beside per_sample.jsonl, no golds)."""

    folder: Path
    summary_file: Path
    task_name: str  # the scorer's task name the predictions carry
    record: RunRecord
    scores: Scores | None
    not_scored: str | None = None
    examples: int | None = None
    step: int | None = None  # training's validation generations: the optimizer step
    endpoint: str | None = None  # a served model's API, without credentials

    @property
    def metrics(self) -> dict[str, float]:
        return self.scores.metrics if self.scores else {}

    @property
    def per_sample_file(self) -> Path:
        return self.folder / PER_SAMPLE_FILE

    @property
    def predictions_file(self) -> Path:
        return self.folder / PREDICTIONS_FILE

    @property
    def golds_file(self) -> Path:
        return self.folder / GOLDS_FILE

    @property
    def ids_file(self) -> Path | None:
        """The file naming the ids the run was scored on: golds.json, else (a published copy) predictions.json."""
        return next((path for path in (self.golds_file, self.predictions_file) if path.is_file()), None)


def task_file_ids(path: Path) -> list[str]:
    """The ids of a file in the benchmark's format ({"task", "golds": [{"id", "output"}]})."""
    data = _read_json(path)
    entries = data.get("golds") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise RunFolderError(f"{path}: no 'golds' list of objects (not the benchmark's format)")
    return [entry.get("id") for entry in entries]


def per_sample_problem(path: Path, ids: Sequence[str], scores: Scores | None, scores_file: Path | None,
                       ids_file: Path | None) -> str | None:
    """Why a per-sample file does not belong to the run beside it, or None: a row count other than the number of
    examples its scores are of (`scores`, read from `scores_file`), or ids other than the run's (those of
    `ids_file`: golds.json or predictions.json). Duplicated ids and non-finite values are the file's own faults
    (scoring.per_sample.read refuses them)."""
    if scores is not None and len(ids) != scores.num_samples:
        return (f"{path}: {len(ids)} rows, but {scores_file} scored {scores.num_samples} examples (a truncated "
                "or foreign per-sample file)")
    if ids_file is not None:
        known = set(task_file_ids(ids_file))
        stranger = next((example_id for example_id in ids if example_id not in known), None)
        if stranger is not None:
            return f"{path}: id {stranger!r} is not among the ids of {ids_file}"
        if len(set(ids)) != len(known):
            return f"{path}: {len(ids)} rows for the {len(known)} ids of {ids_file}"
    return None


def summary_file(folder: Path) -> Path | None:
    """A zero-shot or per-user summary in `folder`: scores.json, or results.json (its published copy)."""
    return next((folder / name for name in (SCORES_FILE, PUBLISHED_SUMMARY_FILE) if (folder / name).is_file()), None)


def read_variant(folder: Path, path: Path | None = None) -> Variant:
    """The summary of one generation run (scores.json or results.json) with its record and scores."""
    path = path or summary_file(folder)
    if path is None:
        raise RunFolderError(f"{folder}: no {SCORES_FILE} (nor its published copy {PUBLISHED_SUMMARY_FILE})")
    summary = _read_json(path)
    if not isinstance(summary, dict) or "settings" not in summary:
        raise RunFolderError(f"{path}: no 'settings' (not the summary of a run of this toolkit)")
    record = RunRecord.from_dict(summary["settings"], f"{path}: settings")
    scores = Scores.from_dict(summary["scores"], f"{path}: scores") if summary.get("scores") else None
    task_name = summary.get("task") if isinstance(summary.get("task"), str) else record.task.scorer_task_name
    return Variant(folder, path, task_name, record, scores,
                   summary.get("not_scored") or (None if scores else "the run was not scored"),
                   summary.get("examples"), summary.get("step"), summary.get("endpoint"))


@dataclass(frozen=True)
class RunFolder:
    """What a run folder (or a published copy of one) holds, read once for cards, uploads and the leaderboard.

    kind: "zero_shot" or "per_user" (a generation run: `variants` are it and its no_profile/ baseline) or "training"
    (the record of its model; `variants` its validation generations or its evaluation in the folder)."""

    folder: Path
    kind: str
    record: RunRecord
    variants: tuple[Variant, ...]
    comparison: dict | None = None
    outcome: TrainingOutcome | None = None
    model_dir: Path | None = None  # training: the folder whose files are the model (final/), once finished
    test_predictions: Path | None = None  # training: predictions for --test_data

    @property
    def config(self) -> str:
        return self.record.task.config

    @property
    def is_adapter(self) -> bool:
        if self.kind == "training":
            return ((self.model_dir or self.folder) / "adapter_config.json").is_file()
        return bool(self.record.model.base_model)


def training_record_file(folder: Path) -> Path | None:
    """The record of a training run: beside its final or best model, or at the top once published."""
    candidates = (folder / FINAL_DIR / TRAINING_RECORD_FILE, folder / BEST_DIR / TRAINING_RECORD_FILE,
                  folder / TRAINING_RECORD_FILE)
    return next((path for path in candidates if path.is_file()), None)


def read_run(folder: str | Path) -> RunFolder:
    """The run a folder holds: a zero-shot or per-user run (scores.json, or results.json once published) or a
    training run (its model's training_config.json); RunFolderError saying what is missing otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: no such run folder")
    summary = summary_file(folder)
    record_file = training_record_file(folder)
    if summary is not None and (record_file is None or record_file.parent != folder / FINAL_DIR):
        main = read_variant(folder, summary)
        variants = [main]
        if summary_file(folder / NO_PROFILE_DIR) is not None:
            variants.append(read_variant(folder / NO_PROFILE_DIR))
        comparison = _read_json(folder / COMPARISON_FILE) if (folder / COMPARISON_FILE).is_file() else None
        return RunFolder(folder, main.record.kind, main.record, tuple(variants), comparison)
    if record_file is None:
        unfinished = (folder / CHECKPOINTS_DIR).is_dir()
        raise RunFolderError(
            f"{folder}: the training run has no {FINAL_DIR}/{TRAINING_RECORD_FILE} yet (not finished)" if unfinished
            else f"{folder} is not a run folder: expected a zero-shot run ({SCORES_FILE} or {PUBLISHED_SUMMARY_FILE}) "
                 f"or a training run ({FINAL_DIR}/{TRAINING_RECORD_FILE}, or {TRAINING_RECORD_FILE} once published)")
    record, outcome = read_model_record(record_file)
    # The model evaluated after training in the zero-shot format, else its last validation generations.
    evaluated = next((summary_file(d) for d in (folder, folder / VALIDATION_DIR) if summary_file(d)), None)
    variants = (read_variant(evaluated.parent, evaluated),) if evaluated else ()
    model_dir = record_file.parent if record_file.parent == folder / FINAL_DIR else None
    return RunFolder(folder, "training", record, variants, outcome=outcome, model_dir=model_dir,
                     test_predictions=_file(folder / TEST_PREDICTIONS_FILE))


def _file(path: Path) -> Path | None:
    return path if path.is_file() else None


def published_runs(folder: Path) -> list[Path]:
    """The folders of zero-shot results published into a model repository (longlamp/<config>/)."""
    return sorted(sub for sub in (folder / PUBLISHED_RESULTS_DIR).glob("*") if summary_file(sub))
