"""One preparation of a model for generation (generation/preparation.py): zero-shot evaluation, per-user evaluation
and the judge build the same identity record for the same model and flags, and the backends' differences are facts
of their classes (no caller branches on a backend's name)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from generation import backend_class
from generation.decoding import GenerationSettings

REPOSITORY = Path(__file__).resolve().parents[1]
FLAGS = ["--max_new_tokens", "6", "--max_prompt_length", "300", "--dtype", "float32", "--backend", "transformers"]


def test_zero_shot_per_user_and_the_judge_record_the_same_model_settings(tiny_llama, sample_dir, sample_cache,
                                                                          tmp_path):
    from evaluation import evaluate_llm, evaluate_per_user
    from evaluation.judges.judge_model import build_judge, judge_options
    from evaluation.zero_shot import per_user
    from evaluation.zero_shot.run import prepare, prepare_generation
    from generation.cache import GenerationCache

    model, data = ["--model_name", str(tiny_llama)], ["--data_dir", str(sample_dir), "--cache_dir", sample_cache]
    zero_shot = prepare(evaluate_llm.parse_args([*model, "--validation_data", "product_review_user", *data, *FLAGS,
                                                 "--max_eval_examples", "2", "--output_dir", str(tmp_path / "z")]))
    per_user_run = per_user.prepare(evaluate_per_user.parse_args([*model, "--data", "product_review_user", *data,
                                                                  *FLAGS, "--max_eval_examples", "2",
                                                                  "--output_dir", str(tmp_path / "p")]))
    options = judge_options(str(tiny_llama), str(tmp_path / "j"), backend="transformers", max_new_tokens=6,
                            dtype="float32")
    judged = prepare_generation(options, whole_context=True).model_settings

    recorded = zero_shot.records[0].model
    assert recorded.fingerprint["base"] and recorded.backend == "transformers" and recorded.dtype == "float32"
    assert per_user_run.record.model == recorded == judged
    identity = build_judge(options, GenerationCache(tmp_path / "j.sqlite")).identity
    assert {key: identity[key] for key in ("model", "backend", "dtype", "fingerprint", "base_model")} == {
        "model": recorded.name, "backend": recorded.backend, "dtype": recorded.dtype,
        "fingerprint": recorded.fingerprint, "base_model": recorded.base_model}


def test_backend_facts_live_in_their_classes():
    transformers, vllm, openai = (backend_class(name) for name in ("transformers", "vllm", "openai"))
    assert transformers.steers_activations and transformers.switches_adapters and not transformers.served
    assert vllm.per_prompt_adapters and not vllm.steers_activations
    assert openai.served and openai.dtype_name("bfloat16") is None
    assert "activations" in vllm.unsupported_methods(steering=True)
    assert openai.unsupported_methods(user_adapters=True) == "serves no per-user adapters"
    assert transformers.unsupported_methods(steering=True, user_adapters=True) is None


def test_an_explicit_backend_that_cannot_run_the_decoding_is_refused_naming_the_flag(tiny_llama):
    from generation.preparation import prepare_model

    with pytest.raises(ValueError, match="^--backend vllm: runs decoder-only models without beam search here; use "
                                         "--backend transformers$"):
        prepare_model(str(tiny_llama), GenerationSettings(num_beams=2), backend="vllm")
    prepared = prepare_model(str(tiny_llama), GenerationSettings(num_beams=2), steering=True)
    assert prepared.backend == "transformers"  # `auto` takes the methods and the decoding into account


def test_no_caller_branches_on_a_backend_name():
    """Backend names appear in evaluation/, personalization/ and training/ only as flag choices, never in a
    comparison or an isinstance check."""
    name = r"""["'](vllm|transformers|openai)["']"""
    branch = re.compile(rf"""(==|!=|\bin)\s*\(?\s*{name}|{name}\s*(==|!=)|{name} if |"""
                        r"""isinstance\([^)]*(VLLM|Transformers|OpenAI)Generator""")
    found = [f"{path.relative_to(REPOSITORY)}:{number}"
             for folder in ("evaluation", "personalization", "training")
             for path in sorted((REPOSITORY / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1) if branch.search(line)]
    assert found == []
