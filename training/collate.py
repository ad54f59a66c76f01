"""Batches of encoded examples: padded, or packed without padding for decoder-only models.

Every training batch carries `labels` (IGNORE_INDEX where nothing is learned) and `example_index` (which
example of the batch each token belongs to, -1 for padding), so the loss can be summed over target tokens
and, at evaluation, per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from training.data import IGNORE_INDEX


def _pad(rows: Sequence[Sequence[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(row) for row in rows)
    padded = [([value] * (width - len(row)) + list(row)) if left else (list(row) + [value] * (width - len(row)))
              for row in rows]
    return torch.tensor(padded, dtype=torch.long)


def _rows(examples: list[dict]) -> torch.Tensor:
    """Each example's row number in its split, to find its id or reference again after sharding."""
    return torch.tensor([e["row"] for e in examples], dtype=torch.long)


@dataclass
class TrainingCollator:
    """Right-padded batches, or with `packing` one row holding every example of the batch (no padding).

    Decoder-only batches carry no attention mask: a token attends only to earlier tokens, and with right
    padding those are never padding, so the mask changes nothing for the tokens that are learned while it
    would keep attention kernels off their fastest (purely causal) path. Packed rows restart the position
    ids at each example; transformers derives the example boundaries from them (variable-length kernels
    with flash attention, a block-diagonal mask otherwise), so no token attends across examples.
    """

    pad_token_id: int
    is_encoder_decoder: bool = False
    decoder_start_token_id: int | None = None
    packing: bool = False

    def __call__(self, examples: list[dict]) -> dict:
        if self.packing:
            return self._packed(examples)
        batch = {
            "input_ids": _pad([e["input_ids"] for e in examples], self.pad_token_id),
            "labels": _pad([e["labels"] for e in examples], IGNORE_INDEX),
        }
        if self.is_encoder_decoder:
            batch["attention_mask"] = _pad([[1] * len(e["input_ids"]) for e in examples], 0)
            labels = batch["labels"]
            starts = torch.full((len(examples), 1), self.decoder_start_token_id, dtype=torch.long)
            shifted = torch.cat([starts, labels[:, :-1]], dim=1)
            batch["decoder_input_ids"] = shifted.masked_fill(shifted == IGNORE_INDEX, self.pad_token_id)
        owned = "labels" if self.is_encoder_decoder else "input_ids"
        batch["example_index"] = _pad([[i] * len(e[owned]) for i, e in enumerate(examples)], -1)
        batch["row"] = _rows(examples)
        return batch

    def _packed(self, examples: list[dict]) -> dict:
        def flat(key):
            return torch.tensor([[t for e in examples for t in e[key]]], dtype=torch.long)

        return {
            "input_ids": flat("input_ids"),
            "labels": flat("labels"),
            "position_ids": torch.tensor([[p for e in examples for p in range(len(e["input_ids"]))]]),
            "example_index": torch.tensor([[i for i, e in enumerate(examples) for _ in e["input_ids"]]]),
            "row": _rows(examples),
        }


@dataclass
class GenerationCollator:
    """Prompts for `generate`: left-padded for decoder-only models (generation continues at the right end)."""

    pad_token_id: int
    is_encoder_decoder: bool = False

    def __call__(self, examples: list[dict]) -> dict:
        prompts = [e["input_ids"][: e["prompt_length"]] for e in examples]
        left = not self.is_encoder_decoder
        return {
            "input_ids": _pad(prompts, self.pad_token_id, left=left),
            "attention_mask": _pad([[1] * len(p) for p in prompts], 0, left=left),
            "row": _rows(examples),
        }
