"""The flags of profile retrieval, as argument dataclasses (longlamp_cli explains how commands combine them)."""

from __future__ import annotations

from dataclasses import dataclass

from longlamp_cli import PromptArguments, arg, positive_int, reuse
from retrieval.registry import RETRIEVERS

DEFAULT_RETRIEVER = "bm25"
# Profile items per prompt, in every command: the paper's personalised results use k=4 (its Contriever k=4 runs),
# and so does lm-evaluation-harness's task. Training defaulted to 1 before, so a model fine-tuned with the
# defaults was evaluated with four items it never saw; now both take 4.
DEFAULT_NUM_RETRIEVED = 4
DEFAULT_RETRIEVER_MODEL = "facebook/contriever"


@dataclass(kw_only=True)
class RetrievalArguments:
    """Which retriever ranks a user's profile items."""

    _argument_group_name = "retrieval"
    retriever: str | None = arg(f"ranking model for profile items (default: {DEFAULT_RETRIEVER}; with --is_ranked, "
                                "the one that ranked the data)", default=None, choices=tuple(RETRIEVERS))
    retriever_model: str = arg("dense encoder of the contriever retriever (Hub id or folder of a Contriever-style "
                               "model)", default=DEFAULT_RETRIEVER_MODEL)
    embedding_cache_dir: str | None = arg("cache of dense embeddings (default: $LONGLAMP_CACHE/embeddings, else "
                                          "~/.cache/longlamp/embeddings)", default=None)


@dataclass(kw_only=True)
class ProfileArguments(RetrievalArguments):
    """Personalisation by retrieval: profile items in the prompt."""

    _argument_group_name = "profile"
    use_profile: bool = arg("personalise: put retrieved profile items in the prompt", default=False)
    num_retrieved: int = arg("profile items per prompt", default=DEFAULT_NUM_RETRIEVED, type=positive_int)
    is_ranked: bool = arg("profiles are already ranked (retrieval/rank_profiles.py): take the first "
                          "--num_retrieved items; the task and retriever are read from the data's ranked_by column",
                          default=False)


@dataclass(kw_only=True)
class PromptSettingsArguments:
    """The settings that decide a prompt, those a fine-tuned model records (longlamp_runs.TRAINED_SETTINGS) and is
    evaluated with by default: for the commands that take them without the rest of their concepts."""

    use_profile: bool = reuse(ProfileArguments, "use_profile")
    retriever: str | None = reuse(ProfileArguments, "retriever")
    retriever_model: str = reuse(ProfileArguments, "retriever_model")
    num_retrieved: int = reuse(ProfileArguments, "num_retrieved")
    max_prompt_length: int | None = reuse(PromptArguments, "max_prompt_length")
    use_chat_template: bool | None = reuse(PromptArguments, "use_chat_template")


def retrieval_flags_set(arguments) -> list[str]:
    """The retrieval flags of an argument dataclass set away from their defaults (which do nothing without
    --use_profile)."""
    fields = arguments.__dataclass_fields__
    return [f"--{name}" for name in ("retriever", "num_retrieved", "is_ranked")
            if name in fields and getattr(arguments, name) != fields[name].default]
