"""Shared pieces of the training tests: small data cut from the bundled sample, flags for short runs, launching
real `accelerate launch` processes, and resetting accelerate's state (its fixtures are in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from longlamp_cli import as_flags

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
CONFIG = "product_review_user"


def short_sample(directory: Path, split: str, words: int = 12, limit: int | None = None) -> Path:
    """The bundled sample's rows with outputs cut to `words` words (short sequences keep CPU runs fast),
    saved as a `save_to_disk` folder, the form `retrieval/rank_profiles.py` writes."""
    import longlamp

    path = Path(directory) / f"{CONFIG}-{split}-{words}w"
    if not path.exists():
        rows = longlamp.load_split(CONFIG, split, data_dir=str(SAMPLE), cache_dir=str(Path(directory) / "cache"))
        if limit:
            rows = rows.select(range(limit))
        rows.map(lambda row: {"output": " ".join(row["output"].split()[:words])}).save_to_disk(str(path))
    return path


def run_flags(model: Path, output_dir: Path, train: Path, validation: Path | None = None, **overrides) -> list[str]:
    """Command-line flags of a short run; overrides as name=value (True for a bare flag, False to negate). The
    datasets cache (where encoded data is kept) is beside the output folder, in the test's own folder."""
    flags = {
        "task": CONFIG, "train_data": train, "validation_data": validation, "model_name": model,
        "output_dir": output_dir, "cache_dir": Path(output_dir).parent / "datasets-cache", "max_steps": 3,
        "per_device_train_batch_size": 2, "learning_rate": 3e-3,
        "logging_steps": 1, "max_prompt_length": 128, "max_target_length": 128, "report_to": "none",
        "log_level": "warning",
    }
    flags.update(overrides)
    return as_flags(flags)


# Runs training as train.py does; with TEST_KILL_AFTER_STEP=N every process SIGKILLs itself once checkpoint N is
# complete (a preempted job: no handler runs); a run that finishes saves what its rank holds, for comparisons.
DRIVER = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO)!r})
import training.loop
from accelerate.state import PartialState
from safetensors.torch import save_file
from training.checkpoints import save_checkpoint
from training.config import parse_args

KILL_AFTER = int(os.environ.get("TEST_KILL_AFTER_STEP", "0"))


def save_then_die(accelerator, output_dir, state, keep):
    path = save_checkpoint(accelerator, output_dir, state, keep)
    if state.global_step == KILL_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)
    return path


training.loop.save_checkpoint = save_then_die
config = parse_args(sys.argv[1:])
result = training.loop.train(config)
state = {{name: tensor.detach().contiguous() for name, tensor in result.model.state_dict().items()}}
save_file(state, f"{{config.output_dir}}/rank{{PartialState().process_index}}.safetensors")
"""


def write_driver(directory: Path) -> Path:
    path = Path(directory) / "driver.py"
    path.write_text(DRIVER)
    return path


def accelerate_launch(launch_flags: list[str], script: str | Path, argv: list[str], env: dict | None = None,
                      timeout: int = 600, killed: bool = False) -> subprocess.CompletedProcess:
    """Run `accelerate launch <launch_flags> <script> <argv>` from the repository root; fail with its output
    unless it succeeds (or, with `killed`, unless it dies)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", *launch_flags, str(script), *argv]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    done = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)
    ok = done.returncode != 0 if killed else done.returncode == 0
    assert ok, f"{' '.join(command)} ended with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done


def launch_deepspeed(stage_config: str, argv: list[str], script: Path | None = None, env: dict | None = None,
                     killed: bool = False) -> subprocess.CompletedProcess:
    """`accelerate launch` of training/train.py (or `script`) with a shipped DeepSpeed config, one CPU process (with
    several, accelerate and DeepSpeed disagree about the world size on CPU; see shared/NOTES.md)."""
    return accelerate_launch(["--config_file", str(REPO / "accelerate_configs" / stage_config), "--num_processes", "1",
                              "--mixed_precision", "no"], script or REPO / "training" / "train.py", argv, env=env,
                             killed=killed)


def train_killed_then_resumed(launch, flags: list[str], kill_after: int):
    """`launch(argv, env=..., killed=...)` a run that is SIGKILLed after checkpoint `kill_after`, then the same
    command with `--resume_from_checkpoint latest` in the same folder (its stale lock is taken over)."""
    launch(flags, env={"TEST_KILL_AFTER_STEP": str(kill_after)}, killed=True)
    return launch(flags + ["--resume_from_checkpoint", "latest"], env={})


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: dict, b: dict, atol: float = 1e-6) -> None:
    import torch

    assert a.keys() == b.keys()
    for name in a:
        difference = (a[name] - b[name]).abs().max()
        assert torch.allclose(a[name], b[name], atol=atol, rtol=0), f"{name} differs by {difference}"


def reset_accelerate() -> None:
    """Forget accelerate's per-process singletons, so that the next Accelerator is configured afresh."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
