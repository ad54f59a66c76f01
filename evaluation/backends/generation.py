"""What generation needs besides a backend: the model resolved without its weights, the decoding settings,
the ids generation stops at, and the batch plan. The backends themselves are in `evaluation.backends`.

Prompts are token ids (tokenized once, the way `PromptBuilder.count` measured them, so a chat prompt gets no
second BOS). Decoding uses exactly the settings given (`GenerationSettings`): a model's own
`generation_config.json` sampling defaults (a chat model's temperature 0.6, say) are deliberately not applied,
so that a run is described completely by its settings; only its end-of-sequence ids are taken from it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

from longlamp_prompts import context_length
from longlamp_errors import ModelLoadError

logger = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
_REASONING = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


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
    generation_config: object = None
    trust_remote_code: bool = False
    chat_template_kwargs: dict = field(default_factory=dict)

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.config, "is_encoder_decoder", False))

    def context_length(self) -> int | None:
        """The longest input the model takes: its position limit and the tokenizer's, whichever is smaller."""
        return context_length(self.config, self.tokenizer)

    @cached_property
    def stop_token_ids(self) -> list[int]:
        """Where every backend stops: the generation config's EOS ids, the tokenizer's EOS, and the chat
        template's end-of-turn token (Llama-3's <|eot_id|>, Qwen's <|im_end|>), in that order, once each."""
        ids = []
        own = getattr(self.generation_config, "eos_token_id", None)
        if own is None:
            own = getattr(self.config, "eos_token_id", None)
        ids += own if isinstance(own, list) else [own]
        ids.append(self.tokenizer.eos_token_id)
        ids.append(end_of_turn_id(self.tokenizer, self.chat_template_kwargs))
        return list(dict.fromkeys(i for i in ids if isinstance(i, int)))

    def decode(self, ids: Sequence[int]) -> str:
        """A continuation's text, the same on every backend: special tokens skipped, spaces left as generated."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def encode(self, prompt: str, chat_formatted: bool) -> list[int]:
        """Token ids of a prompt, counted as `PromptBuilder.count` counts them."""
        return self.tokenizer(prompt, add_special_tokens=not chat_formatted)["input_ids"]


def end_of_turn_id(tokenizer, chat_template_kwargs: dict | None = None) -> int | None:
    """The special token a chat template writes right after an assistant turn, or None (no template, or plain
    text there)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    from jinja2 import TemplateError

    marker = "LONGLAMP_END_OF_TURN_PROBE"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant",
                                              "content": marker}], tokenize=False, **(chat_template_kwargs or {}))
    except (TemplateError, ValueError, TypeError, KeyError):  # a template that renders no assistant turn this way
        return None
    after = text.rpartition(marker)[2]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    return ids[0] if ids and ids[0] in special else None


def strip_reasoning(text: str) -> str:
    """The answer without a reasoning model's <think>...</think> blocks (or an unopened block's end: templates
    that open <think> in the prompt)."""
    if "</think>" not in text:
        return text
    head, _, rest = text.partition("</think>")
    if "<think>" not in head:  # the block was opened by the prompt
        text = rest.lstrip()
    return _REASONING.sub("", text)


def resolve_model(address: str, base_model: str | None = None, trust_remote_code: bool = False,
                  chat_template_kwargs: dict | None = None) -> ModelSource:
    """Read the config, generation config and tokenizer of `address` (a Hub id, a model folder or a PEFT adapter)."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    adapter = address if (Path(address) / "adapter_config.json").is_file() else None
    try:
        if adapter:
            from peft import PeftConfig

            base = base_model or PeftConfig.from_pretrained(adapter).base_model_name_or_path
        else:
            base = base_model or address
        config = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code)
        has_own_tokenizer = adapter and (Path(adapter) / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(adapter if has_own_tokenizer else base,
                                                  trust_remote_code=trust_remote_code)
    except OSError as error:
        what = f"the base model of adapter {adapter!r}" if adapter else "--model_name"
        raise ModelLoadError(f"cannot load {what}: {error}") from error
    try:
        generation_config = GenerationConfig.from_pretrained(base)
    except OSError:  # no generation_config.json: the model config's ids
        generation_config = None
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers have none; batches need one
        logger.info("the tokenizer of %s has no padding token; padding with its end token %r", address,
                    tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return ModelSource(address=address, base=base, adapter=adapter, config=config, tokenizer=tokenizer,
                       generation_config=generation_config, trust_remote_code=trust_remote_code,
                       chat_template_kwargs=dict(chat_template_kwargs or {}))


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory batch shows at once)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def torch_dtype(name: str):
    """`auto`: bfloat16 on a GPU that supports it, float32 on CPU (half precision is slow and lossy there)."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {DTYPES}")
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)
