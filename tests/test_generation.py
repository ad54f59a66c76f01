"""Generation backends and the resumable prediction store, on tiny models built on the spot."""

from __future__ import annotations

import json

import pytest
import torch

from evaluation.generation import (
    GenerationSettings,
    TransformersGenerator,
    VLLMGenerator,
    plan_batches,
    resolve_backend,
    resolve_model,
    vllm_available,
)
from evaluation.predictions import PredictionStore, ResumeMismatchError, write_predictions
from tiny_models import make_causal_lm, make_seq2seq_lm

PROMPTS = [
    "Generate the review text written by a reviewer who has a given an overall rating of 5.0 for a product.",
    "Hi",
    "Complete the text of the following email. title: meeting notes. text: Hi team, please find attached. " * 3,
    "\"The quick brown fox\" is a summary for \"jumps over the lazy dog\"",
    "Ünïcödé text, emoji 🙂",
]
GREEDY = GenerationSettings(max_new_tokens=12)


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    return make_causal_lm(tmp_path_factory.mktemp("causal"))


def encode(source, prompts):
    return [source.encode(p, chat_formatted=False) for p in prompts]


def one_by_one(generator, ids):
    return [generator.generate([p], [0])[0] for p in ids]


def test_batched_greedy_equals_one_by_one(causal):
    source = resolve_model(str(causal))
    generator = TransformersGenerator(source, GREEDY)
    ids = encode(source, PROMPTS)
    assert len({len(p) for p in ids}) == len(ids)  # every batch needs real left padding
    expected = one_by_one(generator, ids)
    assert all(expected)
    assert generator.generate(ids, [0] * len(ids)) == expected
    for batch in plan_batches([len(p) for p in ids], 2):
        assert generator.generate([ids[i] for i in batch], [0] * len(batch)) == [expected[i] for i in batch]


def test_one_by_one_matches_plain_generate(causal):
    """The backend's decoding is the library's: no padding, plain `generate`, the same tokens."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(str(causal))
    model = AutoModelForCausalLM.from_pretrained(causal)
    ids = encode(source, PROMPTS[:2])
    for prompt, text in zip(ids, one_by_one(TransformersGenerator(source, GREEDY), ids)):
        tokens = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)[0, len(prompt):]
        assert text == source.tokenizer.decode(tokens, skip_special_tokens=True)


def make_talkative_seq2seq(directory):
    """The tiny T5 with a random untied output layer: the tied one only ever predicts <pad>."""
    from transformers import T5ForConditionalGeneration

    make_seq2seq_lm(directory)
    model = T5ForConditionalGeneration.from_pretrained(directory, tie_word_embeddings=False)
    model.config.tie_word_embeddings = False
    torch.manual_seed(0)
    torch.nn.init.normal_(model.lm_head.weight, std=1.0)
    model.save_pretrained(directory)
    return directory


def test_seq2seq_batched_equals_one_by_one(tmp_path):
    source = resolve_model(str(make_talkative_seq2seq(tmp_path)))
    assert source.is_encoder_decoder
    generator = TransformersGenerator(source, GREEDY)
    ids = encode(source, PROMPTS)
    expected = one_by_one(generator, ids)
    assert len(set(expected)) == len(expected) and all(expected)
    assert generator.generate(ids, [0] * len(ids)) == expected


def test_sampling_is_repeatable_with_its_seed(causal):
    source = resolve_model(str(causal))
    sampler = TransformersGenerator(source, GenerationSettings(max_new_tokens=12, do_sample=True, temperature=1.5))
    ids = encode(source, PROMPTS[:3])
    first = sampler.generate(ids, [7, 8, 9])
    assert sampler.generate(ids, [7, 8, 9]) == first
    assert sampler.generate(ids, [8, 9, 10]) != first
    assert first != TransformersGenerator(source, GREEDY).generate(ids, [0, 0, 0])


def test_beam_search_runs_batched(causal):
    source = resolve_model(str(causal))
    beams = TransformersGenerator(source, GenerationSettings(max_new_tokens=8, num_beams=3))
    ids = encode(source, PROMPTS[:3])
    assert beams.generate(ids, [0] * 3) == one_by_one(beams, ids)


def test_model_generation_defaults_are_not_applied(causal, tmp_path):
    """A checkpoint whose generation_config says "sample" is still decoded greedily when asked to."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(causal)
    model.generation_config = GenerationConfig(do_sample=True, temperature=5.0, top_k=3, bos_token_id=1,
                                               eos_token_id=2, pad_token_id=0)
    model.save_pretrained(tmp_path)
    resolve_model(str(causal)).tokenizer.save_pretrained(tmp_path)
    ids = encode(resolve_model(str(causal)), PROMPTS)
    greedy = TransformersGenerator(resolve_model(str(causal)), GREEDY).generate(ids, [0] * len(ids))
    torch.manual_seed(123)
    assert TransformersGenerator(resolve_model(str(tmp_path)), GREEDY).generate(ids, [0] * len(ids)) == greedy


def test_peft_adapter_is_applied_on_its_base_model(causal, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    get_peft_model(AutoModelForCausalLM.from_pretrained(causal), config).save_pretrained(tmp_path / "adapter")
    source = resolve_model(str(tmp_path / "adapter"))
    assert (source.base, source.adapter) == (str(causal), str(tmp_path / "adapter"))
    ids = encode(source, PROMPTS[:3])
    ours = TransformersGenerator(source, GREEDY).generate(ids, [0] * 3)

    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(causal), tmp_path / "adapter")
    expected = [source.tokenizer.decode(unmerged.generate(input_ids=torch.tensor([p]), max_new_tokens=12,
                                                          do_sample=False)[0, len(p):], skip_special_tokens=True)
                for p in ids]
    assert ours == expected
    assert ours != TransformersGenerator(resolve_model(str(causal)), GREEDY).generate(ids, [0] * 3)


def test_unknown_model_path_is_a_clear_error(tmp_path):
    from evaluation.generation import ModelLoadError

    with pytest.raises(ModelLoadError, match="cannot load --model_addr"):
        resolve_model(str(tmp_path / "no-such-model"))


def test_context_length_is_the_smaller_limit(causal):
    assert resolve_model(str(causal)).context_length() == 2048  # tokenizer 2048, positions 4096


def test_plan_batches_sorts_by_length_and_covers_everything():
    lengths = [3, 9, 1, 9, 5, 7, 2]
    batches = plan_batches(lengths, 3)
    assert batches == [[1, 3, 5], [4, 0, 6], [2]]
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(lengths, 0)


def test_auto_backend_is_vllm_only_where_it_runs(causal, tmp_path):
    decoder, encoder_decoder = resolve_model(str(causal)), resolve_model(str(make_seq2seq_lm(tmp_path)))
    assert resolve_backend("auto", GREEDY, decoder) == ("vllm" if vllm_available() else "transformers")
    assert resolve_backend("auto", GenerationSettings(num_beams=2), decoder) == "transformers"
    assert resolve_backend("auto", GREEDY, encoder_decoder) == "transformers"
    assert resolve_backend("vllm", GREEDY, decoder) == "vllm"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("tgi", GREEDY, decoder)


@pytest.mark.skipif(vllm_available(), reason="vLLM and a GPU are present")
def test_vllm_backend_without_vllm_says_what_is_missing(causal):
    with pytest.raises(ValueError, match="pip install vllm"):
        VLLMGenerator(resolve_model(str(causal)), GREEDY)


@pytest.mark.skipif(not vllm_available(), reason="needs vLLM and a CUDA GPU")
def test_vllm_greedy_equals_transformers_on_tiny_model(causal):
    source = resolve_model(str(causal))
    ids = encode(source, PROMPTS)
    ours = VLLMGenerator(source, GREEDY, dtype="float32").generate(ids, [0] * len(ids))
    reference = TransformersGenerator(source, GREEDY, dtype="float32").generate(ids, [0] * len(ids))
    assert sum(a == b for a, b in zip(ours, reference)) >= len(ids) - 1  # kernels may flip a near-tie


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(do_sample=True, temperature=0)
    assert "seed" not in GenerationSettings(seed=3).record()
    assert GenerationSettings(do_sample=True, seed=3).record()["seed"] == 3


# --- the prediction store -------------------------------------------------------------------------------------


def test_store_resumes_and_drops_a_line_cut_by_a_kill(tmp_path):
    path = tmp_path / "progress.jsonl"
    store = PredictionStore(path, {"model": "m"})
    awkward = "first 🙂\u2028line\x85next\r\n"  # str.splitlines() would cut this record in three
    store.add([("a", awkward), ("b", "")])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"id": "c", "outp')  # the process died mid-write
    resumed = PredictionStore(path, {"model": "m"})
    assert resumed.outputs == {"a": awkward, "b": ""}
    resumed.add([("c", "third")])
    assert PredictionStore(path, {"model": "m"}).outputs == {"a": awkward, "b": "", "c": "third"}
    assert len(path.read_text(encoding="utf-8").split("\n")) == 1 + 3 + 1


def test_store_refuses_other_settings(tmp_path):
    PredictionStore(tmp_path / "p.jsonl", {"model": "m", "k": 4}).add([("a", "x")])
    with pytest.raises(ResumeMismatchError, match="k: 4 on disk, 2 now"):
        PredictionStore(tmp_path / "p.jsonl", {"model": "m", "k": 2})


def test_store_names_a_corrupt_line(tmp_path):
    path = tmp_path / "p.jsonl"
    PredictionStore(path, {}).add([("a", "x")])
    path.write_text(path.read_text() + "oops\n" + '{"id": "b", "output": "y"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl, line 3: not valid JSON"):
        PredictionStore(path, {})


def test_predictions_file_is_the_benchmark_format_in_given_order(tmp_path):
    write_predictions(tmp_path / "preds.json", "LongLaMP_product_review_user", ["b", "a"], {"a": "1", "b": "2"})
    data = json.loads((tmp_path / "preds.json").read_text())
    assert data == {"task": "LongLaMP_product_review_user", "golds": [{"id": "b", "output": "2"},
                                                                      {"id": "a", "output": "1"}]}
    assert [p.name for p in tmp_path.iterdir()] == ["preds.json"]  # no temporary file left behind
