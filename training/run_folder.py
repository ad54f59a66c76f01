"""The run an --output_dir holds: one run per folder, one live process writing it.

A run records its settings in `training_run.json` when it starts. A later run in the same folder is the same run
(a restart, or a resume) when only settings that do not change the run differ (see `RESUMABLE_CHANGES`); any
other difference (model, data, training settings) would silently replace `final/`, `best/` and the checkpoints,
so it is refused unless `--overwrite_output_dir` asks for the old outputs to be removed first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from longlamp_errors import RunFolderError
from longlamp_io import write_json_atomic
from longlamp_runs import BEST_DIR, CHECKPOINTS_DIR, FINAL_DIR, STATE_FILE, TEST_PREDICTIONS_FILE, TRAINING_RECORD_FILE
from training.checkpoints import TrainerState, list_checkpoints
from training.config import TrainConfig

RUN_FILE = "training_run.json"
# What a training run writes into its folder; --overwrite_output_dir removes exactly these.
OUTPUTS = (CHECKPOINTS_DIR, FINAL_DIR, "final-merged", BEST_DIR, "logs", TEST_PREDICTIONS_FILE, RUN_FILE)


def recorded_run(folder: Path) -> dict | None:
    """The settings of the run `folder` holds: its run file, else (runs older than the file) the record of its
    final model or newest checkpoint; None when it holds no run."""
    if (folder / RUN_FILE).is_file():
        return _read(folder / RUN_FILE)
    if (folder / FINAL_DIR / TRAINING_RECORD_FILE).is_file():
        return _read(folder / FINAL_DIR / TRAINING_RECORD_FILE)
    found = list_checkpoints(folder)
    return TrainerState.read(found[-1] / STATE_FILE).config if found else None


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def check_output_dir(config: TrainConfig) -> None:
    """Refuse an output folder that holds another run, unless --overwrite_output_dir; reads only."""
    folder = Path(config.output_dir)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--output_dir {folder} is a file, not a folder")
    recorded = recorded_run(folder) if folder.is_dir() else None
    if recorded is None or config.overwrite_output_dir:
        return
    changes = config.changes_from(recorded)
    if changes:
        listed = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in sorted(changes.items()))
        raise RunFolderError(f"--output_dir {folder} holds another run ({listed}); choose another folder, or pass "
                             "--overwrite_output_dir to replace its outputs")
    if config.resume_from_checkpoint is None and list_checkpoints(folder):
        # Starting again beside them would mix two attempts' checkpoints (and prune the new ones first).
        raise RunFolderError(f"--output_dir {folder} holds checkpoints of this run: pass --resume_from_checkpoint "
                             "latest to continue it, or --overwrite_output_dir to start it again")


def claim_output_dir(config: TrainConfig) -> None:
    """On the main process, holding the folder's lock: remove another run's outputs when asked, record this run."""
    folder = Path(config.output_dir)
    if config.overwrite_output_dir:
        for name in OUTPUTS:
            path = folder / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    write_json_atomic(folder / RUN_FILE, config.to_dict(), sort_keys=True)
