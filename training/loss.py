"""The training loss: cross-entropy summed over target tokens, so that any batching gives the same number.

Summing (instead of averaging per batch) lets the loop divide by the number of target tokens of the
whole optimizer step, across micro-batches and processes: padded, packed, accumulated or sharded batches
then all produce the same gradient as one big batch. Decoder-only models that accept `logits_to_keep`
project only the positions that predict a target token onto the vocabulary, skipping the prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.data import IGNORE_INDEX

NOT_MODEL_INPUTS = ("labels", "example_index", "row")


def token_losses(model, batch: dict, is_encoder_decoder: bool, keep_target_logits: bool = False):
    """Per-token losses of the target tokens (float32, flat) and the batch example each one belongs to."""
    inputs = {name: value for name, value in batch.items() if name not in NOT_MODEL_INPUTS}
    labels, example_index = batch["labels"], batch["example_index"]
    if is_encoder_decoder:
        logits = model(**inputs, use_cache=False).logits
        targets, owners = labels, example_index
    else:
        # Position t predicts token t + 1; a packed row's next example starts with a prompt token (ignored).
        targets, owners = labels[:, 1:], example_index[:, 1:]
        if keep_target_logits:
            columns = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
            logits = model(**inputs, use_cache=False, logits_to_keep=columns).logits
            targets, owners = targets[:, columns], owners[:, columns]
        else:
            logits = model(**inputs, use_cache=False).logits[:, :-1]
    learned = targets != IGNORE_INDEX
    losses = F.cross_entropy(logits[learned].float(), targets[learned], reduction="none")
    return losses, owners[learned]


def per_example_sums(losses: torch.Tensor, owners: torch.Tensor, num_examples: int) -> torch.Tensor:
    """(num_examples, 2): summed loss and target-token count of each example of a batch."""
    sums = torch.zeros(num_examples, 2, dtype=torch.float32, device=losses.device)
    sums[:, 0].index_add_(0, owners, losses.detach())
    sums[:, 1].index_add_(0, owners, torch.ones_like(losses))
    return sums
