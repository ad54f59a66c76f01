"""The options of one zero-shot evaluation (`ZeroShotOptions`, which `evaluate_llm.py` turns into its flags) and
the checks that refuse settings which cannot work, before anything is read."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from generation import BACKENDS, backend_class
from generation.decoding import GenerationSettings
from generation.http_api import check_request_settings, read_api_key
from generation.progress import share
from longlamp_cli import DEFAULT_RETRIEVER_MODEL, FLAGS, add_flag, json_object, warn_ignored_profile_flags

DEFAULT_RETRIEVER, DEFAULT_NUM_RETRIEVED = "bm25", 4


def _option(help: str, group: str, default=None, **argparse_options):
    return field(default=default, metadata={"help": help, "group": group, **argparse_options})


@dataclass(frozen=True)
class ZeroShotOptions:
    """Everything one evaluation needs. `evaluation/evaluate_llm.py` builds its flags from these fields (the
    shared concepts through longlamp_cli.FLAGS), so the two cannot drift apart."""

    validation_data: str = _option("a LongLaMP config name (e.g. product_review_user) or a local file/folder of "
                                   "rows", "data", required=True)
    model_name: str = _option("", "model", required=True)
    output_dir: str = _option("where predictions, prompts and scores go", "output", required=True)
    task: str | None = _option("config, task or scorer task name (LongLaMP_product_review_user); needed when "
                               "--validation_data is a file or folder, unless it is ranked data whose ids name it",
                               "data")
    split: str = _option("", "data", default="validation")
    data_dir: str | None = _option("", "data")
    cache_dir: str | None = _option("", "data")
    revision: str | None = _option("", "data")
    max_eval_examples: int | None = _option("", "data")
    use_profile: bool = _option("", "personalization", default=False)
    retriever: str | None = _option("bm25 (default), bm25_reference, contriever, recency, random; with --is_ranked "
                                    "read from the data", "personalization")
    num_retrieved: int | None = _option(f"profile items per prompt (default: {DEFAULT_NUM_RETRIEVED})",
                                        "personalization")
    is_ranked: bool = _option("", "personalization", default=False)
    retriever_model: str = _option("", "personalization", default=DEFAULT_RETRIEVER_MODEL)
    embedding_cache_dir: str | None = _option("", "personalization")
    compare_no_profile: bool = _option("also run without profile (into OUTPUT_DIR/no_profile) and compare the "
                                       "scores", "personalization", default=False)
    base_model: str | None = _option("base model of a PEFT adapter, instead of the one its config names", "model")
    trust_remote_code: bool = _option("run the model repository's own Python code (off: only trusted models)",
                                      "model", default=False)
    backend: str = _option("auto: vLLM when installed with a GPU (or as a CPU build) and the model and decoding "
                           "suit it, else transformers", "model", default="auto", choices=("auto", *BACKENDS))
    batch_size: int | None = _option("examples per batch (default: the backend's, 8 transformers, 256 vLLM, "
                                     "1024 openai)", "model")
    dtype: str = _option("auto: bfloat16 on a GPU that supports it, float32 on CPU", "model", default="auto")
    device_map: str | None = _option("transformers device map (default: auto with a GPU, else CPU)", "model")
    tensor_parallel_size: int | None = _option("vLLM: GPUs to split the model over (default: 1)", "vllm")
    gpu_memory_utilization: float | None = _option("vLLM: share of GPU memory it may take (default: 0.9)", "vllm")
    enforce_eager: bool | None = _option("vLLM: no CUDA graphs (less memory, slower)", "vllm")
    max_num_seqs: int | None = _option("vLLM: sequences decoded at once (default: vLLM's)", "vllm")
    api_base: str | None = _option("--backend openai: the server's OpenAI-compatible API, e.g. "
                                   "http://localhost:8000/v1 (--model_name is the model it serves)", "served")
    api_mode: str | None = _option("chat: the prompt as one user message, the server applies its chat template; "
                                   "completions: the prompt text as built here (default: chat)", "served",
                                   choices=("chat", "completions"))
    api_key_env: str | None = _option("environment variable holding the API key (default: OPENAI_API_KEY, "
                                      "none sent when unset); the key is never written or logged", "served")
    tokenizer: str | None = _option("tokenizer of the served model (Hub id or folder), to count the prompt budget "
                                    "exactly; default: an approximation of 4 characters per token", "served")
    max_concurrency: int | None = _option("requests in flight at most (default: 16)", "served")
    request_timeout: float | None = _option("seconds one request may take before it is retried (default: 600)",
                                            "served")
    max_retries: int | None = _option("tries after the first on 429, 5xx, timeouts and dropped connections, with "
                                      "exponential backoff and jitter or the server's Retry-After (default: 8)",
                                      "served")
    retry_backoff: float | None = _option("seconds before the first retry, doubled each time (default: 1)", "served")
    max_prompt_length: int | None = _option("", "prompt")
    use_chat_template: bool | None = _option("", "prompt")
    chat_template_kwargs: str | None = _option("JSON object passed to the chat template, e.g. "
                                               '{"enable_thinking": false}', "prompt")
    keep_reasoning: bool = _option("keep <think>...</think> blocks in the predictions (removed by default)",
                                   "generation", default=False)
    max_new_tokens: int = _option("", "generation", default=512)
    do_sample: bool = _option("sample instead of greedy decoding", "generation", default=False)
    temperature: float = _option("with --do_sample", "generation", default=1.0)
    top_p: float = _option("with --do_sample (1.0: no cut)", "generation", default=1.0)
    num_beams: int = _option("beam search when > 1", "generation", default=1)
    seed: int = _option("sampling seed", "generation", default=0)
    seeds: str | None = _option("comma-separated sampling seeds, e.g. 0,1,2 (with --do_sample, instead of --seed): "
                                "one run per seed in OUTPUT_DIR/seed<N>/, and OUTPUT_DIR/seeds.json with each "
                                "metric's mean and standard deviation across them", "generation")

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

    def template_kwargs(self) -> dict:
        """--chat_template_kwargs as a dict (an error naming the flag when it is not a JSON object)."""
        return json_object("--chat_template_kwargs", self.chat_template_kwargs)

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


_TYPES = {"int": int, "float": float, "str": str}


def add_option_flag(group, spec: dataclasses.Field, aliases: tuple[str, ...] = ()) -> None:
    """One ZeroShotOptions field as a flag: a shared concept as longlamp_cli defines it, any other from the
    field's own help; the field's default is the flag's. evaluate_llm.py and judge.py build their flags so."""
    meta = {key: value for key, value in spec.metadata.items() if key not in ("group", "help")}
    text = spec.metadata["help"] or None
    default = None if spec.default is dataclasses.MISSING else spec.default
    kind = spec.type.replace(" | None", "")
    if spec.name in FLAGS:
        if FLAGS[spec.name].options.get("action") is None and "type" not in FLAGS[spec.name].options:
            meta.setdefault("type", _TYPES[kind])
        add_flag(group, spec.name, *aliases, help=text, default=default, **meta)
    elif kind == "bool":
        action = argparse.BooleanOptionalAction if default is None else "store_true"
        group.add_argument(f"--{spec.name}", *aliases, action=action, default=default, help=text, **meta)
    else:
        meta.setdefault("metavar", None if "choices" in meta else kind.upper())
        group.add_argument(f"--{spec.name}", *aliases, type=_TYPES[kind], default=default, help=text, **meta)


SERVED_OPTIONS = ("api_base", "api_mode", "api_key_env", "max_concurrency", "request_timeout", "max_retries",
                  "retry_backoff")


def check_options(options: ZeroShotOptions) -> None:
    """Refuse settings that cannot work, before anything is read; warn about flags that do nothing."""
    if options.compare_no_profile and not options.use_profile:
        raise ValueError("--compare_no_profile compares against a run with --use_profile; add --use_profile")
    for name in ("max_eval_examples", "num_retrieved", "batch_size", "max_prompt_length", "max_num_seqs",
                 "tensor_parallel_size"):
        value = getattr(options, name)
        if value is not None and value < (0 if name == "num_retrieved" else 1):
            raise ValueError(f"--{name} must be at least {0 if name == 'num_retrieved' else 1}, got {value}")
    options.template_kwargs()
    options.generation()
    options.seed_list()
    check_served_options(options, is_served(options))


def is_served(options: ZeroShotOptions) -> bool:
    """Whether the backend asked for runs the model elsewhere (`auto` never chooses one)."""
    return options.backend != "auto" and backend_class(options.backend).served


def ignored_profile_flags(options: ZeroShotOptions, warn: bool = True) -> str | None:
    """The warning for retrieval flags given without --use_profile (the run is the non-personalised baseline)."""
    given = [f"--{name}" for name in ("retriever", "num_retrieved") if getattr(options, name) is not None]
    given += ["--is_ranked"] if options.is_ranked else []
    return warn_ignored_profile_flags(options.use_profile, given, warn)


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
