"""The shipped DeepSpeed ZeRO-2 config through `accelerate launch` (one CPU process): training saves a
checkpoint that DeepSpeed reloads and a final model that transformers reloads and generates with, and a run
SIGKILLed in the middle of its second epoch and resumed ends bit-identical to the uninterrupted run."""

from __future__ import annotations

import functools

import pytest
from support.training import (
    assert_same_weights,
    launch_deepspeed,
    run_flags,
    train_killed_then_resumed,
    weights,
    write_driver,
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

pytest.importorskip("deepspeed")


def test_zero2_saves_reloadable_checkpoints_and_models_and_resumes_after_sigkill(tiny_llama, short_data, tmp_path):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # 12 rows, 2 per micro-batch, 2 micro-batches per step: 3 steps per epoch; step 4 is mid second epoch.
    options = dict(max_steps=5, save_steps=2, save_total_limit=2, gradient_accumulation_steps=2)
    launch = functools.partial(launch_deepspeed, "deepspeed_zero2.yaml", script=write_driver(tmp_path))
    launch(run_flags(tiny_llama, tmp_path / "run", *short_data, **options))
    train_killed_then_resumed(launch, run_flags(tiny_llama, tmp_path / "killed", *short_data, **options), 4)

    final = weights(tmp_path / "run" / "final" / "model.safetensors")
    assert not all(final[name].equal(tensor) for name, tensor in weights(tiny_llama / "model.safetensors").items())
    assert_same_weights(final, weights(tmp_path / "killed" / "final" / "model.safetensors"), atol=0)
    checkpoint = get_fp32_state_dict_from_zero_checkpoint(str(tmp_path / "run" / "checkpoints" / "checkpoint-5"))
    assert_same_weights({name: checkpoint[name] for name in final}, final, atol=0)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "final")
    prompt = tokenizer("Generate the review text", return_tensors="pt")
    assert model.generate(**prompt, max_new_tokens=4, do_sample=False).shape[1] > prompt["input_ids"].shape[1]
