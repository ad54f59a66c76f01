"""What every command shares: the entry-point contract and the one vocabulary of flags.

Contract: `main(argv) -> int`, run through `run_command`. Bad input (a `ValueError` raised by the project's own
checks, which its errors subclass: data, config, model-loading, run-folder and usage errors) becomes one
`<prog>: error: <message>` line on stderr and exit code 2, with no traceback: the message says what to fix.
Anything else, a ValueError raised inside a library included, is a bug and keeps its traceback. `ArgumentParser`
turns argparse's own errors into such a `UsageError`, so a bad flag also gives one line, and its `--help` shows
every default and every choice.

Vocabulary: `FLAGS` defines each concept once (its canonical flag, the older names kept as aliases, its help);
`add_flag` puts one on a command's parser. docs/flags.md is the table across the commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from longlamp_errors import UsageError

EXIT_BAD_INPUT = 2
logger = logging.getLogger("longlamp")
DEFAULT_RETRIEVER_MODEL = "facebook/contriever"


def json_object(flag: str, text: str | None) -> dict:
    """The JSON object a flag such as --chat_template_kwargs holds ({} when not given); UsageError naming the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{flag} is not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object, got {text!r}")
    return value


# The project's top-level modules and packages (pyproject.toml's); "__main__" is a command run as a script.
PROJECT_MODULES = frozenset({"longlamp", "longlamp_tasks", "longlamp_errors", "longlamp_io", "longlamp_runs",
                             "longlamp_cli", "longlamp_prompts", "retrieval", "scoring", "generation",
                             "personalization", "publishing", "training", "evaluation", "benchmark_runner",
                             "__main__"})


def raised_by_the_project(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is the project's own code: a check that refused on
    purpose. A ValueError raised inside a library (torch, accelerate, ...) is an unexpected failure: a bug to see.
    Judged by the frame's module name, so it holds for an editable and a regular install alike."""
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    if trace is None:
        return True
    module = trace.tb_frame.f_globals.get("__name__", "")
    return module.split(".")[0] in PROJECT_MODULES


def run_command(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
                prog: str | None = None) -> int:
    """Call main(argv); a ValueError the project raised becomes one error line and exit code 2; one raised inside
    a library keeps its traceback (it is not a refusal the project wrote a message for)."""
    try:
        return main(argv) or 0
    except ValueError as error:
        if not raised_by_the_project(error):
            raise
        print(f"{prog or Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each help text (not for flags without one), the description kept as written."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults and choices in `--help`, and errors raised as `UsageError` (one line, exit 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


@dataclass(frozen=True)
class Flag:
    """One concept's flag: the canonical name first, then the aliases every command keeps."""

    names: tuple[str, ...]
    help: str
    options: dict[str, Any] = field(default_factory=dict)


# concept -> its flag. Aliases named here are kept by every command that takes the concept; command-specific
# aliases (rank_profiles' --model_name for the encoder) are passed to add_flag by that command.
FLAGS: dict[str, Flag] = {
    "model_name": Flag(("--model_name", "--model_addr"), "Hub id or local folder of the language model "
                       "(a PEFT adapter folder too, where the command loads one)"),
    "retriever_model": Flag(("--retriever_model",), "dense encoder of the contriever retriever (Hub id or folder)",
                            {"default": DEFAULT_RETRIEVER_MODEL}),
    "dtype": Flag(("--dtype",), "dtype of the weights", {"choices": ("auto", "bfloat16", "float16", "float32"),
                                                         "default": "auto"}),
    "max_prompt_length": Flag(("--max_prompt_length", "--max_prompt_tokens"),
                              "token budget of a prompt (profile items are shortened to fit it, the task input "
                              "never); default: longlamp_prompts.default_prompt_budget", {"type": int}),
    "max_new_tokens": Flag(("--max_new_tokens",), "tokens to generate at most", {"type": int}),
    "use_chat_template": Flag(("--use_chat_template",), "wrap prompts in the tokenizer's chat template "
                              "(default: when the tokenizer has one)",
                              {"action": argparse.BooleanOptionalAction, "default": None}),
    "num_workers": Flag(("--num_workers",), "worker processes (threads for bm25 ranking)", {"type": int}),
    "cache_dir": Flag(("--cache_dir",), "datasets cache folder (default: the datasets library's)"),
    "revision": Flag(("--revision",), "branch, tag or commit of the Hub's LongLaMP data for config names (default: "
                                      "the newest); recorded with the run"),
    "embedding_cache_dir": Flag(("--embedding_cache_dir",), "cache of dense embeddings "
                                "(default: $LONGLAMP_CACHE/embeddings, else ~/.cache/longlamp/embeddings)"),
    "data_dir": Flag(("--data_dir",), "local copy of the LongLaMP data (e.g. data/sample) instead of the Hub"),
    "task": Flag(("--task",), "task or config name, e.g. product_review_user"),
    "split": Flag(("--split",), "which split is read: of a config name (train, validation or test), of a "
                  "save_to_disk folder holding several, or the id prefix of a LaMP-style questions file; "
                  "a single data file is read whole", {"default": "validation"}),
    "max_eval_examples": Flag(("--max_eval_examples",), "use only the first N rows (a quick look)", {"type": int}),
    "use_profile": Flag(("--use_profile",), "personalise: put retrieved profile items in the prompt",
                        {"action": "store_true"}),
    "retriever": Flag(("--retriever",), "ranking model for profile items", {"default": "bm25"}),
    "num_retrieved": Flag(("--num_retrieved",), "profile items per prompt", {"type": int}),
    "is_ranked": Flag(("--is_ranked",), "profiles are already ranked (retrieval/rank_profiles.py): take the first "
                      "--num_retrieved items; the task and retriever are read from the data's ranked_by column",
                      {"action": "store_true"}),
    "seed": Flag(("--seed",), "random seed", {"type": int}),
    "output_dir": Flag(("--output_dir",), "the run's folder: everything it writes, and what a restart resumes from"),
    "batch_size": Flag(("--batch_size",), "prompts per generate call", {"type": int}),
    "max_target_length": Flag(("--max_target_length",), "longest target in tokens (training)", {"type": int}),
    "lora_r": Flag(("--lora_r",), "LoRA rank", {"type": int}),
    "lora_alpha": Flag(("--lora_alpha",), "LoRA alpha", {"type": int}),
    "lora_dropout": Flag(("--lora_dropout",), "LoRA dropout", {"type": float}),
    "lora_target_modules": Flag(("--lora_target_modules",), "comma-separated module names, all-linear, or auto "
                                "(peft's per-architecture default)", {"default": "auto"}),
    "learning_rate": Flag(("--learning_rate",), "peak learning rate", {"type": float}),
    "num_train_epochs": Flag(("--num_train_epochs",), "passes over the training data", {"type": int}),
    "per_device_train_batch_size": Flag(("--per_device_train_batch_size",), "examples per step on each process",
                                        {"type": int}),
    "max_grad_norm": Flag(("--max_grad_norm",), "gradient clipping norm (0 disables)", {"type": float}),
    "log_level": Flag(("--log_level",), "how much the run logs", {"choices": ("debug", "info", "warning"),
                                                                  "default": "info"}),
}


def add_flag(parser, concept: str, *aliases: str, help: str | None = None, **options):
    """Add the shared flag of `concept` to a parser or argument group; `options` override its defaults."""
    flag = FLAGS[concept]
    settings = {**flag.options, **options}
    if settings.get("type") is int and "metavar" not in settings:
        settings["metavar"] = "N"
    return parser.add_argument(*flag.names, *aliases, dest=concept, help=help or flag.help, **settings)


def non_negative_int(value: str) -> int:
    """argparse type: an integer >= 0."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def check_output_file(path: str | Path, flag: str) -> Path:
    """A file path a command will write: refused (before any work) when it is a folder or its parent a file."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give the path of the file to write")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
    return path


def check_folder(path: str | Path, flag: str) -> Path:
    """A folder a command will write into (created when missing): refused when it is a file; made absolute."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder")
    return path.absolute()


def warn_ignored_profile_flags(use_profile: bool, given: Sequence[str], warn: bool = True) -> str | None:
    """Retrieval flags given without --use_profile do nothing: say so loudly (and return what was said, for the
    run's record), since the run is then the non-personalised baseline."""
    if use_profile or not given:
        return None
    message = (f"{' and '.join(given)} given without --use_profile: this run is the NON-PERSONALISED baseline (no "
               "profile items in the prompts); add --use_profile to personalise")
    if warn:
        logger.warning("%s", message)
    return message
