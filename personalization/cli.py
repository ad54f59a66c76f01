"""The flags the per-user commands share (training/train_per_user.py, training/train_style_vectors.py,
evaluation/evaluate_per_user.py): the model, the users' data and the prompt, from the shared argument dataclasses
(longlamp_cli explains how commands combine them), and the profile summary in the prompt (+PAG), which per-user
training and evaluation take alike."""

from __future__ import annotations

from dataclasses import dataclass

from generation.cli import BackendArguments, DecodingArguments, ModelArguments, ServedArguments
from longlamp_cli import DataArguments, DataSourceArguments, OutputArguments, arg, not_a_flag, positive_int, reuse
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


@dataclass(kw_only=True)
class ProfileSummaryArguments:
    """A summary of the user's profile in the prompt (OPPU's +PAG): in the prompts per-user adapters are trained on
    (train_per_user.py) and in the prompts generated from (evaluate_per_user.py), with the same settings on both
    sides (evaluation refuses adapters trained with others)."""

    _argument_group_name = "profile summary"
    use_summary: bool = arg("put a summary of the user's profile in the prompt", default=False)
    summary_of: str = arg("summarise the whole profile (once per user) or each example's retrieved items",
                          default="profile", choices=("profile", "retrieved"))
    summary_cache_dir: str | None = arg("where summaries are cached (default: OUTPUT_DIR/summaries)", default=None)
    summary_max_new_tokens: int = arg("summary length in tokens, at most", default=128, type=positive_int)
    summary_model: str | None = arg("write the summaries with this model instead of the run's own: a Hub id or "
                                    "folder, or with --summary_backend openai the name a server knows (default: the "
                                    "run's model)", default=None)
    summary_backend: str = reuse(BackendArguments, "backend", help="the backend of --summary_model, as "
                                 "evaluate_llm.py's --backend")
    summary_api_base: str | None = arg("with --summary_backend openai: the server's API, e.g. "
                                       "http://localhost:8000/v1 (its key: OPENAI_API_KEY) (default: none)",
                                       default=None)
    # Without these a silent summary server holds the run for 9 tries of 600 s (generation/http_api.py's defaults).
    summary_request_timeout: float | None = reuse(ServedArguments, "request_timeout", help="with --summary_backend "
                                                  "openai: seconds one summary request may take before it is retried "
                                                  "(default: 600)")
    summary_max_retries: int | None = reuse(ServedArguments, "max_retries", help="with --summary_backend openai: "
                                            "tries after the first on 429, 5xx, timeouts and dropped connections "
                                            "(default: 8)")


def summary_refusal(args) -> str | None:
    """What a command's summary flags (`ProfileSummaryArguments`, beside `PerUserArguments`) rule out before anything
    is loaded, or None."""
    from generation import backend_class

    if args.summary_of == "retrieved" and not args.use_profile:
        return "--summary_of retrieved summarises the retrieved items: add --use_profile"
    if (args.summary_model or args.summary_api_base) and not args.use_summary:
        return "--summary_model and --summary_api_base choose who writes the summaries: add --use_summary"
    served = args.summary_backend != "auto" and backend_class(args.summary_backend).served
    if args.use_summary and served and not (args.summary_model and args.summary_api_base):
        return (f"--summary_backend {args.summary_backend} writes the summaries with a served model: give "
                "--summary_model (the name the server knows) and --summary_api_base")
    given = [f"--{name}" for name in ("summary_api_base", "summary_request_timeout", "summary_max_retries")
             if getattr(args, name) is not None]
    if given and not served:
        return (f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a served summary model: add "
                "--summary_backend openai")
    if served:
        from generation.http_api import check_request_settings

        try:
            check_request_settings(api_base=args.summary_api_base, request_timeout=args.summary_request_timeout,
                                   max_retries=args.summary_max_retries)
        except ValueError as error:
            from personalization.summaries import as_summary_flags

            return as_summary_flags(str(error))
    return None
