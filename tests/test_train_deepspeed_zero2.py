"""The shipped DeepSpeed ZeRO-2 config through `accelerate launch` (one CPU process): training saves a
checkpoint that DeepSpeed reloads and a final model that transformers reloads and generates with."""

from __future__ import annotations

import pytest
from test_train_support import assert_same_weights, launch_deepspeed, run_flags, weights

pytest.importorskip("deepspeed")

pytest_plugins = ["test_train_support"]  # the shared fixtures


def test_zero2_saves_a_checkpoint_and_a_model_that_reload(tiny_llama, short_data, tmp_path):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    launch_deepspeed("deepspeed_zero2.yaml", run_flags(tiny_llama, tmp_path / "run", *short_data, max_steps=2,
                                                        gradient_accumulation_steps=2))
    final = weights(tmp_path / "run" / "final" / "model.safetensors")
    assert not all(final[name].equal(tensor) for name, tensor in weights(tiny_llama / "model.safetensors").items())
    checkpoint = get_fp32_state_dict_from_zero_checkpoint(str(tmp_path / "run" / "checkpoints" / "checkpoint-2"))
    assert_same_weights({name: checkpoint[name] for name in final}, final, atol=0)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "final")
    prompt = tokenizer("Generate the review text", return_tensors="pt")
    assert model.generate(**prompt, max_new_tokens=4, do_sample=False).shape[1] > prompt["input_ids"].shape[1]
