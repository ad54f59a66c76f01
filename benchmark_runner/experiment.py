"""An experiment file and the grid of runs it describes.

    name: demo
    output_dir: outputs/demo
    data_dir: data/sample            # omit to read the Hub (LongLaMP/LongLaMP)
    configs: [product_review_user]
    eval_split: validation
    retrievers:                      # name -> rank_profiles.py retriever (+ dense encoder)
      bm25: {retriever: bm25}
      minilm: {retriever: contriever, retriever_model: local:all-minilm-l6-v2}
    k: [1, 2]
    models:                          # name -> model and how it is used
      smollm2: {model_name: local:smollm2-135m-instruct, mode: zero_shot}
      smollm2-lora: {model_name: local:smollm2-135m-instruct, mode: fine_tuned, train: {use_lora: true}}
    evaluate: {max_new_tokens: 128}  # evaluate_llm.py flags for every generation
    scoring: {bootstrap: 1000, seed: 0}
    env: {OMP_NUM_THREADS: 1}        # environment of the stage commands (a variable you set yourself wins)

Each (config, model) gets one run without profile and one per (retriever, k) with profile; a fine-tuned model is
trained once per such run (with the same retrieval it is evaluated with), as the paper does.
`local:` names are the models `scripts/prepare_models.py` put on disk at set-up. Relative paths (output_dir,
data_dir, cache_dir, local model folders) are read from the current directory, as on the command line.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from longlamp_tasks import config_names, parse_config_name

REPO = Path(__file__).resolve().parents[1]
MODES = ("zero_shot", "fine_tuned")
TOP_KEYS = {"name", "output_dir", "data_dir", "cache_dir", "configs", "eval_split", "retrievers", "k", "models",
            "evaluate", "scoring", "rank", "plot_metric", "env", "description"}
MODEL_KEYS = {"model_name", "mode", "train", "evaluate", "accelerate_config", "retrievers", "description"}
RETRIEVER_KEYS = {"retriever", "retriever_model", "options"}
HEADLINE = ("rouge1", "rougeL", "meteor")  # the paper's metrics


class ExperimentError(ValueError):
    """The experiment file or an override is wrong; the message names the key."""


def local_model(name: str) -> str:
    """The folder of a `local:` model prepared at set-up (see scripts/prepare_models.py)."""
    from benchmark_runner.local_models import DEFAULT_OUTPUT, encoder_folder, is_complete

    if name == "local:smollm2-135m-instruct":
        if not is_complete(DEFAULT_OUTPUT):
            raise ExperimentError(f"{name}: {DEFAULT_OUTPUT} is not there yet: run `make setup` "
                                  "(or python scripts/prepare_models.py)")
        return str(DEFAULT_OUTPUT)
    if name == "local:all-minilm-l6-v2":
        return str(encoder_folder())
    raise ExperimentError(f"unknown local model {name!r}: local:smollm2-135m-instruct or local:all-minilm-l6-v2")


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


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_name: str
    mode: str
    train: dict = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)
    accelerate_config: str = "accelerate_configs/cpu.yaml"
    retrievers: tuple[str, ...] | None = None  # the experiment's retrievers this model runs with (None: all)

    def uses(self, retriever: RetrieverSpec) -> bool:
        return self.retrievers is None or retriever.name in self.retrievers


@dataclass(frozen=True)
class Run:
    """One cell of the grid: a model on a config, without profile or with one retriever and k."""

    config: str
    model: ModelSpec
    retriever: RetrieverSpec | None = None
    k: int | None = None

    @property
    def variant(self) -> str:
        return "no_profile" if self.retriever is None else f"{self.retriever.name}-k{self.k}"

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
    data_dir: str | None = None
    cache_dir: str | None = None
    eval_split: str = "validation"
    evaluate: dict = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)
    rank: dict = field(default_factory=dict)
    plot_metric: str = "rougeL"
    env: dict = field(default_factory=dict)  # environment variables for the stages (the caller's own win)

    def runs(self) -> list[Run]:
        """The grid, in the order it is run: per config and model, no profile first."""
        cells = []
        for config in self.configs:
            for model in self.models:
                cells.append(Run(config, model))
                cells += [Run(config, model, retriever, k) for retriever in self.retrievers if model.uses(retriever)
                          for k in self.k]
        return cells

    def ranked_splits(self, retriever: RetrieverSpec) -> list[str]:
        """The splits a retriever must rank: the evaluated one, plus train and validation to fine-tune with it."""
        users = [model for model in self.models if model.uses(retriever)]
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
            raise ExperimentError(f"--set {dotted}: {key} is not a mapping")
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def load_experiment(path: str | Path, overrides: dict | None = None, sets: list[str] = ()) -> Experiment:
    """Read an experiment file, apply `--set key=value` strings and named overrides, and check it."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"experiment file {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ExperimentError(f"{path}: expected a mapping")
    values = copy.deepcopy(values)
    for item in sets:
        if "=" not in item:
            raise ExperimentError(f"--set {item!r}: expected key=value")
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
        raise ExperimentError(f"{where}: expected a mapping, got {values!r}")
    return values


def _check_keys(values: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ExperimentError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                              f"expected among {', '.join(sorted(allowed))}")


def _retriever_names(names, retrievers: list[RetrieverSpec], where: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    known = [retriever.name for retriever in retrievers]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ExperimentError(f"{where}.retrievers: {unknown} are not among the experiment's retrievers {known}")
    return tuple(names)


def parse_experiment(values: dict, where: str = "experiment") -> Experiment:
    _check_keys(values, TOP_KEYS, where)
    for key in ("name", "output_dir", "configs", "retrievers", "k", "models"):
        if not values.get(key):
            raise ExperimentError(f"{where}: {key} is required")
    configs = values["configs"] if isinstance(values["configs"], list) else [values["configs"]]
    for config in configs:
        if config not in config_names(with_aliases=False):
            raise ExperimentError(f"{where}: configs: {config!r} is not one of "
                                  f"{', '.join(config_names(with_aliases=False))}")
    retrievers = []
    for name, spec in _mapping(values["retrievers"], f"{where}: retrievers").items():
        spec = _mapping(spec, f"{where}: retrievers.{name}")
        _check_keys(spec, RETRIEVER_KEYS, f"{where}: retrievers.{name}")
        retrievers.append(RetrieverSpec(str(name), spec.get("retriever", name),
                                        resolve_model_name(spec.get("retriever_model")),
                                        dict(spec.get("options") or {})))
    ks = values["k"] if isinstance(values["k"], list) else [values["k"]]
    if not all(isinstance(k, int) and k >= 1 for k in ks):
        raise ExperimentError(f"{where}: k must be positive integers, got {ks}")
    models = []
    for name, spec in _mapping(values["models"], f"{where}: models").items():
        spec = _mapping(spec, f"{where}: models.{name}")
        _check_keys(spec, MODEL_KEYS, f"{where}: models.{name}")
        if spec.get("mode") not in MODES:
            raise ExperimentError(f"{where}: models.{name}.mode must be one of {', '.join(MODES)}, "
                                  f"got {spec.get('mode')!r}")
        if not spec.get("model_name"):
            raise ExperimentError(f"{where}: models.{name}.model_name is required")
        models.append(ModelSpec(str(name), resolve_model_name(spec["model_name"]), spec["mode"],
                                dict(_mapping(spec.get("train"), f"models.{name}.train")),
                                dict(_mapping(spec.get("evaluate"), f"models.{name}.evaluate")),
                                spec.get("accelerate_config", "accelerate_configs/cpu.yaml"),
                                _retriever_names(spec.get("retrievers"), retrievers, f"{where}: models.{name}")))
    for config in configs:
        if not parse_config_name(config)[0].public and not values.get("data_dir"):
            raise ExperimentError(f"{where}: {config} is built from the licensed Avocado collection: give data_dir "
                                  "(--data_dir /path/to/avocado; see the README's Avocado section)")
    plot_metric = values.get("plot_metric", "rougeL")
    if plot_metric not in HEADLINE:
        raise ExperimentError(f"{where}: plot_metric must be one of {', '.join(HEADLINE)}")
    return Experiment(
        name=str(values["name"]), output_dir=Path(_absolute(str(values["output_dir"]))), configs=list(configs),
        retrievers=retrievers, k=list(ks), models=models, data_dir=_absolute(values.get("data_dir")),
        cache_dir=_absolute(values.get("cache_dir")),
        eval_split=values.get("eval_split", "validation"), evaluate=dict(_mapping(values.get("evaluate"), "evaluate")),
        scoring=dict(_mapping(values.get("scoring"), "scoring")), rank=dict(_mapping(values.get("rank"), "rank")),
        plot_metric=plot_metric, env={str(k): str(v) for k, v in _mapping(values.get("env"), "env").items()},
    )
