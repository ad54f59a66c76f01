"""A model served elsewhere, described by what the prompt builder needs: a tokenizer to count the budget with.

With --tokenizer (a Hub id or folder of the served model's tokenizer) prompts are counted exactly, stop tokens
are known and, in completions mode, the chat template can be applied here. Without it, `ApproximateTokenizer`
counts: one token per run of up to 4 characters that are not spaces (with the spaces before it). That is about
4 characters per token, and for English text a little more tokens than GPT-style and Llama tokenizers count,
so a prompt within the budget fits the model. The rule is recorded in the run's settings (`prompt_tokenizer`).
"""

from __future__ import annotations

import re

from generation.source import ModelSource
from longlamp_errors import ModelLoadError

APPROXIMATION = "approximate: one token per run of up to 4 non-space characters (with the spaces before it)"
_PIECE = re.compile(r"\s*\S{1,4}|\s+")


class ApproximateTokenizer:
    """Splits text into pieces that join back to it exactly, so the builder can count and cut by them."""

    chat_template = None
    eos_token_id = pad_token_id = None
    all_special_ids: list[int] = []

    def __init__(self):
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []

    def __call__(self, text: str, add_special_tokens: bool = True, verbose: bool = True) -> dict:
        ids = []
        for piece in _PIECE.findall(text):
            if piece not in self._ids:
                self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            ids.append(self._ids[piece])
        return {"input_ids": ids}

    def decode(self, ids, skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = False) -> str:
        return "".join(self._pieces[i] for i in ids)


def served_model(name: str, tokenizer: str | None, trust_remote_code: bool = False,
                 chat_template_kwargs: dict | None = None) -> ModelSource:
    """The served model `name`, with --tokenizer's tokenizer or the approximation."""
    if tokenizer is None:
        counter = ApproximateTokenizer()
    else:
        from transformers import AutoTokenizer

        try:
            counter = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=trust_remote_code)
        except OSError as error:
            raise ModelLoadError(f"cannot load --tokenizer {tokenizer!r}: {error}") from error
    return ModelSource(address=name, base=name, adapter=None, config=None, tokenizer=counter,
                       trust_remote_code=trust_remote_code, chat_template_kwargs=dict(chat_template_kwargs or {}))
