"""Resumable checkpoints: accelerate's full state plus where the run stood, written atomically.

A checkpoint folder `checkpoints/checkpoint-<step>` holds what `Accelerator.save_state` writes (model,
optimizer, scheduler, random states of every process; DeepSpeed's own shards under DeepSpeed) and
`trainer_state.json`, written last. It is assembled under a `.tmp` name and renamed when complete, so a
crash mid-save never leaves a folder that looks resumable.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from longlamp_errors import ConfigError
from longlamp_io import replace_folder, write_json_atomic
from longlamp_runs import CHECKPOINTS_DIR, STATE_FILE, RunRecord

PREFIX = "checkpoint-"
logger = logging.getLogger(__name__)


@dataclass
class TrainerState:
    """Where a run stands: optimizer steps done, the epoch and the micro-batches of it already trained on."""

    global_step: int = 0
    epoch: int = 0
    batches_done: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    num_processes: int = 1
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)  # the run's record (longlamp_runs.RunRecord.to_dict())

    def write(self, path: Path) -> None:
        write_json_atomic(path, dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> TrainerState:
        return cls(**json.loads(Path(path).read_text()))

    def record(self, path: Path) -> RunRecord:
        """The record of the run this state belongs to (read from `path`, named in errors)."""
        return RunRecord.from_dict(self.config, f"{path}: config")


def checkpoints_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_root(output_dir)
    found = [p for p in root.glob(PREFIX + "*") if p.name[len(PREFIX):].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def resolve_resume(spec: str | None, output_dir: str | Path) -> Path | None:
    """The checkpoint to resume from: 'latest' (None when the run has none yet) or an existing folder."""
    if spec is None:
        return None
    if spec == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            logger.info("no checkpoint in %s yet: starting from scratch", checkpoints_root(output_dir))
        return found[-1] if found else None
    path = Path(spec)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint {spec}: not a complete checkpoint (no {STATE_FILE})")
    return path


def save_checkpoint(accelerator, output_dir: str | Path, state: TrainerState, keep: int | None) -> Path:
    """Save a resumable checkpoint of the current step on every process; keep the newest `keep` of them."""
    final = checkpoints_root(output_dir) / f"{PREFIX}{state.global_step}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state.write(tmp / STATE_FILE)
        replace_folder(tmp, final)
        if keep:
            for old in list_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old)
        logger.info("saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def trainable_names(model) -> set[str]:
    """The names of the parameters training changes (a LoRA run's adapter), as a checkpoint's weights file keys
    them: those of the prepared model (accelerate saves its state dict unwrapped by nothing)."""
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def load_checkpoint(accelerator, path: Path, model=None) -> TrainerState:
    """Restore model, optimizer, scheduler and random states; return where the run stood. A checkpoint pushed to
    the Hub from a LoRA run holds only the adapter's weights (publishing.hub.stage_checkpoint): they must be
    exactly the model's trainable parameters, and the frozen rest stays as loaded from the base model."""
    from safetensors import safe_open

    from publishing.hub import ADAPTER_ONLY_KEY

    weights = path / "model.safetensors"
    adapter_only = False
    if model is not None and weights.is_file():
        with safe_open(str(weights), "pt") as stored:
            adapter_only = (stored.metadata() or {}).get(ADAPTER_ONLY_KEY) == "true"
            names = set(stored.keys())
        if adapter_only and names != trainable_names(model):
            raise ConfigError(f"{weights}: its weights are not this run's trainable parameters (another adapter "
                             "configuration or model)")
    accelerator.load_state(str(path), **({"strict": False} if adapter_only else {}))
    return TrainerState.read(path / STATE_FILE)
