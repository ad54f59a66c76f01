"""The order in which training examples are seen: a seeded shuffle per epoch, optionally grouped by length.

The order depends only on (seed, epoch), never on the global random state, so that a resumed run sees
exactly the batches the interrupted run would have seen; accelerate then shards the batches over processes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Sampler

MEGABATCH_FACTOR = 50  # as transformers' LengthGroupedSampler: sort within windows of 50 global batches


class EpochSampler(Sampler[int]):
    """Indices of one epoch; `set_epoch` selects the permutation (accelerate calls it at each epoch).

    With `lengths` and `global_batch_size`, the shuffled indices are cut into windows of 50 global batches
    and each window is sorted by length, so that a batch holds examples of similar length (less padding)
    while the order of windows stays random.
    """

    def __init__(self, num_examples: int, seed: int, lengths: Sequence[int] | None = None,
                 global_batch_size: int | None = None):
        self.num_examples = num_examples
        self.seed = seed
        self.lengths = lengths
        self.window = (global_batch_size or 1) * MEGABATCH_FACTOR
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_examples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_examples, generator=generator).tolist()
        if self.lengths is not None:
            order = [
                index
                for start in range(0, len(order), self.window)
                for index in sorted(order[start:start + self.window], key=lambda i: -self.lengths[i])
            ]
        return iter(order)
