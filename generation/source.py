"""A model resolved without its weights (`ModelSource`): where they come from, its config and tokenizer, the ids
generation stops at, and how prompts are tokenized and continuations decoded on every backend.

Prompts are token ids (tokenized once, the way `PromptBuilder.count` measured them, so a chat prompt gets no
second BOS). Only a model's end-of-sequence ids are taken from its `generation_config.json`, never its sampling
defaults (see `generation.decoding`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

from longlamp_errors import ModelLoadError
from longlamp_prompts import context_length

logger = logging.getLogger(__name__)


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
