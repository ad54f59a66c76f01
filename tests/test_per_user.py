"""Per-user adapters (OPPU) on the bundled sample: users spread over two processes, every user trained once and
reported; a run killed at a user boundary continues with the next user and ends with the same adapters; each
adapter lowers its user's held-out loss and changes that user's predictions only."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.training import REPO, SAMPLE, accelerate_launch, reset_accelerate

from generation.vllm_engine import VLLMGenerator
from longlamp_cli import run_command
from longlamp_tasks import TASKS

SCRIPT = REPO / "training" / "train_per_user.py"
USERS = ["user_0013_cooking", "user_0014_cycling", "user_0015_chess", "user_0016_gardening"]  # 0012: no profile
TWO_CPU_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                     "--dynamo_backend", "no"]


def flags(model, output_dir, cache_dir, **changes) -> list[str]:
    settings = {"model_name": model, "data": "product_review_user", "split": "validation", "data_dir": SAMPLE,
                "cache_dir": cache_dir, "output_dir": output_dir, "max_items_per_user": 6, "num_train_epochs": 2,
                "learning_rate": 5e-2, "max_prompt_length": 256, "per_device_train_batch_size": 3, **changes}
    return [part for name, value in settings.items() for part in (f"--{name}", str(value))]


def digests(run: Path) -> dict[str, str]:
    return {folder.name: hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()
            for folder in sorted((run / "users").iterdir())}


@pytest.fixture(scope="module")
def two_process_run(tiny_llama, sample_cache, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("per-user") / "run"
    accelerate_launch(TWO_CPU_PROCESSES, SCRIPT, flags(tiny_llama, run, sample_cache),
                      env={"ACCELERATE_USE_CPU": "1"}, timeout=300)
    return run


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_train_every_user_with_a_profile_once_and_report_time_and_storage(two_process_run):
    import json

    from personalization.user_adapters import AdapterStore

    store = AdapterStore(two_process_run)
    assert sorted(store.adapters()) == USERS
    for user in USERS:
        record, folder = store.record(user), store.path(user)
        assert record["seconds"] > 0 and record["profile_examples"] == 6
        assert record["adapter_bytes"] == sum(f.stat().st_size for f in folder.iterdir() if f.name != "user.json")
    report = json.loads((two_process_run / "per_user_report.json").read_text())
    assert report["users"] == 5 and report["users_with_adapter"] == 4
    assert report["total_adapter_bytes"] == sum(store.record(u)["adapter_bytes"] for u in USERS)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_each_users_adapter_lowers_that_users_held_out_loss(two_process_run):
    from personalization.user_adapters import AdapterStore

    store = AdapterStore(two_process_run)
    for user in USERS:
        record = store.record(user)
        assert record["held_out_examples"] == 1
        assert record["held_out_loss"] < record["held_out_loss_without_adapter"], user


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_run_killed_at_a_user_boundary_continues_with_the_next_user_and_ends_as_uninterrupted(
        two_process_run, tiny_llama, sample_cache, tmp_path):
    run = tmp_path / "killed"
    command = [sys.executable, str(SCRIPT), *flags(tiny_llama, run, sample_cache)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while len(list(run.glob("users/*/user.json"))) < 1 and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in run.glob("users/*/user.json")}
    assert 1 <= len(finished) < len(USERS), "the run should have been killed after its first user"

    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    assert {p.parent.name: p.stat().st_mtime_ns for p in run.glob("users/*/user.json")
            if p.parent.name in finished} == finished  # finished users are not trained again
    assert not list((run / "users").glob(".*"))  # no half-written folder is left
    assert digests(run) == digests(two_process_run)  # one process or two, killed or not: the same adapters


@pytest.mark.multiprocess
@pytest.mark.slow
def test_other_settings_in_the_same_folder_are_refused(two_process_run, tiny_llama, sample_cache, capsys,
                                                       fresh_accelerate):
    from training.train_per_user import main

    code = run_command(main, flags(tiny_llama, two_process_run, sample_cache, lora_r=4), "train_per_user.py")
    assert code == 2
    assert "training.lora_r: 8 -> 4" in capsys.readouterr().err


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_users_adapter_changes_only_that_users_predictions(two_process_run, tiny_llama, sample_cache):
    import longlamp
    from generation import get_backend
    from generation.decoding import GenerationSettings
    from generation.source import resolve_model
    from longlamp_prompts import PromptBuilder
    from personalization.generate import generate_per_user
    from personalization.user_adapters import AdapterStore

    task = TASKS["product_review"]
    rows = list(longlamp.load_split("product_review_user", "validation", data_dir=str(SAMPLE), cache_dir=sample_cache))
    source = resolve_model(str(tiny_llama))
    generator = get_backend("transformers", source, GenerationSettings(max_new_tokens=12))
    builder = PromptBuilder(task, source.tokenizer, 256)
    ids = [source.encode(builder([], row["input"]), False) for row in rows]
    users = [row["reviewerId"] for row in rows]
    adapters = AdapterStore(two_process_run).adapters()

    alone = generate_per_user(generator, ids, users)
    one = generate_per_user(generator, ids, users, adapters={"user_0014_cycling": adapters["user_0014_cycling"]})
    changed = [user for user, a, b in zip(users, alone, one) if a != b]
    assert changed == ["user_0014_cycling"]
    every = generate_per_user(generator, ids, users, adapters=adapters)
    assert every[users.index("user_0012_astronomy")] == alone[users.index("user_0012_astronomy")]  # no adapter
    assert every[users.index("user_0014_cycling")] == one[users.index("user_0014_cycling")]
    assert generate_per_user(generator, ids, users) == alone  # adapters switched in and out leave the model as it was


@pytest.mark.multiprocess
@pytest.mark.slow
def test_vllm_gets_one_lora_request_per_user_with_stable_ids_and_an_accepted_rank(two_process_run):
    from personalization.user_adapters import AdapterStore, vllm_lora_engine_options, vllm_lora_requests

    adapters = AdapterStore(two_process_run).adapters()
    requests = vllm_lora_requests(adapters)
    assert [requests[u]["lora_int_id"] for u in USERS] == [1, 2, 3, 4]
    assert all(requests[u]["lora_path"] == str(adapters[u]) for u in USERS)
    assert len({r["lora_name"] for r in requests.values()}) == 4
    assert vllm_lora_engine_options(adapters) == {"lora_rank": 8, "max_loras": 4}
    assert vllm_lora_engine_options(adapters, max_loras=2) == {"lora_rank": 8, "max_loras": 2}
    with pytest.raises(ValueError, match="no per-user adapters"):
        vllm_lora_engine_options({})


def test_grouped_batches_are_length_sorted_within_each_group_and_never_mix_groups():
    from generation.decoding import plan_batches
    from personalization.generate import grouped_batches, unfinished

    token_ids = [[0] * n for n in (5, 1, 9, 3, 7, 2)]
    batches = grouped_batches(token_ids, [[0, 2, 4], [1, 3, 5]], 2)
    assert batches == [[2, 4], [0], [3, 5], [1]]
    assert grouped_batches(token_ids, [list(range(6))], 4) == plan_batches([5, 1, 9, 3, 7, 2], 4)
    assert unfinished(batches, {2, 4, 3}) == [[0], [3, 5], [1]]  # a batch with anything missing is generated whole


@pytest.fixture(scope="module")
def vllm_sized_run(sample_cache, tmp_path_factory):
    """A tiny Llama with head size 64 (vLLM's kernels want it) and per-user adapters trained on it in one process."""
    from support.tiny_models import make_causal_lm

    from training.train_per_user import main

    root = tmp_path_factory.mktemp("vllm-per-user")
    model = make_causal_lm(root / "model", hidden_size=256, intermediate_size=512, num_attention_heads=4,
                           num_key_value_heads=2)
    reset_accelerate()
    assert main(flags(model, root / "run", sample_cache, learning_rate=1e-3, dtype="float32")) == 0
    reset_accelerate()
    return model, root / "run"


@pytest.mark.skipif(not VLLMGenerator.available(), reason="needs vLLM (a CUDA GPU, or vLLM's CPU build)")
def test_vllm_multi_lora_predicts_as_the_transformers_backend_switching_each_users_adapter_in(
        vllm_sized_run, sample_cache, tmp_path):
    """evaluate_per_user.py --backend vllm: each prompt carries its user's LoRA request (the user without a
    profile has none), users' adapters share batches; the predictions are the transformers backend's. A restart
    generates nothing."""
    import json

    import torch

    from evaluation.evaluate_per_user import main as evaluate

    model, run = vllm_sized_run
    dtype = "bfloat16" if torch.cuda.is_available() else "float32"  # vLLM's GPU kernels want half precision
    outputs = {}
    for backend in ("transformers", "vllm"):
        argv = ["--model_name", str(model), "--data", "product_review_user", "--split", "validation", "--data_dir",
                str(SAMPLE), "--cache_dir", sample_cache, "--adapters_dir", str(run), "--max_new_tokens", "16",
                "--max_prompt_length", "256", "--dtype", dtype, "--backend", backend,
                "--output_dir", str(tmp_path / backend)]
        assert evaluate(argv) == 0
        golds = json.loads((tmp_path / backend / "predictions.json").read_text())["golds"]
        outputs[backend] = {gold["id"]: gold["output"] for gold in golds}
    progress = (tmp_path / "vllm" / "progress.jsonl").read_text()
    assert json.loads(progress.splitlines()[0])["settings"]["backend"] == "vllm"
    same = sum(outputs["vllm"][key] == text for key, text in outputs["transformers"].items())
    assert same >= len(outputs["transformers"]) - (1 if torch.cuda.is_available() else 0)  # bf16 kernels: a near-tie
    assert len(set(outputs["vllm"].values())) > 1  # the users' adapters make different texts
    assert evaluate(argv) == 0
    assert (tmp_path / "vllm" / "progress.jsonl").read_text() == progress  # nothing generated twice


def test_profile_items_become_task_examples_without_their_target_in_the_input():
    from personalization.users import User, item_input, profile_examples

    email, review = TASKS["email_generation"], TASKS["product_review"]
    assert item_input(email, {"title": "Budget", "text": "the whole body"}) == (
        "Complete the text of the following email. title: Budget. text: ")
    item = {"overall": 4.0, "summary": "Nice", "description": "A pan", "reviewText": "Great pan."}
    older, newer = {**item, "reviewText": "An older review."}, {**item, "reviewText": "A newer review."}
    examples = profile_examples(review, User("u", [], [older, item, {**item, "reviewText": ""}, newer]))
    assert len(examples) == 3 and examples[1]["output"] == "Great pan."
    assert examples[1]["input"] == review.input_template.format(overall="4.0", description="A pan", summary="Nice")
    # OPPU's +RAG: each example retrieves from the user's earlier items only, never from later ones
    assert [len(e["profile"]) for e in examples] == [0, 1, 3] and examples[1]["profile"] == [older]


def test_adapters_train_on_top_of_a_task_adapter_with_retrieval_in_the_prompt(tiny_llama, sample_cache, tmp_path,
                                                                              fresh_accelerate):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from personalization.user_adapters import AdapterStore
    from training.train_per_user import main

    task_adapter = tmp_path / "task-adapter"  # a non-trivial adapter: LoRA's B is not zero-initialised here
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), lora).save_pretrained(task_adapter)
    runs = {}
    for name, extra in (("base", {}), ("task", {"task_adapter": task_adapter})):
        argv = flags(tiny_llama, tmp_path / name, sample_cache, max_users=2, max_items_per_user=2, num_train_epochs=1,
                     num_retrieved=1, **extra)
        assert main([*argv, "--use_profile"]) == 0
        runs[name] = AdapterStore(tmp_path / name).record("user_0013_cooking")
    # The per-user adapter starts from the task model: the loss without it is the task model's, not the base's.
    assert runs["task"]["held_out_loss_without_adapter"] != runs["base"]["held_out_loss_without_adapter"]
    assert runs["task"]["profile_examples"] == 2
