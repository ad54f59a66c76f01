"""Two real CPU processes (DDP over gloo, launched by `accelerate launch`): each rank trains on its own
examples, the ranks' weights stay equal and equal one process training on the same global batches, and a run
resumed from a checkpoint ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
import re
from collections import defaultdict

from test_train_support import REPO, accelerate_launch, assert_same_weights, run_flags, weights

from training.config import parse_args
from training.loop import train

pytest_plugins = ["test_train_support"]  # the shared fixtures

# Runs training.loop.train as train.py does, then saves what this rank holds, so that ranks can be compared.
DRIVER = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from accelerate.state import PartialState
from safetensors.torch import save_file
from training.config import parse_args
from training.loop import train

config = parse_args(sys.argv[1:])
result = train(config)
state = {{name: tensor.detach().contiguous() for name, tensor in result.model.state_dict().items()}}
save_file(state, f"{{config.output_dir}}/rank{{PartialState().process_index}}.safetensors")
"""
TWO_CPU_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                     "--dynamo_backend", "no"]


def test_two_processes_shard_the_data_keep_equal_weights_and_resume(tiny_llama, short_data, tmp_path,
                                                                     fresh_accelerate):
    train_rows, validation_rows = short_data
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    # 12 rows, 2 per micro-batch and process, 2 micro-batches per step: steps of 8 and 4 examples, one epoch;
    # a checkpoint after the first step, from which a second run resumes.
    common = dict(max_steps=2, gradient_accumulation_steps=2, learning_rate=1e-2, save_steps=1, save_total_limit=3)
    whole = run_flags(tiny_llama, tmp_path / "ddp", train_rows, validation_rows, per_device_train_batch_size=2,
                      log_level="debug", **common)
    resumed = run_flags(tiny_llama, tmp_path / "resumed", train_rows, validation_rows, per_device_train_batch_size=2,
                        resume_from_checkpoint=tmp_path / "ddp" / "checkpoints" / "checkpoint-1", **common)
    done = accelerate_launch(TWO_CPU_PROCESSES, driver, whole, env={"ACCELERATE_USE_CPU": "1"}, timeout=300)
    accelerate_launch(TWO_CPU_PROCESSES, driver, resumed, env={"ACCELERATE_USE_CPU": "1"}, timeout=300)

    seen = defaultdict(lambda: defaultdict(list))  # step -> rank -> ids
    for rank, step, ids in re.findall(r"process (\d) step (\d+) trains on (\S+)", done.stderr):
        seen[int(step)][int(rank)] += ids.split(",")
    assert sorted(seen) == [0, 1] and all(sorted(ranks) == [0, 1] for ranks in seen.values())
    for ranks in seen.values():
        assert not set(ranks[0]) & set(ranks[1]), "both ranks trained on the same example in one step"
    import datasets

    every_id = datasets.load_from_disk(str(train_rows))["id"]
    assert sorted(i for ranks in seen.values() for ids in ranks.values() for i in ids) == sorted(every_id)

    rank0, rank1 = weights(tmp_path / "ddp" / "rank0.safetensors"), weights(tmp_path / "ddp" / "rank1.safetensors")
    assert_same_weights(rank0, rank1, atol=0)
    assert_same_weights(rank0, weights(tmp_path / "ddp" / "final" / "model.safetensors"), atol=0)
    assert_same_weights(rank0, weights(tmp_path / "resumed" / "final" / "model.safetensors"))
    assert_same_weights(rank0, weights(tmp_path / "resumed" / "rank1.safetensors"))

    # One process with twice the micro-batch sees the same examples per step: the loss is a mean over the
    # step's target tokens wherever they were, so the result matches up to float summation order (which
    # Adam's normalisation amplifies for near-zero gradients: the tolerance is 1% of one step's update).
    single = train(parse_args(run_flags(tiny_llama, tmp_path / "single", train_rows, validation_rows,
                                        per_device_train_batch_size=4, **common)))
    assert_same_weights(rank0, single.model.state_dict(), atol=1e-2 * common["learning_rate"])
    # Validation loss gathered from both ranks (5 rows: accelerate pads the last batch, the padding is dropped).
    ddp_record = json.loads((tmp_path / "ddp" / "final" / "training_config.json").read_text())
    assert abs(ddp_record["best_metric"] - single.state.best_metric) < 1e-4
