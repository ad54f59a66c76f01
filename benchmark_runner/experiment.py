"""An experiment file and the grid of runs it describes.

    name: demo
    output_dir: outputs/demo
    data_dir: data/sample            # omit to read the Hub (LongLaMP/LongLaMP)
    configs: [product_review_user]
    eval_split: validation
    retrievers:                      # name -> rank_profiles.py retriever (+ dense encoder)
      bm25: {retriever: bm25}
      minilm: {retriever: contriever, retriever_model: local:all-minilm-l6-v2}
      bm25-live: {retriever: bm25, ranked: false}  # retrieved when the prompts are built: no ranking stage
    k: [1, 2]
    models:                          # name -> model and how it is used
      smollm2: {model_name: local:smollm2-135m-instruct, mode: zero_shot}
      smollm2-lora: {model_name: local:smollm2-135m-instruct, mode: fine_tuned, train: {use_lora: true}}
    personalization:                 # name -> a per-user method, run like a retriever (see docs/personalization.md)
      oppu: {method: per_user_adapters, train: {num_train_epochs: 2}}   # train_per_user.py flags
      oppu-base: {method: per_user_adapters, task_lora: false}   # no task LoRA first (OPPU trains one: see below)
      style: {method: style_vectors, train: {scales: "0,1,2"}}           # train_style_vectors.py flags
      summary: {method: profile_summary, evaluate: {summary_max_new_tokens: 64}}
    evaluate: {max_new_tokens: 128}  # evaluate_llm.py flags for every generation
    scoring: {bootstrap: 1000, seed: 0}
    env: {OMP_NUM_THREADS: 1}        # environment of the stage commands (a variable you set yourself wins)
    resources:                       # --executor slurm: each stage kind's job (defaults: RESOURCE_DEFAULTS)
      default: {partition: gpu, account: my-lab}
      train: {gpus: 4, time: 2880, sbatch: {constraint: a100}, array_parallelism: 4}

Each (config, model) gets one run without profile, one per (retriever, k) with profile, and one per personalization
method; a fine-tuned model is trained once per retrieval run (with the same retrieval it is evaluated with), as the
paper does, and a method builds on the model's run without profile (the base model, or its task fine-tuning).
Per-user adapters on a zero-shot model start, as OPPU's do, from a task LoRA trained first on the config's train
split (`task_lora`: OPPU's settings, or a mapping of train.py flags over them; false: none, the adapters train on
the base model alone, a difference from OPPU). A method's run has the same examples, split, data and scorer as the
others, so its scores are paired with the no-profile run's like a retriever's, and evaluation/leaderboard.py ranks
its run folder beside them.
Everything is checked before the first stage runs: types, ranges, unknown and duplicated keys (in the file too),
duplicated list entries, names that are folder names (retrievers, models, methods), model paths, and (by
benchmark_runner.checks) every stage's command line against its command's own parser.
`local:` names are the models `scripts/prepare_models.py` put on disk at set-up. Relative paths (output_dir,
data_dir, cache_dir, local model folders) are read from the current directory, as on the command line.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from longlamp_errors import ConfigError
from longlamp_tasks import SPLITS, config_names, parse_config_name
from retrieval.cli import PromptSettingsArguments
from scoring import HEADLINE_METRICS

REPO = Path(__file__).resolve().parents[1]
MODES = ("zero_shot", "fine_tuned")
# Per-user methods: name in the experiment file -> what it is (training/train_per_user.py and
# evaluation/evaluate_per_user.py --adapters_dir; training/train_style_vectors.py and --style_vectors_dir;
# evaluate_per_user.py --use_summary).
METHODS = ("per_user_adapters", "style_vectors", "profile_summary")
TRAINED_METHODS = ("per_user_adapters", "style_vectors")
TOP_KEYS = {"name", "output_dir", "data_dir", "cache_dir", "configs", "eval_split", "retrievers", "k", "models",
            "personalization", "evaluate", "scoring", "rank", "plot_metric", "env", "description", "resources"}
MODEL_KEYS = {"model_name", "mode", "train", "evaluate", "accelerate_config", "retrievers", "personalization",
              "description"}
RETRIEVER_KEYS = {"retriever", "retriever_model", "options", "ranked"}
METHOD_KEYS = {"method", "train", "evaluate", "accelerate_config", "task_lora", "description"}
# The flags that decide a prompt (those a trained model records and its evaluation takes as defaults).
PROMPT_SETTINGS = tuple(setting.name for setting in fields(PromptSettingsArguments))
# train.py flags of a task LoRA the runner sets itself: the method's own prompt settings (its `train`), so that the
# task LoRA, the per-user adapters and their evaluation build the same prompts, and the run's data, model and folder.
TASK_LORA_SET_BY_RUNNER = {*PROMPT_SETTINGS, "use_lora", "train_data", "validation_data", "data_dir", "cache_dir",
                           "task", "model_name", "output_dir", "resume_from_checkpoint", "is_ranked"}
STAGE_KINDS = ("rank", "train", "generate", "score")
# A SLURM job per stage (--executor slurm): what each kind asks for unless the experiment's `resources` says
# otherwise (`default:` for every kind, then the kind's own). time in minutes, mem as sbatch writes it. `array`:
# the stages of the kind that become ready together go to SLURM as one job array (one sbatch, one job id with a
# task per stage: fewer submissions for a scheduler that throttles them, one line per kind in squeue), at most
# `array_parallelism` of its tasks running at once (none: submitit's cap, 256).
RESOURCE_DEFAULTS = {
    "rank": {"gpus": 1, "cpus": 8, "mem": "32G", "time": 240},  # a dense encoder; BM25 uses the CPUs
    "train": {"gpus": 1, "cpus": 8, "mem": "64G", "time": 1440},
    "generate": {"gpus": 1, "cpus": 8, "mem": "64G", "time": 720},
    "score": {"gpus": 0, "cpus": 4, "mem": "16G", "time": 120},
}
ARRAY_DEFAULTS = {"array": True, "array_parallelism": None}
def default_resources() -> dict[str, dict]:
    """Each stage kind's job resources when the experiment sets none."""
    return {kind: {**RESOURCE_DEFAULTS[kind], **ARRAY_DEFAULTS} for kind in STAGE_KINDS}


RESOURCE_KEYS = {"gpus", "cpus", "mem", "time", "partition", "account", "sbatch", *ARRAY_DEFAULTS}
# A retriever, model or method name is a folder name in the output folder: no separators, no `..`.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def local_model(name: str) -> str:
    """The folder of a `local:` model prepared at set-up (see scripts/prepare_models.py)."""
    from benchmark_runner.local_models import DEFAULT_OUTPUT, encoder_folder, is_complete

    if name == "local:smollm2-135m-instruct":
        if not is_complete(DEFAULT_OUTPUT):
            raise ConfigError(f"{name}: {DEFAULT_OUTPUT} is not there yet: run `make setup` "
                              "(or python scripts/prepare_models.py)")
        return str(DEFAULT_OUTPUT)
    if name == "local:all-minilm-l6-v2":
        return str(encoder_folder())
    raise ConfigError(f"unknown local model {name!r}: local:smollm2-135m-instruct or local:all-minilm-l6-v2")


def resolve_model_name(name: str | None, where: str = "model_name") -> str | None:
    """A `local:` name's folder; an existing local folder made absolute (the stages run from the repository root);
    a Hub id (`name` or `owner/name`) as it is; a path that does not exist is an error."""
    if isinstance(name, str) and name.startswith("local:"):
        return local_model(name)
    if name and Path(name).expanduser().exists():
        return _absolute(name)
    if name and (name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name):
        raise ConfigError(f"{where}: {name} does not exist (a local model folder, or a Hub id such as "
                          "owner/name)")
    return name


def _absolute(path: str | None) -> str | None:
    """Paths of the experiment are relative to the current directory; the stage commands get them absolute."""
    return str(Path(path).expanduser().resolve()) if path else path


@dataclass(frozen=True)
class RetrieverSpec:
    name: str
    retriever: str
    retriever_model: str | None = None
    options: dict = field(default_factory=dict)
    ranked: bool = True  # False: retrieved when the prompts are built (train.py, evaluate_llm.py), no ranking stage


@dataclass(frozen=True)
class MethodSpec:
    """A per-user method: its kind (one of METHODS), the flags of its training command and of its generation."""

    name: str
    method: str
    train: dict = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)
    accelerate_config: str | None = None  # per_user_adapters: default, the model's
    # per_user_adapters on a zero-shot model: the task LoRA trained first (OPPU's), its train.py flags over OPPU's
    # settings; None: no task LoRA, the adapters train on the base model
    task_lora: dict | None = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_name: str
    mode: str
    train: dict = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)
    accelerate_config: str = "accelerate_configs/cpu.yaml"
    retrievers: tuple[str, ...] | None = None  # the experiment's retrievers this model runs with (None: all)
    personalization: tuple[str, ...] | None = None  # the experiment's methods this model runs with (None: all)

    def uses(self, choice: RetrieverSpec | MethodSpec) -> bool:
        chosen = self.personalization if isinstance(choice, MethodSpec) else self.retrievers
        return chosen is None or choice.name in chosen


@dataclass(frozen=True)
class Run:
    """One cell of the grid: a model on a config, without profile, with one retriever and k, or with one
    per-user method."""

    config: str
    model: ModelSpec
    retriever: RetrieverSpec | None = None
    k: int | None = None
    method: MethodSpec | None = None

    @property
    def variant(self) -> str:
        if self.method is not None:
            return self.method.name
        return "no_profile" if self.retriever is None else f"{self.retriever.name}-k{self.k}"

    @property
    def baseline(self) -> Run:
        """The same model's run without profile: what a method builds on and what every run is paired with."""
        return Run(self.config, self.model)

    @property
    def key(self) -> str:
        return f"{self.config}/{self.model.name}/{self.variant}"


@dataclass
class Experiment:
    name: str
    output_dir: Path
    configs: list[str]
    retrievers: list[RetrieverSpec]
    k: list[int]
    models: list[ModelSpec]
    methods: list[MethodSpec] = field(default_factory=list)
    data_dir: str | None = None
    cache_dir: str | None = None
    eval_split: str = "validation"
    evaluate: dict = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)
    rank: dict = field(default_factory=dict)
    plot_metric: str = "rougeL"
    env: dict = field(default_factory=dict)  # environment variables for the stages (the caller's own win)
    resources: dict = field(default_factory=default_resources)

    def runs(self) -> list[Run]:
        """The grid, in the order it is run: per config and model, no profile first, the methods last."""
        cells = []
        for config in self.configs:
            for model in self.models:
                cells.append(Run(config, model))
                cells += [Run(config, model, retriever, k) for retriever in self.retrievers if model.uses(retriever)
                          for k in self.k]
                cells += [Run(config, model, method=method) for method in self.methods if model.uses(method)]
        return cells

    def ranked_splits(self, retriever: RetrieverSpec) -> list[str]:
        """The splits a retriever must rank: the evaluated one, plus train and validation to fine-tune with it
        (none for a retriever that retrieves when the prompts are built)."""
        users = [model for model in self.models if model.uses(retriever)] if retriever.ranked else []
        splits = [self.eval_split] if users else []
        if any(model.mode == "fine_tuned" for model in users):
            splits += [s for s in ("train", "validation") if s not in splits]
        return splits


def set_value(values: dict, dotted: str, value) -> None:
    """Set `a.b.c` in nested mappings (creating them), for `--set a.b.c=value`."""
    keys = dotted.split(".")
    target = values
    for key in keys[:-1]:
        if not isinstance(target.get(key, {}), dict):
            raise ConfigError(f"--set {dotted}: {key} is not a mapping")
        target = target.setdefault(key, {})
    target[keys[-1]] = value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader refusing a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: the key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(text: str, where: str):
    """A YAML text (a file, a --set value) read strictly; one ConfigError naming where it comes from."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(error).split())}") from None


def load_experiment(path: str | Path, overrides: dict | None = None, sets: list[str] = ()) -> Experiment:
    """Read an experiment file, apply `--set key=value` strings and named overrides, and check it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {path} does not exist" if not path.exists()
                          else f"experiment file {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"experiment file {path} is not a text (YAML) file") from None
    values = read_yaml(text, str(path)) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    values = copy.deepcopy(values)
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, text = item.split("=", 1)
        set_value(values, key.strip(), read_yaml(text, f"{path}: --set {item!r}"))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return parse_experiment(values, str(path))


def _mapping(values, where: str) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    return values


def _flag_values(values, where: str) -> dict:
    """A mapping of command flags to their values (scalars: each becomes `--flag value`)."""
    values = _mapping(values, where)
    for key, value in values.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
            raise ConfigError(f"{where}: {key!r} is not a flag name")
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise ConfigError(f"{where}.{key}: expected one value (a string, number or true/false), got {value!r}")
    return dict(values)


def _name(name, where: str) -> str:
    """A name that becomes a folder in the output folder."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise ConfigError(f"{where}: {name!r} is not a usable name (it names a folder: letters, digits, and "
                          "_ . + - inside, no separators or '..')")
    return name


def _string(values: dict, key: str, where: str, default: str | None = None) -> str | None:
    value = values.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _unique_list(value, key: str, where: str) -> list:
    """A list setting (a single value is a list of one) with no entry twice: each entry would run twice."""
    items = value if isinstance(value, list) else [value]
    twice = sorted({repr(item) for item in items if items.count(item) > 1})
    if twice:
        raise ConfigError(f"{where}: {key} lists {', '.join(twice)} more than once")
    return items


def _resources(values, where: str) -> dict[str, dict]:
    """Each stage kind's job resources: the defaults, under `default:`, under the kind's own."""
    values = _mapping(values, f"{where}: resources")
    _check_keys(values, {"default", *STAGE_KINDS}, f"{where}: resources")
    chosen = {}
    for kind in STAGE_KINDS:
        merged = default_resources()[kind]
        for part in ("default", kind):
            at = f"{where}: resources.{part}"
            spec = _mapping(values.get(part), at)
            _check_keys(spec, RESOURCE_KEYS, at)
            for key in ("gpus", "cpus", "time"):
                if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], int)
                                    or spec[key] < (0 if key == "gpus" else 1)):
                    raise ConfigError(f"{at}.{key} must be an integer of at least {0 if key == 'gpus' else 1}"
                                      f"{' (minutes)' if key == 'time' else ''}, got {spec[key]!r}")
            if "array" in spec and not isinstance(spec["array"], bool):
                raise ConfigError(f"{at}.array must be true or false, got {spec['array']!r}")
            parallelism = spec.get("array_parallelism")
            if parallelism is not None and (isinstance(parallelism, bool) or not isinstance(parallelism, int)
                                            or parallelism < 1):
                raise ConfigError(f"{at}.array_parallelism must be an integer of at least 1 (tasks of one array "
                                  f"running at once), got {parallelism!r}")
            if "mem" in spec and not re.fullmatch(r"[0-9]+[KMGT]?", str(spec["mem"])):
                raise ConfigError(f"{at}.mem must be a size such as 64G, got {spec['mem']!r}")
            for key in ("partition", "account"):
                _string(spec, key, at)
            sbatch = _flag_values(spec.get("sbatch"), f"{at}.sbatch")
            merged.update({key: value for key, value in spec.items() if key != "sbatch"})
            merged["sbatch"] = {**merged.get("sbatch", {}), **sbatch}
        chosen[kind] = merged
    return chosen


def _check_keys(values: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"expected among {', '.join(sorted(allowed))}")


def _chosen_names(names, choices: list, key: str, where: str) -> tuple[str, ...] | None:
    """A model's `retrievers` or `personalization` list: names among the experiment's own."""
    if names is None:
        return None
    known = [choice.name for choice in choices]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"{where}.{key}: {unknown} are not among the experiment's {key} {known}")
    return tuple(names)


def _methods(values, eval_split: str, where: str) -> list[MethodSpec]:
    """The `personalization` mapping: each method known, with settings its commands can run on this split."""
    methods = []
    for name, spec in _mapping(values, f"{where}: personalization").items():
        at = f"{where}: personalization.{name}"
        _name(name, f"{where}: personalization")
        spec = _mapping(spec, at)
        _check_keys(spec, METHOD_KEYS, at)
        if spec.get("method") not in METHODS:
            raise ConfigError(f"{at}.method must be one of {', '.join(METHODS)}, got {spec.get('method')!r}")
        train, evaluate = _flag_values(spec.get("train"), f"{at}.train"), _flag_values(spec.get("evaluate"),
                                                                                         f"{at}.evaluate")
        if train and spec["method"] not in TRAINED_METHODS:
            raise ConfigError(f"{at}.train: {spec['method']} has no training stage (its summaries are generated "
                              "by the evaluation: set them under evaluate)")
        if spec["method"] == "style_vectors":
            chooser = train.get("selection_split", "validation")
            if chooser == eval_split:
                raise ConfigError(f"{at}.train.selection_split: the layer and scale would be chosen on the "
                                  f"evaluated split ({eval_split}); choose on another split, or set it to none "
                                  "with evaluate.style_layer and evaluate.style_scale")
            if chooser == "none" and not {"style_layer", "style_scale"} <= set(evaluate):
                raise ConfigError(f"{at}: with train.selection_split none, give evaluate.style_layer and "
                                  "evaluate.style_scale")
        methods.append(MethodSpec(name, spec["method"], train, evaluate, _accelerate_config(spec, at),
                                  _task_lora(spec, eval_split, at)))
    return methods


def _task_lora(spec: dict, eval_split: str, where: str) -> dict | None:
    """A per-user adapters method's task LoRA: on (true, the default: OPPU's settings), off (false), or a mapping of
    train.py flags over OPPU's settings."""
    value = spec.get("task_lora", True)
    if "task_lora" in spec and spec["method"] != "per_user_adapters":
        raise ConfigError(f"{where}.task_lora: only per_user_adapters trains a task LoRA, not {spec['method']}")
    if value is False:
        return None
    flags = {} if value is True else _flag_values(value, f"{where}.task_lora")
    taken = sorted(set(flags) & TASK_LORA_SET_BY_RUNNER)
    if taken:
        raise ConfigError(f"{where}.task_lora: {', '.join(taken)} are set by the runner (the prompt settings are the "
                          "method's own, under train: the task LoRA and the adapters must build the same prompts)")
    if spec["method"] == "per_user_adapters" and eval_split == "train":
        raise ConfigError(f"{where}.task_lora: the task LoRA trains on the train split, which is the evaluated one "
                          "here (eval_split: train); evaluate another split, or set task_lora: false")
    return flags


def _check_variants(retrievers: list[RetrieverSpec], ks: list[int], methods: list[MethodSpec], where: str) -> None:
    """Every run of a model has its own folder: a method cannot take the name of another run."""
    taken = {"no_profile", *(f"{retriever.name}-k{k}" for retriever in retrievers for k in ks)}
    clash = [method.name for method in methods if method.name in taken]
    if clash:
        raise ConfigError(f"{where}: personalization {clash} would share a run folder with the run of the same "
                          f"name ({', '.join(sorted(taken))}); rename the method")


def parse_experiment(values: dict, where: str = "experiment") -> Experiment:
    if not all(isinstance(key, str) for key in values):
        raise ConfigError(f"{where}: every key must be a name, got {[k for k in values if not isinstance(k, str)]}")
    _check_keys(values, TOP_KEYS, where)
    for key in ("name", "output_dir", "configs", "retrievers", "k", "models"):
        if values.get(key) in (None, "", [], {}):
            raise ConfigError(f"{where}: {key} is required")
    for key in ("name", "output_dir", "data_dir", "cache_dir", "description", "plot_metric", "eval_split"):
        _string(values, key, where)
    configs = _unique_list(values["configs"], "configs", where)
    for config in configs:
        if config not in config_names(with_aliases=False):
            raise ConfigError(f"{where}: configs: {config!r} is not one of "
                              f"{', '.join(config_names(with_aliases=False))}")
    eval_split = values.get("eval_split", "validation")
    if eval_split not in SPLITS:
        raise ConfigError(f"{where}: eval_split must be one of {', '.join(SPLITS)}, got {eval_split!r}")
    retrievers = []
    for name, spec in _mapping(values["retrievers"], f"{where}: retrievers").items():
        at = f"{where}: retrievers.{name}"
        _name(name, f"{where}: retrievers")
        spec = _mapping(spec, at)
        _check_keys(spec, RETRIEVER_KEYS, at)
        ranked = spec.get("ranked", True)
        if not isinstance(ranked, bool):
            raise ConfigError(f"{at}.ranked must be true or false, got {ranked!r}")
        options = _flag_values(spec.get("options"), f"{at}.options")
        if not ranked and options:
            raise ConfigError(f"{at}.options are rank_profiles.py flags; with ranked: false there is no ranking "
                              "stage")
        retrievers.append(RetrieverSpec(name, _string(spec, "retriever", at, name),
                                        resolve_model_name(_string(spec, "retriever_model", at),
                                                           f"{at}.retriever_model"),
                                        options, ranked))
    ks = _unique_list(values["k"], "k", where)
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise ConfigError(f"{where}: k must be positive integers, got {ks}")
    methods = _methods(values.get("personalization"), eval_split, where)
    _check_variants(retrievers, ks, methods, where)
    models = []
    for name, spec in _mapping(values["models"], f"{where}: models").items():
        at = f"{where}: models.{name}"
        _name(name, f"{where}: models")
        spec = _mapping(spec, at)
        _check_keys(spec, MODEL_KEYS, at)
        if spec.get("mode") not in MODES:
            raise ConfigError(f"{at}.mode must be one of {', '.join(MODES)}, got {spec.get('mode')!r}")
        if not spec.get("model_name"):
            raise ConfigError(f"{at}.model_name is required")
        chosen = {key: spec.get(key) if spec.get(key) is None else _unique_list(spec[key], key, at)
                  for key in ("retrievers", "personalization")}
        models.append(ModelSpec(name, resolve_model_name(_string(spec, "model_name", at), f"{at}.model_name"),
                                spec["mode"], _flag_values(spec.get("train"), f"{at}.train"),
                                _flag_values(spec.get("evaluate"), f"{at}.evaluate"),
                                _accelerate_config(spec, at) or "accelerate_configs/cpu.yaml",
                                _chosen_names(chosen["retrievers"], retrievers, "retrievers", at),
                                _chosen_names(chosen["personalization"], methods, "personalization", at)))
    for config in configs:
        if not parse_config_name(config)[0].public and not values.get("data_dir"):
            raise ConfigError(f"{where}: {config} is built from the licensed Avocado collection: give data_dir "
                              "(--data_dir /path/to/avocado; see the README's Avocado section)")
    plot_metric = values.get("plot_metric", "rougeL")
    if plot_metric not in HEADLINE_METRICS:
        raise ConfigError(f"{where}: plot_metric must be one of {', '.join(HEADLINE_METRICS)}")
    output_dir = Path(_absolute(values["output_dir"]))
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"{where}: output_dir {values['output_dir']} is a file, not a folder")
    if values.get("data_dir") and not Path(values["data_dir"]).expanduser().is_dir():
        raise ConfigError(f"{where}: data_dir {values['data_dir']} is not a folder")
    env = _mapping(values.get("env"), f"{where}: env")
    if not all(isinstance(v, (str, int, float, bool)) for v in env.values()):
        raise ConfigError(f"{where}: env values must be strings or numbers")
    return Experiment(
        name=values["name"], output_dir=output_dir, configs=list(configs),
        retrievers=retrievers, k=list(ks), models=models, methods=methods, data_dir=_absolute(values.get("data_dir")),
        cache_dir=_absolute(values.get("cache_dir")), eval_split=eval_split,
        evaluate=_flag_values(values.get("evaluate"), f"{where}: evaluate"),
        scoring=_flag_values(values.get("scoring"), f"{where}: scoring"),
        rank=_flag_values(values.get("rank"), f"{where}: rank"),
        plot_metric=plot_metric, env={str(k): str(v) for k, v in env.items()},
        resources=_resources(values.get("resources"), where),
    )


def _accelerate_config(spec: dict, where: str) -> str | None:
    """An accelerate config file (relative to the repository root, as the stages run there) that exists."""
    path = _string(spec, "accelerate_config", where)
    if path and not (REPO / path).is_file() and not Path(path).is_file():
        raise ConfigError(f"{where}.accelerate_config: {path} does not exist")
    return path
