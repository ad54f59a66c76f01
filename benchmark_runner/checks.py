"""Every stage's command line checked by its command's own parser before the first stage runs: a flag the command
does not have, a value it refuses (`max_new_tokens: -5`, an unknown retriever) is one error naming the experiment
file and the stage, not a failure hours into the grid."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from benchmark_runner.stages import REPO, Stage
from longlamp_errors import ConfigError, UsageError

# Each stage command's parser: module and function (train.py's parser lives in training.config).
PARSERS = {
    "retrieval/rank_profiles.py": ("retrieval.rank_profiles", "make_parser"),
    "training/train.py": ("training.config", "parser"),
    "training/train_per_user.py": ("training.train_per_user", "make_parser"),
    "training/train_style_vectors.py": ("training.train_style_vectors", "make_parser"),
    "evaluation/evaluate_llm.py": ("evaluation.evaluate_llm", "make_parser"),
    "evaluation/evaluate_per_user.py": ("evaluation.evaluate_per_user", "make_parser"),
    "evaluation/eval_task.py": ("evaluation.eval_task", "make_parser"),
}


def script_arguments(command: list[str]) -> tuple[str, list[str]]:
    """(script, its arguments) of `python X.py ...` or `accelerate launch ... X.py ...`."""
    at = next(i for i, part in enumerate(command) if part in PARSERS)
    return command[at], command[at + 1:]


def check_commands(stages: list[Stage], where: str) -> None:
    """Parse each stage's arguments with its command's parser (nothing runs); ConfigError on the first refusal."""
    parsers = {}
    for stage in stages:
        script, arguments = script_arguments(stage.portable_command())
        if script not in parsers:
            module, function = PARSERS[script]
            parsers[script] = getattr(importlib.import_module(module), function)()
            parsers[script].prog = script.rsplit("/", 1)[-1]  # its errors name the command, not the runner
        quiet = logging.getLogger("longlamp")  # a check, not a run: no "used as defaults" notices
        level, quiet.level = quiet.level, logging.ERROR
        try:
            parsers[script].parse_args(arguments)
        except UsageError as error:
            raise ConfigError(f"{where}: stage {stage.name}: {script} refuses its command line: {error}") from None
        finally:
            quiet.setLevel(level)


def check_allocations(stages: list[Stage], resources: dict, where: str) -> None:
    """--executor slurm: a stage launched by `accelerate launch` runs its processes inside its job's allocation, so
    the job must ask for at least as many GPUs as its accelerate config starts processes (one node per job)."""
    import yaml

    for stage in stages:
        command = stage.portable_command()
        if "--config_file" not in command or "launch" not in command:
            continue
        config = command[command.index("--config_file") + 1]
        path = REPO / config if (REPO / config).is_file() else Path(config)
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        single = settings.get("distributed_type") == "NO" and settings.get("num_processes", 1) == 1
        if settings.get("use_cpu") or single:
            continue
        if int(settings.get("num_machines", 1)) > 1:
            raise ConfigError(f"{where}: stage {stage.name}: {config} spans {settings['num_machines']} machines; "
                              "a SLURM job of this runner is one node: choose a one-node accelerate config")
        processes, gpus = int(settings.get("num_processes", 1)), int(resources[stage.kind]["gpus"])
        if processes > gpus:
            raise ConfigError(f"{where}: stage {stage.name}: {config} starts {processes} processes (one per GPU) "
                              f"but resources.{stage.kind}.gpus is {gpus}: set resources.{stage.kind}.gpus to "
                              f"{processes}, or use a config with fewer processes")
