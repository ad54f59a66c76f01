"""What a run folder holds, read into one `Run`: a training run (`final/`, `best/`, `checkpoints/`) or a zero-shot
run (`scores.json`, `predictions.json`, ...; see evaluation/zero_shot/). Cards, plots and uploads read this.

Values that name places on this machine (absolute or existing local paths, the home folder) are never carried
into what is published: `public_name` keeps only the last part of such a path.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from longlamp_errors import RunFolderError
from longlamp_runs import (
    CHECKPOINTS_DIR,
    COMPARISON_FILE,
    FINAL_DIR,
    NO_PROFILE_DIR,
    PREDICTIONS_FILE,
    SCORES_FILE,
    STATE_FILE,
    TEST_PREDICTIONS_FILE,
    TRAINING_RECORD_FILE,
    VALIDATION_DIR,
)
from longlamp_tasks import Task, parse_config_name
from scoring import HEADLINE_METRICS

DATASET_ID = "LongLaMP/LongLaMP"
EMBEDDED_PATH = re.compile(r"(?<![\w.:/~])(?:~/|/)(?:[^\s,()'\"=/]+/)+[^\s,()'\"=/]+")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "namespace/name"


@dataclass
class Result:
    """The scores of one variant of a run (with profile, or without), as scored."""

    label: str  # "with profile (bm25, k=4)", "no profile", ...
    split: str
    num_samples: int | None
    metrics: dict[str, float]
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    confidence: float | None = None
    folder: Path | None = None  # where its predictions.json / golds.json lie (zero-shot)
    note: str | None = None
    retrieval: dict = field(default_factory=dict)  # {"use_profile", "retriever", "num_retrieved"}: tells variants apart


@dataclass
class Run:
    kind: str  # "training" or "zero_shot"
    folder: Path
    task: Task
    setting: str
    model: str  # the model as given (Hub id or a public name for a local folder)
    base_model: str | None  # training: the fine-tuned model; zero-shot: an evaluated adapter's base
    settings: dict
    results: list[Result]
    comparison: dict | None = None
    record: dict | None = None  # training: the run record (config, steps, best metric)
    model_dir: Path | None = None  # training: the folder whose files are the model (final/)
    is_adapter: bool = False
    extra_files: list[Path] = field(default_factory=list)  # predictions of the test split (training)
    license: str | None = None  # the (base) model's licence, when its card is on this machine

    @property
    def config_name(self) -> str:
        return f"{self.task.name}_{self.setting}"


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path}: cannot read it as JSON ({error})") from None


def public_name(value):
    """A string that names a local path becomes its last part (`<local>/final`); anything else stays."""
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if os.path.isabs(value) or value.startswith(("~", ".")) or path.exists():
        return "<local>/" + path.resolve().name
    # a path inside a value, e.g. a retriever signature "contriever(model_name=<an absolute folder>)"
    return EMBEDDED_PATH.sub(lambda match: "<local>/" + Path(match.group(0)).name, value)


def public_settings(settings: dict) -> dict:
    """`settings` with every local path reduced to its last part (nested mappings too)."""
    return {key: public_settings(value) if isinstance(value, dict) else public_name(value)
            for key, value in settings.items()}


def is_hub_id(value: str | None) -> bool:
    return bool(value) and public_name(value) == value and bool(HUB_ID.match(value))


def known_license(model: str | None) -> str | None:
    """The licence in the YAML of a model's card, read from its local folder or the Hub cache (never fetched)."""
    if not model:
        return None
    card = Path(model).expanduser() / "README.md"
    if not card.is_file():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "README.md") if HUB_ID.match(model) else None
        card = Path(cached) if isinstance(cached, str) else None
    if card is None:
        return None
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(card).data.license
    except ValueError:  # a card without (valid) YAML
        return None


def detect_kind(folder: Path) -> str:
    if (folder / SCORES_FILE).is_file() and (folder / PREDICTIONS_FILE).is_file():
        return "zero_shot"
    if (folder / FINAL_DIR / TRAINING_RECORD_FILE).is_file() or (folder / CHECKPOINTS_DIR).is_dir():
        return "training"
    raise RunFolderError(f"{folder} is not a run folder: expected a zero-shot run ({SCORES_FILE} and "
                         f"{PREDICTIONS_FILE}) or a training run ({FINAL_DIR}/{TRAINING_RECORD_FILE} or "
                         f"{CHECKPOINTS_DIR}/)")


def read_run(folder: str | Path) -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: no such run folder")
    return _read_zero_shot(folder) if detect_kind(folder) == "zero_shot" else _read_training(folder)


def _zero_shot_result(folder: Path, summary: dict) -> Result:
    settings = summary.get("settings", {})
    scores = summary.get("scores") or {}
    label, retrieval = "no profile", {"use_profile": False}
    if settings.get("use_profile"):
        retriever = settings.get("retriever")
        name = retriever.get("name", retriever) if isinstance(retriever, dict) else retriever
        label = f"with profile, {name}, k={settings.get('num_retrieved')}"
        retrieval = {"use_profile": True, "retriever": name, "num_retrieved": settings.get("num_retrieved")}
    bootstrap = scores.get("bootstrap") or {}
    return Result(label=label, split=settings.get("split", "validation"), num_samples=scores.get("num_samples"),
                  metrics=dict(scores.get("metrics") or {}), intervals=dict(bootstrap.get("intervals") or {}),
                  confidence=bootstrap.get("confidence"), folder=folder, note=summary.get("not_scored"),
                  retrieval=retrieval)


def _read_zero_shot(folder: Path) -> Run:
    summary = read_json(folder / SCORES_FILE)
    settings = summary.get("settings")
    if not isinstance(settings, dict) or "task" not in settings:
        raise RunFolderError(f"{folder / SCORES_FILE}: no 'settings' with the task (not a zero-shot run's)")
    task, setting = parse_config_name(f"{settings['task']}_{settings.get('setting', 'user')}")
    results = [_zero_shot_result(folder, summary)]
    if (folder / NO_PROFILE_DIR / SCORES_FILE).is_file():
        results.append(_zero_shot_result(folder / NO_PROFILE_DIR, read_json(folder / NO_PROFILE_DIR / SCORES_FILE)))
    comparison = read_json(folder / COMPARISON_FILE) if (folder / COMPARISON_FILE).is_file() else None
    base = settings.get("base_model")
    return Run("zero_shot", folder, task, setting, public_name(settings.get("model")), public_name(base),
               public_settings(settings), results, comparison, is_adapter=bool(base),
               license=known_license(base or settings.get("model")))


def _latest_state(folder: Path) -> dict | None:
    states = sorted((folder / CHECKPOINTS_DIR).glob(f"checkpoint-*/{STATE_FILE}"),
                    key=lambda p: int(p.parent.name.rsplit("-", 1)[-1]) if p.parent.name.rsplit("-", 1)[-1].isdigit()
                    else -1)
    return read_json(states[-1]) if states else None


def _read_training(folder: Path) -> Run:
    model_dir = folder / FINAL_DIR
    if not (model_dir / TRAINING_RECORD_FILE).is_file():
        raise RunFolderError(f"{folder}: the training run has no {FINAL_DIR}/{TRAINING_RECORD_FILE} yet (not finished)")
    record = read_json(model_dir / TRAINING_RECORD_FILE)
    task, setting = parse_config_name(record["task"])
    is_adapter = (model_dir / "adapter_config.json").is_file()
    base = record.get("model_name")
    results = []
    # The model evaluated after training, in the zero-shot format; else the generations of its last evaluation
    # during training, kept in the same format (training/validation.py); else the scores in its history.
    evaluated = next((d for d in (folder, folder / VALIDATION_DIR) if (d / SCORES_FILE).is_file()), None)
    if evaluated is not None:
        results.append(_zero_shot_result(evaluated, read_json(evaluated / SCORES_FILE)))
    else:
        state = _latest_state(folder) or {}
        scored = [entry for entry in state.get("history", []) if any(m in entry for m in HEADLINE_METRICS)]
        if scored:
            last = scored[-1]
            rows = record.get("eval_generation_examples")
            results.append(Result(
                label=(f"with profile, {record.get('retriever')}, k={record.get('num_retrieved')}"
                       if record.get("use_profile") else "no profile"), split="validation",
                retrieval={"use_profile": bool(record.get("use_profile")),
                           **({"retriever": record.get("retriever"), "num_retrieved": record.get("num_retrieved")}
                              if record.get("use_profile") else {})},
                num_samples=rows, metrics={m: last[m] for m in HEADLINE_METRICS if m in last},
                note=f"scored during training at step {last['step']} on the first {rows} validation examples"))
    extra = [p for p in (folder / TEST_PREDICTIONS_FILE,) if p.is_file()]
    settings = public_settings({k: v for k, v in record.items() if k != "hub_token"})
    return Run("training", folder, task, setting, public_name(base), public_name(base), settings, results,
               record=settings, model_dir=model_dir, is_adapter=is_adapter, extra_files=extra,
               license=known_license(base))
