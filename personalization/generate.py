"""Generation for per-user methods: each user's examples are generated as that user's model.

The examples are grouped by user; for each group the user's adapter is switched in (`UserAdapterSwitch`) and/or
the user's style vector is added (`steering`), and the group goes through the project's transformers backend,
so decoding, stop ids and batching are the same as zero-shot evaluation's.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Mapping, Sequence

from evaluation.backends.generation import plan_batches
from personalization.user_adapters import UserAdapterSwitch


def generate_per_user(generator, token_ids: Sequence[Sequence[int]], users: Sequence[str], *,
                      adapters: Mapping[str, object] | None = None, style=None, batch_size: int = 8,
                      seed: int = 0) -> list[str]:
    """The continuation of each prompt, generated with its user's adapter (from `adapters`, user id -> folder;
    users without one get the model alone) and/or its user's style vector (`style`: a StyleSteering)."""
    switch = UserAdapterSwitch(generator.model) if adapters else None
    texts: list[str | None] = [None] * len(token_ids)
    groups: dict[str, list[int]] = {}
    for index, user in enumerate(users):
        groups.setdefault(user, []).append(index)
    try:
        _generate_groups(generator, token_ids, groups, texts, switch, adapters, style, batch_size, seed)
    finally:
        if switch is not None:
            generator.model = switch.close()
    return texts


def _generate_groups(generator, token_ids, groups, texts, switch, adapters, style, batch_size, seed) -> None:
    for user, indices in groups.items():
        with switch.use(adapters.get(user)) if switch else nullcontext(generator.model) as model:
            generator.model = model
            with style.applied(model, user) if style is not None else nullcontext():
                for batch in plan_batches([len(token_ids[i]) for i in indices], batch_size):
                    chosen = [indices[i] for i in batch]
                    outputs = generator.generate([token_ids[i] for i in chosen], [seed + i for i in chosen])
                    for i, text in zip(chosen, outputs):
                        texts[i] = text
