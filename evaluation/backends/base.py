"""What a generation backend is: prompts as token ids in, continuations out, decoded the same way everywhere."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Generation:
    """One continuation: its text, its length in tokens (the stop token not counted), and whether it ran into
    max_new_tokens instead of stopping."""

    text: str
    tokens: int
    hit_limit: bool


class Generator(ABC):
    """A loaded model that continues prompts.

    name: the name `get_backend` knows it by. default_batch_size: examples per call when --batch_size is not
    given (for an engine that batches itself, the chunk saved between checkpoints).
    Subclasses implement `generate_ids`; decoding and the stop rule are shared, so backends cannot disagree.
    """

    name: str
    default_batch_size: int

    def __init__(self, source, settings):
        self.source, self.settings = source, settings
        self.stop_ids = source.stop_token_ids

    @classmethod
    def available(cls) -> bool:
        """Whether the backend can run on this machine (its package installed, its device present)."""
        return True

    @classmethod
    def unsupported(cls, source, settings) -> str | None:
        """Why the backend cannot run this model with these settings, or None."""
        return None

    @classmethod
    def run_options(cls, longest_prompt: int, max_new_tokens: int) -> dict:
        """Options this backend takes from the run itself (an engine sized by the longest prompt)."""
        return {}

    @classmethod
    def dtype_name(cls, dtype: str) -> str:
        """The dtype the weights get, for the record."""
        return dtype

    @abstractmethod
    def generate_ids(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[list[int]]:
        """The new token ids of each prompt, up to and including the stop token when one was generated."""

    def generate(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[str]:
        """The decoded continuation of each prompt; seeds[i] is prompt i's sampling seed."""
        return [generation.text for generation in self.generations(prompts, seeds)]

    def generations(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[Generation]:
        """Continuations with their token counts."""
        return [self.finish(ids) for ids in self.generate_ids(prompts, seeds)]

    def finish(self, ids: Sequence[int]) -> Generation:
        """Cut at the first stop id, then decode (special tokens skipped, no clean-up of spaces)."""
        ids = list(ids)
        stop = next((position for position, token in enumerate(ids) if token in self.stop_ids), None)
        kept = ids if stop is None else ids[:stop]
        return Generation(self.source.decode(kept), len(kept),
                          hit_limit=stop is None and len(kept) >= self.settings.max_new_tokens)
