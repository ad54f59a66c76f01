"""Text generation backends for zero-shot evaluation: batched Hugging Face transformers, and vLLM.

Both take prompts as token ids (tokenized once, the way `PromptBuilder.count` measured them, so a chat
prompt gets no second BOS) and return the decoded continuation of each. Decoding uses exactly the settings
given (`GenerationSettings`): a model's own `generation_config.json` sampling defaults (a chat model's
temperature 0.6, say) are deliberately not applied, so that a run is described completely by its settings.

The transformers backend pads on the left for decoder-only models, keeps the KV cache, and is fed
length-sorted batches (`plan_batches`) so that little compute goes to padding; in float32 its greedy output
equals one-by-one generation (tests/test_generation.py). vLLM is optional (`pip install vllm`, a CUDA GPU).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "vllm")
DTYPES = ("auto", "bfloat16", "float16", "float32")


class ModelLoadError(ValueError):
    """A model, adapter or tokenizer could not be loaded from the address given."""


@dataclass(frozen=True)
class GenerationSettings:
    """How to decode. Greedy unless `do_sample`; with sampling, `seed` makes runs repeatable."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_beams: int = 1
    seed: int = 0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {self.num_beams}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")

    def record(self) -> dict:
        """The settings that decide the output (sampling knobs only when sampling)."""
        settings = asdict(self)
        if not self.do_sample:
            for unused in ("temperature", "top_p", "seed"):
                settings.pop(unused)
        return settings


@dataclass
class ModelSource:
    """A model resolved without loading its weights: where they come from, its config and tokenizer.

    For a PEFT adapter directory (one holding `adapter_config.json`), `base` is the model it was trained
    on (from the adapter's config, unless overridden) and `adapter` the directory itself.
    """

    address: str
    base: str
    adapter: str | None
    config: object
    tokenizer: object

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.config, "is_encoder_decoder", False))

    def context_length(self) -> int | None:
        """The longest input the model takes: its position limit and the tokenizer's, whichever is smaller."""
        limits = [getattr(self.config.get_text_config(), "max_position_embeddings", None),
                  getattr(self.tokenizer, "model_max_length", None)]
        known = [n for n in limits if isinstance(n, int) and 0 < n < 10_000_000]  # unset limits are huge
        return min(known) if known else None

    def encode(self, prompt: str, chat_formatted: bool) -> list[int]:
        """Token ids of a prompt, counted as `PromptBuilder.count` counts them."""
        return self.tokenizer(prompt, add_special_tokens=not chat_formatted)["input_ids"]


def resolve_model(address: str, base_model: str | None = None) -> ModelSource:
    """Read the config and tokenizer of `address` (a Hub id, a model directory or a PEFT adapter)."""
    from transformers import AutoConfig, AutoTokenizer

    adapter = address if (Path(address) / "adapter_config.json").is_file() else None
    try:
        if adapter:
            from peft import PeftConfig

            base = base_model or PeftConfig.from_pretrained(adapter).base_model_name_or_path
        else:
            base = base_model or address
        config = AutoConfig.from_pretrained(base)
        has_own_tokenizer = adapter and (Path(adapter) / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(adapter if has_own_tokenizer else base)
    except OSError as error:
        what = f"the base model of adapter {adapter!r}" if adapter else "--model_addr"
        raise ModelLoadError(f"cannot load {what}: {error}") from error
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers have none; batches need one
        logger.info("the tokenizer of %s has no padding token; padding with its end token %r", address,
                    tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return ModelSource(address=address, base=base, adapter=adapter, config=config, tokenizer=tokenizer)


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory batch shows at once)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def resolve_backend(backend: str, settings: GenerationSettings, source: ModelSource) -> str:
    """`auto` is vLLM when it is installed, a GPU is present, and the model and decoding are ones it runs here."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if backend != "auto":
        return backend
    supported = settings.num_beams == 1 and not source.is_encoder_decoder
    return "vllm" if supported and vllm_available() else "transformers"


def vllm_available() -> bool:
    """vLLM is installed and a CUDA device exists."""
    import importlib.util

    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def make_generator(backend: str, source: ModelSource, settings: GenerationSettings, dtype: str = "auto",
                   device_map: str | None = None, max_length: int | None = None):
    """Load the weights for `backend` ("transformers" or "vllm"; resolve "auto" first).

    `max_length` (prompt budget plus new tokens) sizes vLLM's KV cache: a 128k-context model need not
    reserve 128k tokens per sequence when prompts are capped far below.
    """
    if backend == "transformers":
        return TransformersGenerator(source, settings, dtype=dtype, device_map=device_map)
    if backend == "vllm":
        return VLLMGenerator(source, settings, dtype=dtype, max_model_len=max_length)
    raise ValueError(f"unknown backend {backend!r}; expected transformers or vllm")


def torch_dtype(name: str):
    """`auto`: bfloat16 on a GPU that supports it, float32 on CPU (half precision is slow and lossy there)."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {DTYPES}")
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


class TransformersGenerator:
    """Batched `model.generate` with padding, attention mask and KV cache."""

    def __init__(self, source: ModelSource, settings: GenerationSettings, dtype: str = "auto",
                 device_map: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        self.source, self.settings, self.tokenizer = source, settings, source.tokenizer
        if device_map is None and torch.cuda.is_available():
            device_map = "auto"
        model_class = AutoModelForSeq2SeqLM if source.is_encoder_decoder else AutoModelForCausalLM
        try:
            model = model_class.from_pretrained(source.base, dtype=torch_dtype(dtype), device_map=device_map)
            if source.adapter:
                from peft import PeftModel

                # Merged weights generate as fast as the base model; the adapter's effect is unchanged.
                model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
        except OSError as error:
            raise ModelLoadError(f"cannot load the weights of {source.address!r}: {error}") from error
        self.model = model.eval()
        self.model.generation_config = self._generation_config()

    def _generation_config(self):
        from transformers import GenerationConfig

        own = self.model.generation_config
        special = {
            "bos_token_id": own.bos_token_id,
            "eos_token_id": own.eos_token_id if own.eos_token_id is not None else self.tokenizer.eos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id,
            "decoder_start_token_id": own.decoder_start_token_id,
        }
        s = self.settings
        sampling = {"temperature": s.temperature, "top_p": s.top_p, "top_k": 0} if s.do_sample else {}
        return GenerationConfig(max_new_tokens=s.max_new_tokens, do_sample=s.do_sample, num_beams=s.num_beams,
                                use_cache=True, **sampling, **special)

    def generate(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[str]:
        """Continuations of one batch. With sampling, the batch draws from one RNG seeded with `seeds[0]`."""
        import torch

        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        left = not self.source.is_encoder_decoder  # a decoder continues from the last position: pad before
        rows, masks = [], []
        for prompt in prompts:
            padding = [pad] * (width - len(prompt))
            rows.append(padding + list(prompt) if left else list(prompt) + padding)
            masks.append([0] * len(padding) + [1] * len(prompt) if left else [1] * len(prompt) + [0] * len(padding))
        device = self.model.device
        input_ids = torch.tensor(rows, device=device)
        attention_mask = torch.tensor(masks, device=device)
        if self.settings.do_sample:
            torch.manual_seed(seeds[0])
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         generation_config=self.model.generation_config)
        generated = output[:, width:] if left else output
        return self.tokenizer.batch_decode(generated, skip_special_tokens=True)


class VLLMGenerator:
    """vLLM's continuous batching; every request carries its own seed, so sampling is per example."""

    def __init__(self, source: ModelSource, settings: GenerationSettings, dtype: str = "auto",
                 max_model_len: int | None = None):
        if not vllm_available():
            raise ValueError("the vllm backend needs `pip install vllm` and a CUDA GPU; use --backend transformers")
        if settings.num_beams > 1 or source.is_encoder_decoder:
            raise ValueError("the vllm backend runs decoder-only models without beam search here; "
                             "use --backend transformers")
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.source, self.settings = source, settings
        lora = {}
        if source.adapter:
            from peft import PeftConfig

            lora = {"enable_lora": True, "max_lora_rank": PeftConfig.from_pretrained(source.adapter).r}
        tokenizer = source.adapter if source.tokenizer.name_or_path == source.adapter else source.base
        self.llm = LLM(model=source.base, tokenizer=tokenizer, dtype=dtype, seed=settings.seed,
                       max_model_len=max_model_len, **lora)
        self.lora_request = LoRARequest("adapter", 1, source.adapter) if source.adapter else None

    def generate(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[str]:
        """Continuations of a chunk of prompts, in order."""
        from vllm import SamplingParams

        s = self.settings
        params = [
            SamplingParams(max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=seed)
            if s.do_sample else SamplingParams(max_tokens=s.max_new_tokens, temperature=0.0)
            for seed in seeds
        ]
        requests = [{"prompt_token_ids": list(prompt)} for prompt in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.lora_request)
        return [output.outputs[0].text for output in outputs]
