"""Style vectors and profile summaries on the bundled sample with a tiny model: a vector with scale 0 gives the
unsteered output exactly and a real scale changes that user's output only; vector files round-trip; summaries are
generated once, cached by input and reused; the summary counts in the prompt budget and never cuts the input."""

from __future__ import annotations

import pytest
import torch

from longlamp_prompts import PromptBuilder
from longlamp_tasks import TASKS

TASK = TASKS["product_review"]


@pytest.fixture(scope="module")
def setup(tiny_llama, sample_cache, sample_dir):
    import longlamp
    from generation import get_backend
    from generation.decoding import GenerationSettings
    from generation.source import resolve_model

    rows = list(longlamp.load_split("product_review_user", "validation", data_dir=str(sample_dir),
                                    cache_dir=sample_cache))
    source = resolve_model(str(tiny_llama))
    generator = get_backend("transformers", source, GenerationSettings(max_new_tokens=10))
    return rows, source, generator, PromptBuilder(TASK, source.tokenizer, 256)


def user_vectors(setup, user_index: int, layers):
    """A user's vectors from their first profile items: real texts against the model's own neutral texts."""
    from personalization.style_vectors import style_vector
    from personalization.users import group_users, profile_examples

    rows, source, generator, builder = setup
    user = group_users(rows, TASK)[user_index]
    examples = profile_examples(TASK, user)[:3]
    prompts = [source.encode(builder([], e["input"]), False) for e in examples]
    neutral = [source.encode(text, True) for text in generator.generate(prompts, [0] * len(prompts))]
    real = [source.encode(e["output"], True)[:20] for e in examples]
    return user.user_id, style_vector(generator.model, prompts, real, neutral, layers)


def test_style_vector_with_scale_zero_gives_the_unsteered_output_exactly_and_a_scale_steers_one_user(setup):
    from personalization.generate import generate_per_user
    from personalization.style_vectors import StyleSteering

    rows, source, generator, builder = setup
    user, vectors = user_vectors(setup, 2, [1, 2])
    assert vectors[1].shape == (generator.model.config.hidden_size,) and vectors[1].abs().sum() > 0
    ids = [source.encode(builder([], row["input"]), False) for row in rows]
    users = [row["reviewerId"] for row in rows]
    plain = generate_per_user(generator, ids, users)
    assert generate_per_user(generator, ids, users, style=StyleSteering({user: vectors[2]}, 2, 0.0)) == plain
    steered = generate_per_user(generator, ids, users, style=StyleSteering({user: vectors[2]}, 2, 200.0))
    assert [u for u, a, b in zip(users, plain, steered) if a != b] == [user]
    assert generate_per_user(generator, ids, users) == plain  # the hook is gone after the block


def test_style_vector_files_round_trip_per_user_and_name_a_missing_layer(setup, tmp_path):
    from personalization.style_vectors import load_vectors, save_vectors

    user, vectors = user_vectors(setup, 1, [1, 2])
    save_vectors(tmp_path, user, vectors)
    loaded = load_vectors(tmp_path, 2)
    assert list(loaded) == [user] and torch.equal(loaded[user], vectors[2])
    with pytest.raises(ValueError, match="no vector for layer 3"):
        load_vectors(tmp_path, 3)


def test_layer_and_scale_are_the_best_on_validation():
    from personalization.style_vectors import choose_layer_and_scale

    scores = {(1, 0.0): 0.1, (1, 1.0): 0.3, (2, 0.0): 0.1, (2, 1.0): 0.2}
    layer, scale, tried = choose_layer_and_scale([1, 2], [0.0, 1.0], lambda layer, scale: scores[(layer, scale)])
    assert (layer, scale) == (1, 1.0) and len(tried) == 4


def test_summaries_are_generated_once_cached_by_input_and_reused(setup, tmp_path):
    from dataclasses import replace

    from personalization.summaries import SUMMARY_REQUEST, SummaryCache, summarize
    from personalization.users import group_users

    rows, source, generator, _ = setup
    profiles = [user.profile[:3] for user in group_users(rows, TASK)[1:4]]
    builder = PromptBuilder(replace(TASK, prompt_suffix=". "), source.tokenizer, 200)
    requests = [builder(profile, SUMMARY_REQUEST) for profile in profiles + profiles[:1]]  # one profile twice
    identity = {"model": source.address, "max_new_tokens": 10}
    cache = SummaryCache(tmp_path / "summaries")
    first = summarize(requests, generator, source, cache, identity, chat_formatted=False)
    assert len(list((tmp_path / "summaries").glob("*.json"))) == 3 and first[3] == first[0]
    assert summarize(requests, None, source, cache, identity, chat_formatted=False) == first  # no generator needed
    request_ids = source.encode(requests[0], False)
    assert cache.get(cache.key(request_ids, {**identity, "model": "other"})) is None  # another model's are not these


def test_the_summary_counts_in_the_prompt_budget_and_never_cuts_the_task_input(setup):
    from personalization.summaries import SUMMARY_PREFIX, SummaryPromptBuilder

    rows, source, _, _ = setup
    row = rows[2]
    budget = PromptBuilder(TASK, source.tokenizer, 10**6).count(row["input"]) + 40  # room for some of the summary
    builder = PromptBuilder(TASK, source.tokenizer, budget)
    with_summary = SummaryPromptBuilder(builder)
    long_summary = "This author writes about bikes and chains in short cheerful sentences. " * 40
    prompt = with_summary(row["profile"][:2], row["input"], long_summary)
    assert builder.count(prompt) <= budget and prompt.endswith(row["input"]) and SUMMARY_PREFIX in prompt
    short = with_summary([], row["input"], "Short and cheerful.")
    assert short == f"{SUMMARY_PREFIX}Short and cheerful.\n{row['input']}"
