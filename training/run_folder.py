"""The run an --output_dir holds: one run per folder, one live process writing it.

A run records its settings (its run record) in `training_run.json` when it starts. A later run in the same folder is
the same run (a restart, or a resume) when only settings that do not change the run differ (see
`training.record.RESUMABLE`); any
other difference (model, data, training settings) would silently replace `final/`, `best/` and the checkpoints,
so it is refused unless `--overwrite_output_dir` asks for the old outputs to be removed first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from longlamp_errors import RunFolderError
from longlamp_runs import (
    BEST_DIR,
    CHECKPOINTS_DIR,
    FINAL_DIR,
    MERGED_DIR,
    STATE_FILE,
    TEST_PREDICTIONS_FILE,
    TRAINING_RECORD_FILE,
    TRAINING_RUN_FILE,
    RunRecord,
    describe_differences,
    read_model_record,
    read_record,
    write_record,
)
from training.checkpoints import TrainerState, list_checkpoints
from training.config import TrainConfig
from training.record import changes

# What a training run writes into its folder; --overwrite_output_dir removes exactly these.
OUTPUTS = (CHECKPOINTS_DIR, FINAL_DIR, MERGED_DIR, BEST_DIR, "logs", TEST_PREDICTIONS_FILE, TRAINING_RUN_FILE)


def recorded_run(folder: Path) -> RunRecord | None:
    """The record of the run `folder` holds: its run file, else (runs older than the file) the record of its
    final model or newest checkpoint; None when it holds no run."""
    if (folder / TRAINING_RUN_FILE).is_file():
        return read_record(folder / TRAINING_RUN_FILE)
    if (folder / FINAL_DIR / TRAINING_RECORD_FILE).is_file():
        return read_model_record(folder / FINAL_DIR / TRAINING_RECORD_FILE)[0]
    found = list_checkpoints(folder)
    return TrainerState.read(found[-1] / STATE_FILE).record(found[-1] / STATE_FILE) if found else None


def check_output_dir(config: TrainConfig, record: RunRecord) -> None:
    """Refuse an output folder that holds another run than `record`, unless --overwrite_output_dir; reads only."""
    folder = Path(config.output_dir)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--output_dir {folder} is a file, not a folder")
    recorded = recorded_run(folder) if folder.is_dir() else None
    if recorded is None or config.overwrite_output_dir:
        return
    changed = changes(recorded, record)
    if changed:
        listed = describe_differences(changed)
        raise RunFolderError(f"--output_dir {folder} holds another run ({listed}); choose another folder, or pass "
                             "--overwrite_output_dir to replace its outputs")
    if config.resume_from_checkpoint is None and list_checkpoints(folder):
        # Starting again beside them would mix two attempts' checkpoints (and prune the new ones first).
        raise RunFolderError(f"--output_dir {folder} holds checkpoints of this run: pass --resume_from_checkpoint "
                             "latest to continue it, or --overwrite_output_dir to start it again")


def claim_output_dir(config: TrainConfig, record: RunRecord) -> None:
    """On the main process, holding the folder's lock: remove another run's outputs when asked, record this run."""
    folder = Path(config.output_dir)
    if config.overwrite_output_dir:
        for name in OUTPUTS:
            path = folder / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    write_record(folder / TRAINING_RUN_FILE, record)
