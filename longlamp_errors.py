"""Every error type of the toolkit, one class per kind of refusal.

The command contract (`longlamp_cli.run_command`): a `ValueError` raised by the project's own code is bad input and
becomes one `error:` line and exit code 2, so every refusal below is a ValueError. A name is kept apart from
another only where a caller catches it apart (PromptBudgetError, PublishError). The two RuntimeErrors are not bad
input: missing NLTK data has its own exit code (3), and a failed runner stage keeps its traceback.
"""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be used as given: a dataset source, a row, a gold or prediction file, a per-sample file;
    the message names the file, row and field."""


class ModelLoadError(ValueError):
    """A model, adapter or tokenizer cannot be loaded or used from the address given, or the server serving it
    refuses, answers something unreadable or fails past the retry budget."""


class UsageError(ValueError):
    """A flag that is unknown, missing or has a value of the wrong form."""


class ConfigError(ValueError):
    """A setting (a training setting, a key of an experiment file) is missing, unknown or inconsistent."""


class RunFolderError(ValueError):
    """A run folder (or a Hub repository read as one) cannot be used as asked: another live run holds it, it holds
    another run's outputs, or it lacks a file the reader needs."""


class PromptBudgetError(ValueError):
    """The task input alone does not fit the prompt budget (profile items are shortened, the input never is)."""


class PublishError(ValueError):
    """A push or an export could not be done as asked: bad arguments, a refused token, a server or network
    failure."""


class MissingNLTKDataError(RuntimeError):
    """METEOR cannot run: NLTK's WordNet or Punkt data is not where NLTK looks (exit code 3, with the fix)."""


class StageError(RuntimeError):
    """A runner stage's command failed: the message carries the end of its log."""
