"""Two real CPU processes (DDP over gloo, launched by `accelerate launch`): each rank trains on its own
examples, the ranks' weights stay equal and equal one process training on the same global batches, and a run
SIGKILLed in the middle of its second epoch and resumed ends bit-identical to the uninterrupted run (padded and
packed batches)."""

from __future__ import annotations

import functools
import re
from collections import defaultdict

import pytest
from support.training import (
    accelerate_launch,
    assert_same_weights,
    run_flags,
    train_killed_then_resumed,
    weights,
    write_driver,
)

from longlamp_runs import read_model_record
from training.config import parse_args
from training.loop import train

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

TWO_CPU_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                     "--dynamo_backend", "no"]
# 12 rows, 2 per micro-batch and process: 3 micro-batches per process and epoch; with 2 per step, steps of 8 and
# 4 examples, 2 steps per epoch. Step 3 is the middle of the second epoch, where a checkpoint's resume must skip
# the epoch's first micro-batches of the second epoch's order (with 2 processes accelerate once kept epoch 0's).
COMMON = dict(max_steps=4, gradient_accumulation_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
              save_steps=1, save_total_limit=2)
MID_SECOND_EPOCH = 3


def _two_processes(driver, argv, env=None, killed=False):
    return accelerate_launch(TWO_CPU_PROCESSES, driver, argv, env={"ACCELERATE_USE_CPU": "1", **(env or {})},
                             timeout=300, killed=killed)


def test_two_processes_shard_the_data_keep_equal_weights_and_resume_after_sigkill(tiny_llama, short_data, tmp_path,
                                                                                   fresh_accelerate):
    train_rows, validation_rows = short_data
    launch = functools.partial(_two_processes, write_driver(tmp_path))
    done = launch(run_flags(tiny_llama, tmp_path / "ddp", train_rows, validation_rows, log_level="debug", **COMMON))
    train_killed_then_resumed(launch, run_flags(tiny_llama, tmp_path / "killed", train_rows, validation_rows,
                                                **COMMON), MID_SECOND_EPOCH)

    seen = defaultdict(lambda: defaultdict(list))  # step -> rank -> ids
    for rank, step, ids in re.findall(r"process (\d) step (\d+) trains on (\S+)", done.stderr):
        seen[int(step)][int(rank)] += ids.split(",")
    assert sorted(seen) == [0, 1, 2, 3] and all(sorted(ranks) == [0, 1] for ranks in seen.values())
    for ranks in seen.values():
        assert not set(ranks[0]) & set(ranks[1]), "both ranks trained on the same example in one step"
    import datasets

    every_id = sorted(datasets.load_from_disk(str(train_rows))["id"])
    for epoch_steps in ((0, 1), (2, 3)):
        assert sorted(i for step in epoch_steps for ids in seen[step].values() for i in ids) == every_id
    assert len(re.findall(r"encoded \d+ rows of", done.stderr)) == 2, "each split is encoded once, by one rank"

    rank0, rank1 = weights(tmp_path / "ddp" / "rank0.safetensors"), weights(tmp_path / "ddp" / "rank1.safetensors")
    assert_same_weights(rank0, rank1, atol=0)
    assert_same_weights(rank0, weights(tmp_path / "ddp" / "final" / "model.safetensors"), atol=0)
    assert_same_weights(rank0, weights(tmp_path / "killed" / "final" / "model.safetensors"), atol=0)
    assert_same_weights(rank0, weights(tmp_path / "killed" / "rank1.safetensors"), atol=0)

    # One process with twice the micro-batch sees the same examples per step: the loss is a mean over the
    # step's target tokens wherever they were, so the result matches up to float summation order (which
    # Adam's normalisation amplifies for near-zero gradients: the tolerance is 1% of one step's update).
    single = train(parse_args(run_flags(tiny_llama, tmp_path / "single", train_rows, validation_rows,
                                        **{**COMMON, "per_device_train_batch_size": 4})))
    assert_same_weights(rank0, single.model.state_dict(), atol=1e-2 * COMMON["learning_rate"])
    # Validation loss gathered from both ranks (5 rows: accelerate pads the last batch, the padding is dropped).
    _, ddp_outcome = read_model_record(tmp_path / "ddp" / "final" / "training_config.json")
    assert abs(ddp_outcome.best_metric - single.state.best_metric) < 1e-4


def test_two_processes_packed_resume_after_sigkill_mid_epoch_is_bit_identical(tiny_llama, short_data, tmp_path):
    train_rows, _ = short_data
    launch = functools.partial(_two_processes, write_driver(tmp_path))
    options = dict(COMMON, packing=True)
    launch(run_flags(tiny_llama, tmp_path / "whole", train_rows, **options))
    train_killed_then_resumed(launch, run_flags(tiny_llama, tmp_path / "killed", train_rows, **options),
                              MID_SECOND_EPOCH)
    assert_same_weights(weights(tmp_path / "whole" / "final" / "model.safetensors"),
                        weights(tmp_path / "killed" / "final" / "model.safetensors"), atol=0)
