"""The options of one zero-shot evaluation (`ZeroShotOptions`, which `evaluate_llm.py` turns into its flags) and
the checks that refuse settings which cannot work, before anything is read."""

from __future__ import annotations

from dataclasses import dataclass

from generation import backend_class
from generation.cli import BackendArguments, DecodingArguments, ModelArguments, ServedArguments, VllmArguments
from generation.decoding import GenerationSettings
from generation.http_api import check_request_settings, read_api_key
from generation.progress import share
from longlamp_cli import (
    DataArguments,
    OutputArguments,
    PromptArguments,
    SeedArguments,
    arg,
    not_a_flag,
    warn_ignored_profile_flags,
)
from retrieval.cli import ProfileArguments, retrieval_flags_set


# The bases are listed last first: a dataclass takes its fields from the last base first (data, then retrieval, ...).
@dataclass(kw_only=True)
class ZeroShotOptions(OutputArguments, SeedArguments, DecodingArguments, PromptArguments, ServedArguments,
                      VllmArguments, BackendArguments, ModelArguments, ProfileArguments, DataArguments):
    """Everything one evaluation needs: the shared argument dataclasses, and the two settings only a zero-shot run
    has. `evaluation/evaluate_llm.py`'s flags are these fields."""

    _argument_group_name = "zero-shot"
    validation_data: str = arg("a LongLaMP config name (e.g. product_review_user) or a local file/folder of rows")
    compare_no_profile: bool = arg("also run without profile (into OUTPUT_DIR/no_profile) and compare the scores",
                                   default=False)
    from_training_record: dict | None = not_a_flag()  # the settings taken from a fine-tuned model's record

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                                  temperature=self.temperature, top_p=self.top_p, num_beams=self.num_beams,
                                  seed=self.seed)

    def seed_list(self) -> list[int]:
        """The seeds to run: --seeds (at least two, distinct, only when sampling), else --seed alone."""
        if self.seeds is None:
            return [self.seed]
        try:
            seeds = [int(part) for part in self.seeds.split(",")]
        except ValueError:
            raise ValueError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {self.seeds!r}") from None
        if not self.do_sample:
            raise ValueError("--seeds is for sampling runs (greedy decoding gives every seed the same output); "
                             "add --do_sample")
        if len(seeds) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds needs at least two distinct seeds (for one, use --seed); got {self.seeds!r}")
        return seeds

    def backend_options(self, served: bool = False) -> dict:
        """The backend options given (the others keep the backend's defaults; one it does not take is refused).
        A served model has no dtype and runs no code here: those two are passed only when set."""
        given = {} if served else {"dtype": self.dtype, "trust_remote_code": self.trust_remote_code}
        if served and self.dtype != "auto":
            given["dtype"] = self.dtype
        for name in ("device_map", "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs",
                     *SERVED_OPTIONS):
            if getattr(self, name) is not None:
                given[name] = getattr(self, name)
        return given


SERVED_OPTIONS = ("api_base", "api_mode", "api_key_env", "max_concurrency", "request_timeout", "max_retries",
                  "retry_backoff")


def check_options(options: ZeroShotOptions) -> None:
    """Refuse settings that cannot work, before anything is read; warn about flags that do nothing."""
    if options.compare_no_profile and not options.use_profile:
        raise ValueError("--compare_no_profile compares against a run with --use_profile; add --use_profile")
    for name in ("max_eval_examples", "num_retrieved", "batch_size", "max_prompt_length", "max_num_seqs",
                 "tensor_parallel_size"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be at least 1, got {value}")
    options.template_kwargs()
    options.generation()
    options.seed_list()
    check_served_options(options, is_served(options))


def is_served(options: ZeroShotOptions) -> bool:
    """Whether the backend asked for runs the model elsewhere (`auto` never chooses one)."""
    return options.backend != "auto" and backend_class(options.backend).served


def ignored_profile_flags(options: ZeroShotOptions, warn: bool = True) -> str | None:
    """The warning for retrieval flags given without --use_profile (the run is the non-personalised baseline)."""
    return warn_ignored_profile_flags(options.use_profile, retrieval_flags_set(options), warn)


def api_mode(options: ZeroShotOptions) -> str:
    return options.api_mode or "chat"


def check_served_options(options: ZeroShotOptions, served: bool) -> None:
    """--api_base and a served backend go together; chat mode always gets the server's template."""
    if not served:
        given = [f"--{name}" for name in (*SERVED_OPTIONS, "tokenizer") if getattr(options, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a served model; add "
                             "--backend openai")
        return
    if options.api_base is None:
        raise ValueError(f"--backend {options.backend} needs --api_base, e.g. http://localhost:8000/v1")
    check_request_settings(**{name: getattr(options, name) for name in SERVED_OPTIONS if name not in ("api_mode",
                                                                                                     "api_key_env")})
    read_api_key(options.api_key_env)  # a variable named but unset fails here, before any work
    if options.base_model:
        raise ValueError("--base_model is for a model loaded here; a served model is only named (--model_name)")
    if api_mode(options) == "chat" and options.use_chat_template is False:
        raise ValueError("--api_mode chat: the server wraps the message in its chat template; for prompts without "
                         "it use --api_mode completions --no-use_chat_template")
    if share()[1] > 1:
        raise ValueError("a served model takes the run's requests from one process (--max_concurrency); run it "
                         "without accelerate launch")
