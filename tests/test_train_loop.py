"""One-process training runs: both architectures learn, reload and generate; LoRA trains only the adapter;
a resumed run ends where the uninterrupted one does; evaluation keeps the best model and writes predictions."""

from __future__ import annotations

import json

import pytest
import torch
from support.training import CONFIG, SAMPLE, assert_same_weights, reset_accelerate, run_flags, weights

from longlamp_errors import ConfigError
from longlamp_runs import read_model_record, read_record
from training.config import parse_args
from training.loop import train


@pytest.mark.parametrize("architecture", ["llama", "t5"])
def test_trains_on_the_bundled_sample_and_the_model_reloads(architecture, request, tmp_path, sample_cache,
                                                            fresh_accelerate):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    model_dir = request.getfixturevalue(f"tiny_{architecture}")
    flags = run_flags(model_dir, tmp_path / "run", CONFIG, CONFIG, data_dir=SAMPLE, cache_dir=sample_cache,
                      use_profile=True, retriever="bm25", num_retrieved=2,
                      max_train_examples=1, max_eval_examples=1, per_device_train_batch_size=1, max_steps=4,
                      max_prompt_length=160, max_target_length=1024, report_to="tensorboard")
    result = train(parse_args(flags))

    losses = [entry["loss"] for entry in result.state.history if "loss" in entry]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert "eval_loss" in result.state.history[-1]
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    final = tmp_path / "run" / "final"
    record, outcome = read_model_record(final / "training_config.json")
    assert record.model.name == str(model_dir) and outcome.global_step == 4
    auto_class = AutoModelForSeq2SeqLM if architecture == "t5" else AutoModelForCausalLM
    reloaded, tokenizer = auto_class.from_pretrained(final), AutoTokenizer.from_pretrained(final)
    assert_same_weights({k: v for k, v in reloaded.state_dict().items()},
                        {k: v for k, v in result.model.state_dict().items()})
    prompt = tokenizer("Generate the review text", return_tensors="pt")
    generated = reloaded.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape[1] > (0 if architecture == "t5" else prompt["input_ids"].shape[1])


@pytest.mark.multiprocess
@pytest.mark.slow
def test_lora_changes_only_the_adapter_which_reloads_with_peft(tiny_llama, short_data, tmp_path, fresh_accelerate):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    train_rows, validation_rows = short_data
    result = train(parse_args(run_flags(tiny_llama, tmp_path / "run", train_rows, validation_rows, use_lora=True,
                                        merge_lora=True, learning_rate=1e-2, gradient_checkpointing=True)))

    trainable = [name for name, p in result.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    final = tmp_path / "run" / "final"
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    assert not (final / "model.safetensors").exists()

    base = weights(tiny_llama / "model.safetensors")
    merged = weights(tmp_path / "run" / "final-merged" / "model.safetensors")
    targeted = {name for name in base if ".q_proj." in name or ".v_proj." in name}  # peft's default for Llama
    assert targeted
    for name in base:
        if name in targeted:
            assert not torch.equal(base[name], merged[name]), f"{name} did not learn"
        else:
            assert torch.equal(base[name], merged[name]), f"{name} changed outside the adapter"

    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), final)
    assert_same_weights(reloaded.merge_and_unload().state_dict(), merged, atol=1e-6)


@pytest.mark.parametrize("architecture, options", [
    ("llama", {"packing": True, "gradient_accumulation_steps": 2}),
    # T5 has dropout: the random states must be restored too.
    ("t5", {"gradient_accumulation_steps": 2, "group_by_length": True}),
])
def test_resumed_run_ends_with_the_uninterrupted_weights(architecture, options, request, short_data, tmp_path,
                                                          fresh_accelerate):
    model_dir = request.getfixturevalue(f"tiny_{architecture}")
    train_rows, validation_rows = short_data
    # 12 rows, 2 per micro-batch, 2 micro-batches per step: 3 steps per epoch; resume mid-epoch 0, end in epoch 1.
    common = dict(max_steps=5, save_steps=2, save_total_limit=5, **options)
    train(parse_args(run_flags(model_dir, tmp_path / "whole", train_rows, validation_rows, **common)))
    reset_accelerate()
    checkpoint = tmp_path / "whole" / "checkpoints" / "checkpoint-2"
    resumed = train(parse_args(run_flags(model_dir, tmp_path / "resumed", train_rows, validation_rows,
                                         resume_from_checkpoint=checkpoint, **common)))

    assert resumed.state.global_step == 5
    assert_same_weights(weights(tmp_path / "whole" / "final" / "model.safetensors"),
                        weights(tmp_path / "resumed" / "final" / "model.safetensors"))


def test_resume_refuses_a_changed_run(tiny_llama, short_data, tmp_path, fresh_accelerate):

    train_rows, validation_rows = short_data
    train(parse_args(run_flags(tiny_llama, tmp_path / "run", train_rows, None, max_steps=1)))
    with pytest.raises(ConfigError, match="training.learning_rate: 0.003 -> 0.1"):
        train(parse_args(run_flags(tiny_llama, tmp_path / "run", train_rows, None, max_steps=1, learning_rate=0.1,
                                   resume_from_checkpoint="latest")))


def test_generation_metrics_choose_the_best_model_and_test_predictions_are_written(tiny_chat_llama, short_data,
                                                                                   tmp_path, fresh_accelerate):
    train_rows, validation_rows = short_data
    result = train(parse_args(run_flags(
        tiny_chat_llama, tmp_path / "run", train_rows, validation_rows, test_data=validation_rows, max_steps=2,
        eval_steps=1, eval_generation_examples=2, max_new_tokens=6, metric_for_best_model="rougeL",
    )))

    evaluations = [entry for entry in result.state.history if "eval_loss" in entry]
    assert [entry["step"] for entry in evaluations] == [1, 2]
    assert all({"rouge1", "rougeL", "meteor"} <= entry.keys() for entry in evaluations)
    best = max(evaluations, key=lambda entry: entry["rougeL"])  # the first of equals wins
    assert result.state.best_step == best["step"]
    _, outcome = read_model_record(tmp_path / "run" / "best" / "training_config.json")
    assert outcome.global_step == best["step"] and outcome.metrics["rougeL"] == best["rougeL"]
    kept = json.loads((tmp_path / "run" / "validation" / "scores.json").read_text())  # the last evaluation's
    assert kept["step"] == 2 and kept["examples"] == 2
    assert read_record(tmp_path / "run" / "validation" / "scores.json") == read_record(
        tmp_path / "run" / "training_run.json")  # generated by the run its record describes
    assert {m: kept["scores"]["metrics"][m] for m in ("rouge1", "rougeL", "meteor")} == {
        m: evaluations[-1][m] for m in ("rouge1", "rougeL", "meteor")}
    assert set(kept["scores"]["bootstrap"]["intervals"]) == {"rouge1", "rougeL", "meteor"}
    assert len((tmp_path / "run" / "validation" / "per_sample.jsonl").read_text().splitlines()) == 2

    predictions = json.loads((tmp_path / "run" / "predictions_test.json").read_text())
    assert predictions["task"] == f"LongLaMP_{CONFIG}"
    import datasets

    assert [gold["id"] for gold in predictions["golds"]] == datasets.load_from_disk(str(validation_rows))["id"]
    assert all(isinstance(gold["output"], str) for gold in predictions["golds"])


def test_validation_generations_equal_zero_shot_evaluation_of_the_same_checkpoint(tiny_chat_llama, short_data,
                                                                                  tmp_path, fresh_accelerate):
    """One generation path: what training scores at its last evaluation is what evaluate_llm.py generates from
    the saved model (same prompts, stop tokens and decoding), text for text."""
    from evaluation import evaluate_llm

    train_rows, validation_rows = short_data
    train(parse_args(run_flags(tiny_chat_llama, tmp_path / "run", train_rows, validation_rows,
                               test_data=validation_rows, max_steps=2, eval_steps=2, eval_generation_examples=5,
                               max_new_tokens=40, learning_rate=3e-2)))
    assert evaluate_llm.main(["--validation_data", str(validation_rows), "--task", CONFIG, "--model_name",
                              str(tmp_path / "run" / "final"), "--output_dir", str(tmp_path / "zero_shot"),
                              "--max_new_tokens", "40", "--max_prompt_length", "128", "--batch_size", "2"]) == 0
    zero_shot = json.loads((tmp_path / "zero_shot" / "predictions.json").read_text())["golds"]
    for name in ("validation/predictions.json", "predictions_test.json"):
        trained = json.loads((tmp_path / "run" / name).read_text())["golds"]
        assert [(g["id"], g["output"]) for g in trained] == [(g["id"], g["output"]) for g in zero_shot]
