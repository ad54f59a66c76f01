"""Generation for per-user methods: each user's examples are generated as that user's model.

The examples are grouped by user; for each group the user's adapter is switched in (`UserAdapterSwitch`) and/or
the user's style vector is added (`steering`), and the group goes through the project's transformers backend,
so decoding, stop ids and batching are the same as zero-shot evaluation's. A resumed run passes the examples it
has (`finished`): as in zero-shot evaluation, a batch with any missing example is generated whole (a padded
batch's outputs can depend on its neighbours) and a finished one is skipped, so it computes exactly what an
uninterrupted run would have.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Collection, Mapping, Sequence

from evaluation.backends.generation import plan_batches
from personalization.user_adapters import UserAdapterSwitch


def generate_per_user(generator, token_ids: Sequence[Sequence[int]], users: Sequence[str], *,
                      adapters: Mapping[str, object] | None = None, style=None, batch_size: int = 8,
                      seed: int = 0) -> list[str]:
    """The continuation of each prompt, generated with its user's adapter (from `adapters`, user id -> folder;
    users without one get the model alone) and/or its user's style vector (`style`: a StyleSteering)."""
    generations = per_user_generations(generator, token_ids, users, adapters=adapters, style=style,
                                       batch_size=batch_size, seed=seed)
    return [generation.text for generation in generations]


def per_user_generations(generator, token_ids: Sequence[Sequence[int]], users: Sequence[str], *,
                         adapters: Mapping[str, object] | None = None, style=None, batch_size: int = 8,
                         seed: int = 0, finished: Collection[int] = (),
                         save: Callable[[list[int], list], None] | None = None) -> list:
    """Each prompt's `Generation` (None where its whole batch was `finished` before); `save(positions,
    generations)` is called after every generated batch, so that a kill loses at most the batch in flight."""
    switch = UserAdapterSwitch(generator.model) if adapters else None
    results: list = [None] * len(token_ids)
    groups: dict[str, list[int]] = {}
    for index, user in enumerate(users):
        groups.setdefault(user, []).append(index)
    try:
        for user, indices in groups.items():
            batches = [[indices[i] for i in batch]
                       for batch in plan_batches([len(token_ids[i]) for i in indices], batch_size)]
            batches = [batch for batch in batches if not all(i in finished for i in batch)]
            if batches:
                _generate_user(generator, token_ids, batches, results, switch, adapters, user, style, seed, save)
    finally:
        if switch is not None:
            generator.model = switch.close()
    return results


def _generate_user(generator, token_ids, batches, results, switch, adapters, user, style, seed, save) -> None:
    with switch.use(adapters.get(user)) if switch else nullcontext(generator.model) as model:
        generator.model = model
        with style.applied(model, user) if style is not None else nullcontext():
            for chosen in batches:
                outputs = generator.generations([token_ids[i] for i in chosen], [seed + i for i in chosen])
                for i, generation in zip(chosen, outputs):
                    results[i] = generation
                if save is not None:
                    save(chosen, outputs)
