"""Every stage's command line checked by its command's own parser before the first stage runs: a flag the command
does not have, a value it refuses (`max_new_tokens: -5`, an unknown retriever) is one error naming the experiment
file and the stage, not a failure hours into the grid."""

from __future__ import annotations

import importlib

from benchmark_runner.stages import Stage
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
        try:
            parsers[script].parse_args(arguments)
        except UsageError as error:
            raise ConfigError(f"{where}: stage {stage.name}: {script} refuses its command line: {error}") from None
