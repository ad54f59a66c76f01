"""The flags the per-user commands share (training/train_per_user.py, training/train_style_vectors.py,
evaluation/evaluate_per_user.py): the model, the users' data and the prompt, from the shared argument dataclasses
(longlamp_cli explains how commands combine them)."""

from __future__ import annotations

from dataclasses import dataclass

from generation.cli import BackendArguments, DecodingArguments, ModelArguments
from longlamp_cli import DataArguments, DataSourceArguments, OutputArguments, arg, not_a_flag, reuse
from retrieval.cli import DEFAULT_RETRIEVER, PromptSettingsArguments


# Fields come from the last base first: the model, the data, the prompt, the output folder, then its own.
@dataclass(kw_only=True)
class PerUserArguments(OutputArguments, PromptSettingsArguments, DataSourceArguments, ModelArguments):
    """The users whose methods are trained or evaluated, and their prompts."""

    _argument_group_name = "per-user"
    data: str = arg("the users' data: a LongLaMP config name or a file/folder")
    # Per-user methods are trained on the evaluated users' own profiles and choose their settings on validation
    # (train_style_vectors.py's --selection_split): the test split is the one they evaluate.
    split: str = reuse(DataArguments, "split", default="test")
    from_training_record: dict | None = not_a_flag()  # the settings taken from a fine-tuned model's record

    def __post_init__(self):
        self.task = self.task or self.data
        self.retriever = self.retriever or DEFAULT_RETRIEVER


@dataclass(kw_only=True)
class PerUserGenerationArguments(PerUserArguments):
    """What the per-user commands that generate add (train_style_vectors.py, evaluate_per_user.py)."""

    max_eval_examples: int | None = reuse(DataArguments, "max_eval_examples")
    max_new_tokens: int = reuse(DecodingArguments, "max_new_tokens")
    batch_size: int | None = reuse(BackendArguments, "batch_size")
