"""Generation backends and the resumable prediction store, on tiny models built on the spot."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from support.records import zero_shot_record
from support.tiny_models import make_causal_lm, make_seq2seq_lm

from generation import get_backend, resolve_backend
from generation.decoding import GenerationSettings, plan_batches, strip_reasoning
from generation.hf_transformers import TransformersGenerator
from generation.predictions import PredictionStore
from generation.source import resolve_model
from generation.vllm_engine import VLLMGenerator, engine_arguments, lora_rank_for, sampling_arguments
from longlamp_errors import ModelLoadError, RunFolderError
from longlamp_runs import DecodingSettings
from scoring.files import write_predictions

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
        assert text == source.tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)


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
    expected = [source.decode(unmerged.generate(input_ids=torch.tensor([p]), max_new_tokens=12,
                                                do_sample=False)[0, len(p):]) for p in ids]
    assert ours == expected
    assert ours != TransformersGenerator(resolve_model(str(causal)), GREEDY).generate(ids, [0] * 3)


def test_unknown_model_path_is_a_clear_error(tmp_path):

    with pytest.raises(ModelLoadError, match="cannot load --model_name"):
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
    assert resolve_backend("auto", GREEDY, decoder) == ("vllm" if VLLMGenerator.available() else "transformers")
    assert resolve_backend("auto", GenerationSettings(num_beams=2), decoder) == "transformers"
    assert resolve_backend("auto", GREEDY, encoder_decoder) == "transformers"
    assert resolve_backend("vllm", GREEDY, decoder) == "vllm"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("tgi", GREEDY, decoder)


@pytest.mark.skipif(VLLMGenerator.available(), reason="vLLM and a GPU are present")
def test_vllm_backend_without_vllm_says_what_is_missing(causal):
    with pytest.raises(ValueError, match="pip install vllm"):
        get_backend("vllm", resolve_model(str(causal)), GREEDY, max_model_len=100)


@pytest.mark.skipif(not VLLMGenerator.available(), reason="needs vLLM (a CUDA GPU, or vLLM's CPU build)")
def test_vllm_greedy_equals_transformers_on_tiny_model(tmp_path):
    import torch

    # head size 64: vLLM's attention kernels take no smaller one (8, the other tests' model, fails at start)
    model = make_causal_lm(tmp_path / "model", hidden_size=256, intermediate_size=512, num_key_value_heads=2)
    source = resolve_model(str(model))
    ids = encode(source, PROMPTS)
    dtype = "bfloat16" if torch.cuda.is_available() else "float32"  # vLLM's GPU kernels want half precision
    ours = VLLMGenerator(source, GREEDY, max_model_len=200, dtype=dtype).generate(ids, [0] * len(ids))
    reference = TransformersGenerator(source, GREEDY, dtype=dtype).generate(ids, [0] * len(ids))
    assert sum(a == b for a, b in zip(ours, reference)) >= len(ids) - 1  # kernels may flip a near-tie


def test_backend_options_are_checked_against_the_backend(causal):
    source = resolve_model(str(causal))
    with pytest.raises(ValueError, match="backend 'transformers' does not take tensor_parallel_size; it takes: dtype"):
        get_backend("transformers", source, GREEDY, tensor_parallel_size=2)
    assert TransformersGenerator.default_batch_size == 8 and VLLMGenerator.default_batch_size == 256
    assert TransformersGenerator.run_options(300, 12) == {}
    assert VLLMGenerator.run_options(300, 12) == {"max_model_len": 312}  # the longest prompt, not the context


@pytest.mark.parametrize("rank, accepted", [(1, 1), (4, 8), (8, 8), (12, 16), (33, 64), (300, 320), (512, 512)])
def test_vllm_lora_rank_is_rounded_up_to_one_it_accepts(rank, accepted):
    assert lora_rank_for(rank) == accepted


def test_vllm_engine_arguments(causal):
    source = resolve_model(str(causal))
    arguments = engine_arguments(source, GREEDY, max_model_len=812, lora_rank=12)
    assert arguments["max_model_len"] == 812 and arguments["max_lora_rank"] == 16 and arguments["enable_lora"]
    assert "max_loras" not in arguments  # vLLM's default: one adapter per batch
    assert engine_arguments(source, GREEDY, max_model_len=812, lora_rank=8, max_loras=4)["max_loras"] == 4
    assert arguments["trust_remote_code"] is False and arguments["tensor_parallel_size"] == 1
    assert "max_num_seqs" not in arguments
    tuned = engine_arguments(source, GREEDY, max_model_len=812, tensor_parallel_size=2, gpu_memory_utilization=0.5,
                             enforce_eager=True, max_num_seqs=16, trust_remote_code=True)
    assert {k: tuned[k] for k in ("tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs",
                                  "trust_remote_code")} == {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
                                                            "enforce_eager": True, "max_num_seqs": 16,
                                                            "trust_remote_code": True}
    assert "enable_lora" not in tuned
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        engine_arguments(source, GREEDY, max_model_len=812, gpu_memory_utilization=1.5)
    with pytest.raises(ValueError, match="--max_loras must be at least 1"):
        engine_arguments(source, GREEDY, max_model_len=812, lora_rank=8, max_loras=0)
    with pytest.raises(ValueError, match="more than vLLM takes"):
        lora_rank_for(1024)


def make_chat_model_with_end_of_turn(directory):
    """A tiny chat model whose template ends a turn with <|im_end|> and whose generation config lists two EOS."""
    from support.tiny_models import make_causal_lm
    from transformers import AutoModelForCausalLM, GenerationConfig

    make_causal_lm(directory)
    tokenizer = resolve_model(str(directory)).tokenizer
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|im_end|>{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    tokenizer.save_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    model.resize_token_embeddings(len(tokenizer))
    model.generation_config = GenerationConfig(eos_token_id=[tokenizer.eos_token_id, 3], pad_token_id=0)
    model.save_pretrained(directory)
    return directory, tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_both_backends_stop_at_the_same_ids(tmp_path):
    """The union of the generation config's EOS ids, the tokenizer's EOS and the template's end of turn."""
    directory, end_of_turn = make_chat_model_with_end_of_turn(tmp_path)
    source = resolve_model(str(directory))
    assert source.stop_token_ids == [source.tokenizer.eos_token_id, 3, end_of_turn]
    generator = TransformersGenerator(source, GREEDY)
    assert generator.model.generation_config.eos_token_id == source.stop_token_ids
    assert sampling_arguments(GREEDY, generator.stop_ids, 0)["stop_token_ids"] == source.stop_token_ids
    hello = source.tokenizer("hello there", add_special_tokens=False)["input_ids"]
    stopped = generator.finish([*hello, end_of_turn, 0, 0])
    assert (stopped.text, stopped.tokens, stopped.hit_limit) == ("hello there", len(hello), False)
    assert generator.finish(hello * 12).hit_limit is True  # ran into max_new_tokens (12)


def test_decoding_keeps_spaces_as_generated(causal):
    """clean_up_tokenization_spaces=False on every backend: " ." and " 's" stay as the model wrote them."""
    source = resolve_model(str(causal))
    source.tokenizer.clean_up_tokenization_spaces = True  # some tokenizers default to it
    text = "it works . the user 's review , yes"
    assert source.decode(source.tokenizer(text, add_special_tokens=False)["input_ids"]) == text


@pytest.mark.parametrize("raw, answer", [
    ("<think>\nplan it\n</think>\n\nThe review.", "The review."),
    ("still thinking</think> The review.", "The review."),  # a template that opened <think> in the prompt
    ("The review. <think>a</think>More.", "The review. More."),
    ("No reasoning here.", "No reasoning here."),
])
def test_reasoning_blocks_are_removed(raw, answer):
    assert strip_reasoning(raw) == answer


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(do_sample=True, temperature=0)
    assert "seed" not in GenerationSettings(seed=3).record()
    assert GenerationSettings(do_sample=True, seed=3).record()["seed"] == 3


# --- the prediction store -------------------------------------------------------------------------------------


def done(text: str, tokens: int = 3):
    from generation import Generation

    return Generation(text, tokens, hit_limit=False)


def outputs(store) -> dict:
    return {key: record["output"] for key, record in store.records.items()}


RECORD = zero_shot_record()


def test_store_resumes_and_drops_a_line_cut_by_a_kill(tmp_path):
    path = tmp_path / "progress.jsonl"
    store = PredictionStore(path, RECORD)
    awkward = "first 🙂\u2028line\x85next\r\n"  # str.splitlines() would cut this record in three
    store.add([("ka", "a", done(awkward)), ("kb", "b", done(""))])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"key": "kc", "outp')  # the process died mid-write
    resumed = PredictionStore(path, RECORD)
    assert outputs(resumed) == {"ka": awkward, "kb": ""}
    resumed.add([("kc", "c", done("third"))])
    assert outputs(PredictionStore(path, RECORD)) == {"ka": awkward, "kb": "", "kc": "third"}
    assert len(path.read_text(encoding="utf-8").split("\n")) == 1 + 3 + 1


def test_store_refuses_other_settings(tmp_path):
    PredictionStore(tmp_path / "p.jsonl", zero_shot_record(retriever="bm25", k=4)).add([("ka", "a", done("x"))])
    with pytest.raises(RunFolderError, match="retrieval.num_retrieved: 4 -> 2"):
        PredictionStore(tmp_path / "p.jsonl", zero_shot_record(retriever="bm25", k=2))


def test_store_reads_a_settings_line_of_toolkit_0_1_0_through_the_migration(tmp_path):
    """A progress file begun before run records (flat settings, no version) resumes when the settings agree."""
    path = tmp_path / "p.jsonl"
    flat = {"task": "product_review", "setting": "user", "split": "validation", "model": "tiny", "base_model": None,
            "model_fingerprint": None, "backend": "transformers", "dtype": "float32", "max_prompt_length": 1024,
            "chat_template": False, "chat_template_kwargs": None, "strip_reasoning": True, "max_new_tokens": 12,
            "do_sample": False, "num_beams": 1, "data": {"data": "product_review_user", "data_dir": None,
                                                        "revision": None, "fingerprint": None}, "use_profile": False}
    path.write_text(json.dumps({"settings": flat}) + "\n" + json.dumps({"key": "k1", "id": "a", "output": "x"}) + "\n")
    assert outputs(PredictionStore(path, RECORD, keys=["k1"])) == {"k1": "x"}
    with pytest.raises(RunFolderError, match="generation.num_beams: 1 -> 2"):
        PredictionStore(path, dataclasses.replace(RECORD, generation=DecodingSettings(max_new_tokens=12, num_beams=2)))


def test_store_keeps_only_unchanged_prompts_when_the_data_changed(tmp_path, caplog):
    path = tmp_path / "p.jsonl"
    old, new = zero_shot_record(data="old"), zero_shot_record(data="new")
    PredictionStore(path, old).add([("k1", "a", done("x")), ("k2", "b", done("y"))])
    store = PredictionStore(path, new, keys=["k2", "k3"])
    assert outputs(store) == {"k2": "y"} and "1 of 2 finished examples have the same prompt" in caplog.text
    assert "data.data: 'old' -> 'new'" in caplog.text
    assert outputs(PredictionStore(path, new)) == {"k2": "y"}  # header rewritten


def test_store_names_a_corrupt_line(tmp_path):
    path = tmp_path / "p.jsonl"
    PredictionStore(path, RECORD).add([("ka", "a", done("x"))])
    path.write_text(path.read_text() + "oops\n" + '{"key": "kb", "id": "b", "output": "y"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl, line 3: not valid JSON"):
        PredictionStore(path, RECORD)


def test_predictions_file_is_the_benchmark_format_in_given_order(tmp_path):
    write_predictions(tmp_path / "preds.json", "LongLaMP_product_review_user", ["b", "a"], {"a": "1", "b": "2"})
    data = json.loads((tmp_path / "preds.json").read_text())
    assert data == {"task": "LongLaMP_product_review_user", "golds": [{"id": "b", "output": "2"},
                                                                      {"id": "a", "output": "1"}]}
    assert [p.name for p in tmp_path.iterdir()] == ["preds.json"]  # no temporary file left behind
