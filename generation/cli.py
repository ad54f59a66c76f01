"""The flags of generating with a model, as argument dataclasses (longlamp_cli explains how commands combine them):
the model, the backend, vLLM's engine, a served model, and decoding."""

from __future__ import annotations

from dataclasses import dataclass

from generation import BACKENDS
from generation.dtypes import DTYPES
from longlamp_cli import arg, non_negative_int, positive_int

DEFAULT_MAX_NEW_TOKENS = 512


@dataclass(kw_only=True)
class ModelArguments:
    """The language model a command trains or generates with."""

    _argument_group_name = "model"
    model_name: str = arg("Hub id or local folder of the language model (a PEFT adapter folder too, where the "
                          "command loads one; with --backend openai, the name the server knows it by)",
                          aliases=("--model_addr",))
    dtype: str = arg("dtype of the weights; auto: float32 for weights being trained, the mixed-precision dtype for "
                     "a frozen LoRA base under mixed precision, else bfloat16 on a GPU that has it and float32 "
                     "elsewhere (generation/dtypes.py)", default="auto", choices=DTYPES, aliases=("--model_dtype",))


@dataclass(kw_only=True)
class BackendArguments:
    """What runs the model here."""

    _argument_group_name = "backend"
    backend: str = arg("auto: vLLM when installed with a GPU (or as a CPU build) and the model and decoding suit it, "
                       "else transformers; openai: a model served elsewhere (--api_base)", default="auto",
                       choices=("auto", *BACKENDS))
    batch_size: int | None = arg("prompts per batch (default: the backend's, 8 transformers, 256 vLLM, 1024 openai)",
                                 default=None, type=positive_int)
    device_map: str | None = arg("transformers device map (default: auto with a GPU, else CPU)", default=None)
    base_model: str | None = arg("base model of a PEFT adapter, instead of the one its config names (default: "
                                 "the adapter's)", default=None)
    trust_remote_code: bool = arg("run the model repository's own Python code (off: only trusted models)",
                                  default=False)


@dataclass(kw_only=True)
class VllmArguments:
    """vLLM's engine (refused with any other backend)."""

    _argument_group_name = "vllm"
    tensor_parallel_size: int | None = arg("vLLM: GPUs to split the model over (default: 1)", default=None,
                                           type=positive_int)
    gpu_memory_utilization: float | None = arg("vLLM: share of GPU memory it may take (default: 0.9)", default=None)
    enforce_eager: bool | None = arg("vLLM: no CUDA graphs, less memory, slower (default: vLLM's, off)", default=None)
    max_num_seqs: int | None = arg("vLLM: sequences decoded at once (default: vLLM's)", default=None,
                                   type=positive_int)


@dataclass(kw_only=True)
class ServedArguments:
    """A model served elsewhere through an OpenAI-compatible API, by vLLM, TGI, SGLang or a hosted service
    (--backend openai; refused with any other backend)."""

    _argument_group_name = "served model"
    api_base: str | None = arg("the server's OpenAI-compatible API, e.g. http://localhost:8000/v1 (--model_name is "
                               "the model it serves) (default: none)", default=None)
    api_mode: str | None = arg("chat: the prompt as one user message, the server applies its chat template; "
                               "completions: the prompt text as built here (default: chat)", default=None,
                               choices=("chat", "completions"))
    api_key_env: str | None = arg("environment variable holding the API key (default: OPENAI_API_KEY, none sent when "
                                  "unset); the key is never written or logged", default=None)
    tokenizer: str | None = arg("tokenizer of the served model (Hub id or folder), to count the prompt budget "
                                "exactly (default: an approximation of 4 characters per token)", default=None)
    max_concurrency: int | None = arg("requests in flight at most (default: 16)", default=None, type=positive_int)
    request_timeout: float | None = arg("seconds one request may take before it is retried (default: 600)",
                                        default=None)
    max_retries: int | None = arg("tries after the first on 429, 5xx, timeouts and dropped connections, with "
                                  "exponential backoff and jitter or the server's Retry-After (default: 8)",
                                  default=None, type=non_negative_int)
    retry_backoff: float | None = arg("seconds before the first retry, doubled each time (default: 1)", default=None)


@dataclass(kw_only=True)
class DecodingArguments:
    """How text is generated."""

    _argument_group_name = "decoding"
    max_new_tokens: int = arg("tokens to generate at most", default=DEFAULT_MAX_NEW_TOKENS, type=positive_int)
    do_sample: bool = arg("sample instead of greedy decoding", default=False)
    temperature: float = arg("with --do_sample", default=1.0)
    top_p: float = arg("with --do_sample (1.0: no cut)", default=1.0)
    num_beams: int = arg("beam search when > 1", default=1, type=positive_int)
    seeds: str | None = arg("comma-separated sampling seeds, e.g. 0,1,2 (with --do_sample, instead of --seed): one "
                            "run per seed in OUTPUT_DIR/seed<N>/, and OUTPUT_DIR/seeds.json with each metric's mean "
                            "and standard deviation across them (default: none, --seed alone)", default=None)
    keep_reasoning: bool = arg("keep <think>...</think> blocks in the predictions (removed by default)",
                               default=False)
