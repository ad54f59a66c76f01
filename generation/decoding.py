"""How to decode and in which batches, the same on every backend.

Decoding uses exactly the settings given (`GenerationSettings`): a model's own `generation_config.json` sampling
defaults (a chat model's temperature 0.6, say) are deliberately not applied, so that a run is described completely
by its settings. Prompts are planned in batches of similar length (`plan_batches`), which every resumable run
(zero-shot, per-user, the cached generator) replays identically.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Sequence

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


def strip_reasoning(text: str) -> str:
    """The answer without a reasoning model's <think>...</think> blocks (or an unopened block's end: templates
    that open <think> in the prompt)."""
    if "</think>" not in text:
        return text
    head, _, rest = text.partition("</think>")
    if "<think>" not in head:  # the block was opened by the prompt
        text = rest.lstrip()
    return _REASONING.sub("", text)


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory batch shows at once)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
