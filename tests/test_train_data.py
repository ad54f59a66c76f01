"""Examples, batches and settings: prompts within budget (targets and inputs never cut), loss only on targets,
packing that gives the padded loss and gradients, a deterministic data order, and clear early errors."""

from __future__ import annotations

import datasets
import pytest
import torch
from support.tiny_models import make_tokenizer
from support.training import CONFIG, SAMPLE, run_flags

from longlamp_errors import ConfigError, DataError, ModelLoadError
from longlamp_prompts import PromptBuilder
from longlamp_tasks import TASKS, parse_config_name
from training.collate import TrainingCollator
from training.config import parse_args
from training.data import IGNORE_INDEX, ExampleEncoder, encode_dataset
from training.loss import per_example_sums, token_losses
from training.modeling import lora_target_modules
from training.sampling import EpochSampler

REVIEW = TASKS["product_review"]
ITEM = {"overall": 5.0, "summary": "Great pan", "description": "A pan", "reviewText": "It heats evenly. " * 60}
ROW = {
    "id": "r0",
    "input": 'Generate the review text written by a reviewer who has a given an overall rating of "4.0" for a product '
             'with description "A kettle". The summary of the review text is "Boils fast".',
    "output": "Boils water in two minutes and looks great on the counter.",
    "profile": [ITEM, dict(ITEM, summary="Too small", reviewText="Not for a family.")],
}


def encoder_for(tokenizer, encoder_decoder=False, budget=10_000, target=512, profile_items=0):
    return ExampleEncoder(task=REVIEW, tokenizer=tokenizer, is_encoder_decoder=encoder_decoder,
                          max_prompt_length=budget, max_target_length=target, num_retrieved=profile_items,
                          is_ranked=True)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def test_decoder_only_example_learns_the_target_and_end_of_sequence_only(tokenizer):
    encoded = encoder_for(tokenizer).encode(ROW)
    prompt_ids = tokenizer(ROW["input"])["input_ids"]  # no profile: the prompt is the task input
    target_ids = tokenizer(ROW["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert encoded["input_ids"] == prompt_ids + target_ids
    assert encoded["labels"] == [IGNORE_INDEX] * len(prompt_ids) + target_ids
    assert encoded["prompt_length"] == len(prompt_ids)


def test_encoder_decoder_example_has_the_prompt_as_input_and_the_target_as_labels(tokenizer):
    encoded = encoder_for(tokenizer, encoder_decoder=True).encode(ROW)
    assert tokenizer.decode(encoded["input_ids"]) == ROW["input"]
    assert encoded["labels"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(encoded["labels"][:-1]) == ROW["output"]


def test_chat_tokenizer_wraps_the_prompt_in_its_template():
    chat = make_tokenizer(chat=True)
    encoded = encoder_for(chat).encode(ROW)
    prompt = chat.decode(encoded["input_ids"][: encoded["prompt_length"]])
    assert prompt == f"<|user|>\n{ROW['input']}</s>\n<|assistant|>\n"


def test_prompt_is_the_official_one_built_from_the_retrieved_items(tokenizer):
    encoded = encoder_for(tokenizer, profile_items=2).encode(ROW)
    prompt = tokenizer.decode(encoded["input_ids"][: encoded["prompt_length"]])
    assert prompt == REVIEW.build_prompt(ROW["profile"][:2], ROW["input"])


@pytest.mark.parametrize("config", ["abstract_generation_user", "product_review_temporal", "topic_writing_user"])
def test_prompts_on_the_fly_are_the_official_ones_from_the_retrieved_items(tokenizer, config, sample_cache):
    import longlamp
    from retrieval import get_retriever, top_k_items

    task = parse_config_name(config)[0]
    rows = longlamp.load_split(config, "validation", data_dir=str(SAMPLE), cache_dir=sample_cache)
    encoder = ExampleEncoder(task=task, tokenizer=tokenizer, is_encoder_decoder=False, max_prompt_length=100_000,
                             max_target_length=100_000, num_retrieved=2, retriever=get_retriever("bm25"))
    for row in rows.select(range(3)):
        expected = task.build_prompt(top_k_items(task, row, 2, retriever="bm25"), row["input"])
        assert encoder.prompt(row) == expected


@pytest.mark.parametrize("encoder_decoder", [False, True])
def test_budget_shortens_profile_items_never_the_input_or_the_target(tokenizer, encoder_decoder):
    budget = PromptBuilder(REVIEW, tokenizer, 10_000).count(ROW["input"]) + 80
    encoded = encoder_for(tokenizer, encoder_decoder, budget=budget, profile_items=2).encode(ROW)
    prompt_ids = encoded["input_ids"][: encoded["prompt_length"]]
    assert len(prompt_ids) <= budget
    prompt = tokenizer.decode(prompt_ids)
    assert prompt.endswith(". Following the given patterns " + ROW["input"])
    assert prompt.count("It heats evenly.") < 60
    target = [t for t in encoded["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(target[:-1]) == ROW["output"] and target[-1] == tokenizer.eos_token_id


def test_budget_smaller_than_the_input_names_the_row(tokenizer):
    rows = datasets.Dataset.from_list([dict(ROW, id="too-long-input")])
    with pytest.raises(DataError, match="train.jsonl: row 'too-long-input': the task input alone takes .* tokens"):
        encode_dataset(rows, encoder_for(tokenizer, budget=20), "train.jsonl")


def test_rows_without_outputs_cannot_train(tokenizer):
    rows = datasets.Dataset.from_list([ROW, dict(ROW, id="r1", output=None)])
    with pytest.raises(DataError, match="test.json: row 'r1' has no 'output'"):
        encode_dataset(rows, encoder_for(tokenizer), "test.json")
    without_column = datasets.Dataset.from_list([{k: v for k, v in ROW.items() if k != "output"}])
    with pytest.raises(DataError, match="no output column"):
        encode_dataset(without_column, encoder_for(tokenizer), "test.json")
    assert len(encode_dataset(without_column, encoder_for(tokenizer), "test.json", with_target=False)) == 1


def test_long_targets_are_refused_or_skipped_never_cut(tokenizer):
    rows = datasets.Dataset.from_list([ROW, dict(ROW, id="long", output="word " * 200)])
    with pytest.raises(DataError, match="row 'long': the output takes .* --max_target_length 40"):
        encode_dataset(rows, encoder_for(tokenizer, target=40), "train")
    kept = encode_dataset(rows, encoder_for(tokenizer, target=40), "train", skip_long_targets=True)
    assert kept["id"] == ["r0"]


def _examples(tokenizer, lengths=(2, 20, 4)):
    """Decoder-only examples with prompts and targets of different lengths."""
    examples = []
    for i, words in enumerate(lengths):
        row = dict(ROW, input=" ".join(["Generate"] * (2 + i)), output=" ".join(["great"] * words))
        examples.append({**encoder_for(tokenizer).encode(row), "row": i})
    return examples


def _loss_and_grads(model, batch, keep):
    model.zero_grad()
    losses, owners = token_losses(model, batch, is_encoder_decoder=False, keep_target_logits=keep)
    losses.sum().backward()
    return losses.sum().detach(), per_example_sums(losses, owners, 3), [p.grad.clone() for p in model.parameters()]


def test_packed_and_mask_free_padded_batches_give_the_masked_loss_and_gradients(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    examples = _examples(AutoTokenizer.from_pretrained(tiny_llama))
    padded = TrainingCollator(pad_token_id=0)(examples)
    packed = TrainingCollator(pad_token_id=0, packing=True)(examples)
    assert "attention_mask" not in padded and packed["input_ids"].numel() < padded["input_ids"].numel()
    # Reference: the model's own loss (mean over target tokens) with the attention mask that padding calls for.
    mask = (padded["example_index"] >= 0).long()
    model.zero_grad()
    own = model(input_ids=padded["input_ids"], attention_mask=mask, labels=padded["labels"], use_cache=False).loss
    own.backward()
    reference_grads = [p.grad.clone() for p in model.parameters()]
    reference_sums = None
    for batch, keep in ((padded, False), (padded, True), (packed, False), (packed, True)):
        loss, sums, grads = _loss_and_grads(model, batch, keep)
        count = sums[:, 1].sum()
        assert torch.allclose(loss / count, own, rtol=1e-5)
        reference_sums = sums if reference_sums is None else reference_sums
        assert torch.allclose(sums, reference_sums, rtol=1e-5, atol=1e-5)  # the same per example
        for grad, expected in zip(grads, reference_grads):
            assert torch.allclose(grad / count, expected, rtol=1e-4, atol=1e-7)


def test_a_packed_row_holds_every_example_whole_without_padding(tokenizer):
    examples = _examples(tokenizer, lengths=(2, 30, 3))
    packed = TrainingCollator(pad_token_id=0, packing=True)(examples)
    assert packed["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples))
    for i, example in enumerate(examples):
        where = packed["example_index"] == i
        assert packed["input_ids"][where].tolist() == example["input_ids"]
        assert packed["labels"][where].tolist() == example["labels"]
        assert packed["position_ids"][where].tolist() == list(range(len(example["input_ids"])))


def test_order_depends_on_seed_and_epoch_only_and_groups_by_length():
    sampler = EpochSampler(100, seed=3)
    first = list(sampler)
    torch.manual_seed(123)  # the global random state plays no part
    assert list(sampler) == first and sorted(first) == list(range(100))
    sampler.set_epoch(1)
    assert list(sampler) != first
    lengths = [i % 17 for i in range(100)]
    grouped = list(EpochSampler(100, seed=3, lengths=lengths, global_batch_size=1))
    assert sorted(grouped) == list(range(100))
    window = grouped[:50]
    assert [lengths[i] for i in window] == sorted((lengths[i] for i in window), reverse=True)


def test_config_file_with_command_line_overrides(tmp_path):
    settings = tmp_path / "run.yaml"
    settings.write_text(f"train_data: {CONFIG}\nmodel_name: m\noutput_dir: out\nlearning_rate: 0.001\nuse_lora: true\n")
    config = parse_args(["--config", str(settings), "--learning_rate", "0.02", "--no-use_lora"])
    assert (config.learning_rate, config.use_lora, config.task) == (0.02, False, CONFIG)
    settings.write_text("train_data: x\nlearning_rte: 0.1\n")
    with pytest.raises(ConfigError, match="unknown setting.*learning_rte"):
        parse_args(["--config", str(settings)])
    with pytest.raises(ConfigError, match="--task is required"):
        parse_args(["--train_data", "rows.jsonl", "--model_name", "m", "--output_dir", "o"])


def test_unknown_task_is_refused():
    with pytest.raises(ConfigError, match="unknown LongLaMP config 'poetry_user'"):
        parse_args(["--task", "poetry_user", "--train_data", "x", "--model_name", "m", "--output_dir", "o"])


def _train(flags):
    from training.loop import train

    return train(parse_args(flags))


def test_unknown_model_fails_before_any_data_is_read(tmp_path, fresh_accelerate, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="cannot load model '/no/such/model'"):
        _train(run_flags("/no/such/model", tmp_path / "out", tmp_path / "no-such-rows"))
    assert not (tmp_path / "out").exists()


@pytest.fixture
def unloadable_weights(tiny_llama, tmp_path):
    """The tiny model with a corrupt weights file: any error other than the model's proves it was not loaded."""
    import shutil

    model = tmp_path / "corrupt-model"
    shutil.copytree(tiny_llama, model)
    (model / "model.safetensors").write_bytes(b"not weights")
    return model


def test_rows_without_outputs_fail_before_the_model_is_loaded(unloadable_weights, tmp_path, fresh_accelerate):
    rows = tmp_path / "no-outputs"
    datasets.Dataset.from_list([ROW, dict(ROW, id="r1", output=None)]).save_to_disk(str(rows))
    with pytest.raises(DataError, match="row 'r1' has no 'output'"):
        _train(run_flags(unloadable_weights, tmp_path / "out", rows))
    assert not (tmp_path / "out").exists()


def test_budget_below_the_input_fails_before_the_model_is_loaded(unloadable_weights, tmp_path, fresh_accelerate):
    rows = tmp_path / "rows"
    datasets.Dataset.from_list([ROW]).save_to_disk(str(rows))
    with pytest.raises(DataError, match="row 'r0': the task input alone takes .* --max_prompt_length 8"):
        _train(run_flags(unloadable_weights, tmp_path / "out", rows, max_prompt_length=8))
    assert not (tmp_path / "out").exists()


def test_packing_needs_a_decoder_only_model(tiny_t5, short_data, tmp_path, fresh_accelerate):
    with pytest.raises(ConfigError, match="--packing needs a decoder-only model"):
        _train(run_flags(tiny_t5, tmp_path / "out", short_data[0], packing=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where QLoRA cannot run")
def test_qlora_without_a_gpu_is_a_clear_error(tiny_llama, short_data, tmp_path):
    with pytest.raises(ConfigError, match="QLoRA.*needs a CUDA GPU"):
        _train(run_flags(tiny_llama, tmp_path / "out", short_data[0], use_lora=True, load_in_4bit=True))


def test_lora_targets_default_per_architecture():
    assert lora_target_modules("auto", "llama") == ["q_proj", "v_proj"]
    assert lora_target_modules("auto", "t5") == ["q", "v"]
    assert lora_target_modules("auto", "an-architecture-peft-does-not-know") == "all-linear"
    assert lora_target_modules("q_proj, o_proj", "llama") == ["q_proj", "o_proj"]
