"""The shipped DeepSpeed ZeRO-3 config through `accelerate launch` (one CPU process): the final model is
gathered whole, a run resumed from a checkpoint ends with the uninterrupted run's weights, and --merge_lora
merges the saved adapter outside DeepSpeed (inside, from_pretrained would enter zero.Init)."""

from __future__ import annotations

import pytest
from support.training import assert_same_weights, launch_deepspeed, run_flags, weights

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

pytest.importorskip("deepspeed")


def test_zero3_run_resumed_from_a_checkpoint_matches_the_uninterrupted_run(tiny_llama, short_data, tmp_path):
    common = dict(max_steps=3, save_steps=2, gradient_accumulation_steps=2)
    launch_deepspeed("deepspeed_zero3.yaml", run_flags(tiny_llama, tmp_path / "whole", *short_data, **common))
    launch_deepspeed("deepspeed_zero3.yaml", run_flags(
        tiny_llama, tmp_path / "resumed", *short_data,
        resume_from_checkpoint=tmp_path / "whole" / "checkpoints" / "checkpoint-2", **common,
    ))
    whole = weights(tmp_path / "whole" / "final" / "model.safetensors")
    assert set(whole) == set(weights(tiny_llama / "model.safetensors"))  # gathered whole, not ZeRO-3 partitions
    assert_same_weights(whole, weights(tmp_path / "resumed" / "final" / "model.safetensors"))


def test_zero3_merge_lora_equals_a_plain_peft_merge_of_the_saved_adapter(tiny_llama, short_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    launch_deepspeed("deepspeed_zero3.yaml", run_flags(tiny_llama, tmp_path / "run", short_data[0], max_steps=2,
                                                        use_lora=True, merge_lora=True, learning_rate=1e-2))
    run = tmp_path / "run"
    merged = weights(run / "final-merged" / "model.safetensors")
    expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), run / "final")
    expected = {name: tensor for name, tensor in expected.merge_and_unload().state_dict().items()}
    assert_same_weights(expected, merged, atol=0)
    base = weights(tiny_llama / "model.safetensors")
    assert any(not base[name].equal(merged[name]) for name in base), "the adapter changed nothing"
