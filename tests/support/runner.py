"""The experiment runner (scripts/run_benchmark.py) at a reduced size, for the tests that run whole grids."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"


def reduced_demo(model: Path, encoder: Path) -> list[str]:
    """The demo experiment, small: tiny models, k=1, two training steps, 8 new tokens, 3 evaluated examples."""
    sets = {
        "models.smollm2.model_name": model, "models.smollm2-lora.model_name": model,
        "retrievers.minilm.retriever_model": encoder, "k": "[1]",
        "models.smollm2-lora.train.max_steps": 2, "models.smollm2-lora.train.save_steps": 1,
        "models.smollm2-lora.train.max_train_examples": 4, "models.smollm2-lora.train.max_eval_examples": 2,
        "evaluate.max_new_tokens": 8, "evaluate.limit": 3, "scoring.bootstrap": 200,
    }
    return [f"{key}={value}" for key, value in sets.items()]


def runner(output: Path, sets: list[str], *extra: str, config: Path = DEMO) -> list[str]:
    """The runner's command line on `config` into `output` (its datasets cache beside it)."""
    command = [sys.executable, str(REPO / "scripts" / "run_benchmark.py"), "--config", str(config),
               "--output_dir", str(output), "--cache_dir", str(output.parent / "datasets-cache"), *extra]
    for item in sets:
        command += ["--set", item]
    return command


def commands_run(stage_folder: Path) -> int:
    """How many times a stage's command was started (each start appends its `$ command` line to stage.log)."""
    return sum(line.startswith("$ ") for line in (stage_folder / "stage.log").read_text().splitlines())
