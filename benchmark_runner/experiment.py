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
      style: {method: style_vectors, train: {scales: "0,1,2"}}           # train_style_vectors.py flags
      summary: {method: profile_summary, evaluate: {summary_max_new_tokens: 64}}
    evaluate: {max_new_tokens: 128}  # evaluate_llm.py flags for every generation
    scoring: {bootstrap: 1000, seed: 0}
    env: {OMP_NUM_THREADS: 1}        # environment of the stage commands (a variable you set yourself wins)

Each (config, model) gets one run without profile, one per (retriever, k) with profile, and one per personalization
method; a fine-tuned model is trained once per retrieval run (with the same retrieval it is evaluated with), as the
paper does, and a method builds on the model's run without profile (the base model, or its task fine-tuning).
A method's run has the same examples, split, data and scorer as the others, so its scores are paired with the
no-profile run's like a retriever's, and evaluation/leaderboard.py ranks its run folder beside them.
`local:` names are the models `scripts/prepare_models.py` put on disk at set-up. Relative paths (output_dir,
data_dir, cache_dir, local model folders) are read from the current directory, as on the command line.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from longlamp_errors import ConfigError
from longlamp_tasks import config_names, parse_config_name
from scoring import HEADLINE_METRICS

REPO = Path(__file__).resolve().parents[1]
MODES = ("zero_shot", "fine_tuned")
# Per-user methods: name in the experiment file -> what it is (training/train_per_user.py and
# evaluation/evaluate_per_user.py --adapters_dir; training/train_style_vectors.py and --style_vectors_dir;
# evaluate_per_user.py --use_summary).
METHODS = ("per_user_adapters", "style_vectors", "profile_summary")
TRAINED_METHODS = ("per_user_adapters", "style_vectors")
TOP_KEYS = {"name", "output_dir", "data_dir", "cache_dir", "configs", "eval_split", "retrievers", "k", "models",
            "personalization", "evaluate", "scoring", "rank", "plot_metric", "env", "description"}
MODEL_KEYS = {"model_name", "mode", "train", "evaluate", "accelerate_config", "retrievers", "personalization",
              "description"}
RETRIEVER_KEYS = {"retriever", "retriever_model", "options", "ranked"}
METHOD_KEYS = {"method", "train", "evaluate", "accelerate_config", "description"}


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


def resolve_model_name(name: str | None) -> str | None:
    """A `local:` name's folder; an existing local folder made absolute (the stages run from the repository root);
    anything else (a Hub id) as it is."""
    if isinstance(name, str) and name.startswith("local:"):
        return local_model(name)
    return _absolute(name) if name and Path(name).expanduser().exists() else name


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


def load_experiment(path: str | Path, overrides: dict | None = None, sets: list[str] = ()) -> Experiment:
    """Read an experiment file, apply `--set key=value` strings and named overrides, and check it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping")
    values = copy.deepcopy(values)
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, text = item.split("=", 1)
        set_value(values, key.strip(), yaml.safe_load(text))
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
        spec = _mapping(spec, at)
        _check_keys(spec, METHOD_KEYS, at)
        if spec.get("method") not in METHODS:
            raise ConfigError(f"{at}.method must be one of {', '.join(METHODS)}, got {spec.get('method')!r}")
        train, evaluate = dict(_mapping(spec.get("train"), f"{at}.train")), dict(_mapping(spec.get("evaluate"),
                                                                                            f"{at}.evaluate"))
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
        methods.append(MethodSpec(str(name), spec["method"], train, evaluate, spec.get("accelerate_config")))
    return methods


def _check_variants(retrievers: list[RetrieverSpec], ks: list[int], methods: list[MethodSpec], where: str) -> None:
    """Every run of a model has its own folder: a method cannot take the name of another run."""
    taken = {"no_profile", *(f"{retriever.name}-k{k}" for retriever in retrievers for k in ks)}
    clash = [method.name for method in methods if method.name in taken]
    if clash:
        raise ConfigError(f"{where}: personalization {clash} would share a run folder with the run of the same "
                          f"name ({', '.join(sorted(taken))}); rename the method")


def parse_experiment(values: dict, where: str = "experiment") -> Experiment:
    _check_keys(values, TOP_KEYS, where)
    for key in ("name", "output_dir", "configs", "retrievers", "k", "models"):
        if not values.get(key):
            raise ConfigError(f"{where}: {key} is required")
    configs = values["configs"] if isinstance(values["configs"], list) else [values["configs"]]
    for config in configs:
        if config not in config_names(with_aliases=False):
            raise ConfigError(f"{where}: configs: {config!r} is not one of "
                              f"{', '.join(config_names(with_aliases=False))}")
    retrievers = []
    for name, spec in _mapping(values["retrievers"], f"{where}: retrievers").items():
        spec = _mapping(spec, f"{where}: retrievers.{name}")
        _check_keys(spec, RETRIEVER_KEYS, f"{where}: retrievers.{name}")
        ranked = spec.get("ranked", True)
        if not isinstance(ranked, bool):
            raise ConfigError(f"{where}: retrievers.{name}.ranked must be true or false, got {ranked!r}")
        if not ranked and spec.get("options"):
            raise ConfigError(f"{where}: retrievers.{name}.options are rank_profiles.py flags; with ranked: false "
                              "there is no ranking stage")
        retrievers.append(RetrieverSpec(str(name), spec.get("retriever", name),
                                        resolve_model_name(spec.get("retriever_model")),
                                        dict(spec.get("options") or {}), ranked))
    ks = values["k"] if isinstance(values["k"], list) else [values["k"]]
    if not all(isinstance(k, int) and k >= 1 for k in ks):
        raise ConfigError(f"{where}: k must be positive integers, got {ks}")
    eval_split = values.get("eval_split", "validation")
    methods = _methods(values.get("personalization"), eval_split, where)
    _check_variants(retrievers, ks, methods, where)
    models = []
    for name, spec in _mapping(values["models"], f"{where}: models").items():
        spec = _mapping(spec, f"{where}: models.{name}")
        _check_keys(spec, MODEL_KEYS, f"{where}: models.{name}")
        if spec.get("mode") not in MODES:
            raise ConfigError(f"{where}: models.{name}.mode must be one of {', '.join(MODES)}, "
                              f"got {spec.get('mode')!r}")
        if not spec.get("model_name"):
            raise ConfigError(f"{where}: models.{name}.model_name is required")
        models.append(ModelSpec(str(name), resolve_model_name(spec["model_name"]), spec["mode"],
                                dict(_mapping(spec.get("train"), f"models.{name}.train")),
                                dict(_mapping(spec.get("evaluate"), f"models.{name}.evaluate")),
                                spec.get("accelerate_config", "accelerate_configs/cpu.yaml"),
                                _chosen_names(spec.get("retrievers"), retrievers, "retrievers",
                                              f"{where}: models.{name}"),
                                _chosen_names(spec.get("personalization"), methods, "personalization",
                                              f"{where}: models.{name}")))
    for config in configs:
        if not parse_config_name(config)[0].public and not values.get("data_dir"):
            raise ConfigError(f"{where}: {config} is built from the licensed Avocado collection: give data_dir "
                              "(--data_dir /path/to/avocado; see the README's Avocado section)")
    plot_metric = values.get("plot_metric", "rougeL")
    if plot_metric not in HEADLINE_METRICS:
        raise ConfigError(f"{where}: plot_metric must be one of {', '.join(HEADLINE_METRICS)}")
    return Experiment(
        name=str(values["name"]), output_dir=Path(_absolute(str(values["output_dir"]))), configs=list(configs),
        retrievers=retrievers, k=list(ks), models=models, methods=methods, data_dir=_absolute(values.get("data_dir")),
        cache_dir=_absolute(values.get("cache_dir")), eval_split=eval_split,
        evaluate=dict(_mapping(values.get("evaluate"), "evaluate")),
        scoring=dict(_mapping(values.get("scoring"), "scoring")), rank=dict(_mapping(values.get("rank"), "rank")),
        plot_metric=plot_metric, env={str(k): str(v) for k, v in _mapping(values.get("env"), "env").items()},
    )
