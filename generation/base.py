"""What a generation backend is: prompts in, continuations out, decoded the same way everywhere.

`Generator` is the one interface the zero-shot pipeline calls; resume and scoring stay outside it. A local
backend (`TokenGenerator`) takes token ids and returns token ids, which one shared step cuts at the stop ids
and decodes, so local backends cannot disagree. A served backend (`generation.http_api.HTTPGenerator`)
takes the prompt text and returns the server's text with its token usage and finish reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Sequence

from generation.dtypes import resolve_dtype

STEERING_NEEDS_ACTIVATIONS = ("style vectors are added to a layer's activations, which only the transformers backend "
                              "exposes")


@dataclass(frozen=True)
class Generation:
    """One continuation: its text, its length in tokens (the stop token not counted), and whether it ran into
    max_new_tokens instead of stopping. A served model also reports the prompt's tokens and its finish reason."""

    text: str
    tokens: int
    hit_limit: bool
    prompt_tokens: int | None = None
    finish_reason: str | None = None


class Generator(ABC):
    """A model that continues prompts.

    name: the name `get_backend` knows it by. default_batch_size: examples per call when --batch_size is not
    given (for an engine that batches itself, the chunk saved between checkpoints). prompt_form: what a prompt
    is, "ids" (token ids, counted as the prompt builder counted them) or "text". independent_requests: whether
    each prompt's output is independent of the others in its call, so that a resumed run sends only the missing
    ones (a padded batch's output can depend on its neighbours; a request to a server cannot).
    """

    name: str
    default_batch_size: int
    prompt_form = "ids"
    independent_requests = False
    served = False  # True: the model runs elsewhere (no weights, dtype or device here)
    steers_activations = False  # its model's layers can be steered here (style vectors)
    switches_adapters = False  # per-user LoRA adapters are switched into its model between users
    per_prompt_adapters = False  # per-user LoRA adapters ride on each prompt (`lora_generations`: multi-LoRA)

    def __init__(self, source, settings):
        self.source, self.settings = source, settings

    @classmethod
    def available(cls) -> bool:
        """Whether the backend can run on this machine (its package installed, its device present)."""
        return True

    @classmethod
    def unsupported(cls, source, settings) -> str | None:
        """Why the backend cannot run this model with these settings, or None."""
        return None

    @classmethod
    def unsupported_methods(cls, source=None, *, steering: bool = False, user_adapters: bool = False) -> str | None:
        """Why the backend cannot run the per-user methods asked for (`steering`: style vectors; `user_adapters`:
        a LoRA adapter per user), or None; `source` None: what the methods alone rule out."""
        if steering and not cls.steers_activations:
            return STEERING_NEEDS_ACTIVATIONS
        if user_adapters and not (cls.switches_adapters or cls.per_prompt_adapters):
            return "serves no per-user adapters"
        return None

    @classmethod
    def run_options(cls, longest_prompt: int, max_new_tokens: int) -> dict:
        """Options this backend takes from the run itself (an engine sized by the longest prompt)."""
        return {}

    @classmethod
    def dtype_name(cls, dtype: str) -> str | None:
        """The dtype the weights get, for the record."""
        return dtype

    def use_settings(self, settings) -> None:
        """Decode with `settings` from the next call on (the LLM judge samples its retries)."""
        self.settings = settings

    @abstractmethod
    def generations(self, prompts: Sequence, seeds: Sequence[int]) -> list[Generation]:
        """The continuation of each prompt; seeds[i] is prompt i's sampling seed."""

    def generate(self, prompts: Sequence, seeds: Sequence[int]) -> list[str]:
        """The continuation texts of the prompts."""
        return [generation.text for generation in self.generations(prompts, seeds)]

    def completed(self, prompts: Sequence, seeds: Sequence[int]) -> Iterator[list[tuple[int, Generation]]]:
        """(position, Generation) pairs as they finish, so that each can be saved at once; here all at the end."""
        yield list(enumerate(self.generations(prompts, seeds)))


class TokenGenerator(Generator):
    """A model loaded here: token ids in, new token ids out; `finish` cuts and decodes them the same way for all.
    Subclasses implement `generate_ids`."""

    def __init__(self, source, settings):
        super().__init__(source, settings)
        self.stop_ids = source.stop_token_ids

    @classmethod
    def dtype_name(cls, dtype: str) -> str:
        """The weights are loaded here: "auto" is resolved as everywhere (`generation.dtypes`)."""
        return resolve_dtype(dtype)

    @abstractmethod
    def generate_ids(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[list[int]]:
        """The new token ids of each prompt, up to and including the stop token when one was generated."""

    def generations(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[Generation]:
        return [self.finish(ids) for ids in self.generate_ids(prompts, seeds)]

    def finish(self, ids: Sequence[int]) -> Generation:
        return finish_ids(self.source, ids, self.settings.max_new_tokens)


def finish_ids(source, ids: Sequence[int], max_new_tokens: int) -> Generation:
    """New token ids cut at the first of the source's stop ids, then decoded (special tokens skipped, no clean-up
    of spaces): every local backend, and training's validation generation, end a continuation this way."""
    ids = list(ids)
    stop_ids = source.stop_token_ids
    stop = next((position for position, token in enumerate(ids) if token in stop_ids), None)
    kept = ids if stop is None else ids[:stop]
    return Generation(source.decode(kept), len(kept), hit_limit=stop is None and len(kept) >= max_new_tokens)
