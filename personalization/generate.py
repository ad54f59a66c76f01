"""Generation for per-user methods: each user's examples are generated as that user's model.

On the transformers backend the examples are grouped by user; for each group the user's adapter is switched in
(`UserAdapterSwitch`) and/or the user's style vector is added (`steering`). On the vLLM backend every prompt
carries its user's LoRA request and one batch mixes users (multi-LoRA). Either way decoding, stop ids and
length-sorted batching are zero-shot evaluation's. A resumed run passes the examples it has (`finished`): as in
zero-shot evaluation, a batch with any missing example is generated whole (a padded batch's outputs can depend on
its neighbours) and a finished one is skipped, so it computes exactly what an uninterrupted run would have.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Collection, Mapping, Sequence

from generation.base import STEERING_NEEDS_ACTIVATIONS
from generation.decoding import plan_batches
from personalization.user_adapters import UserAdapterSwitch, vllm_lora_requests


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
    if generator.per_prompt_adapters:
        return _multi_lora_generations(generator, token_ids, users, adapters, style, batch_size, seed, finished, save)
    results: list = [None] * len(token_ids)
    switch = UserAdapterSwitch(generator.model) if adapters else None
    groups: dict[str, list[int]] = {}
    for index, user in enumerate(users):
        groups.setdefault(user, []).append(index)
    try:
        for user, indices in groups.items():
            batches = unfinished(grouped_batches(token_ids, [indices], batch_size), finished)
            if batches:
                _generate_user(generator, token_ids, batches, results, switch, adapters, user, style, seed, save)
    finally:
        if switch is not None:
            generator.model = switch.close()
    return results


def _multi_lora_generations(generator, token_ids, users, adapters, style, batch_size, seed, finished, save) -> list:
    """vLLM: each prompt carries its user's LoRA request, and a batch mixes users' adapters."""
    if style is not None:
        raise ValueError(STEERING_NEEDS_ACTIVATIONS)
    requests = vllm_lora_requests(adapters or {})
    loras = [requests.get(user) for user in users]
    # Prompts with and without an adapter go in separate calls: vLLM 0.32's CPU build continued the ones without
    # wrongly when a batch mixed both (seen here; batches mixing different adapters were right).
    with_adapter = [i for i, lora in enumerate(loras) if lora is not None]
    without = [i for i, lora in enumerate(loras) if lora is None]
    results: list = [None] * len(token_ids)
    batches = unfinished(grouped_batches(token_ids, [with_adapter, without], batch_size), finished)
    run_batches(lambda chosen: generator.lora_generations([token_ids[i] for i in chosen], [seed + i for i in chosen],
                                                          [loras[i] for i in chosen]), batches, results, save)
    return results


def _generate_user(generator, token_ids, batches, results, switch, adapters, user, style, seed, save) -> None:
    with switch.use(adapters.get(user)) if switch else nullcontext(generator.model) as model:
        generator.model = model
        with style.applied(model, user) if style is not None else nullcontext():
            run_batches(lambda chosen: generator.generations([token_ids[i] for i in chosen],
                                                             [seed + i for i in chosen]), batches, results, save)


def grouped_batches(token_ids: Sequence[Sequence[int]], groups: Sequence[Sequence[int]],
                    batch_size: int) -> list[list[int]]:
    """Length-sorted batches of positions (`plan_batches`) within each group, never across groups."""
    return [[group[i] for i in batch] for group in groups
            for batch in plan_batches([len(token_ids[i]) for i in group], batch_size)]


def unfinished(batches: list[list[int]], finished: Collection[int]) -> list[list[int]]:
    """The batches to generate: those with any example not `finished` (a batch is generated whole)."""
    return [batch for batch in batches if not all(i in finished for i in batch)]


def run_batches(generate: Callable[[list[int]], list], batches, results: list, save) -> None:
    """Generate each batch of positions, put its generations in `results` and `save` them."""
    for chosen in batches:
        outputs = generate(chosen)
        for i, generation in zip(chosen, outputs):
            results[i] = generation
        if save is not None:
            save(chosen, outputs)
