"""Per-user adapters are evaluated only on what they were trained for (issue 24 item 7, issue 27 item 7): the model
they were trained on (the base alone, or the task adapter they started from), the same retrieval and chat template,
and users they were trained for. A mismatch is one error line naming it, before any output; scores.json says how
many evaluated users had an adapter, with a warning when some had none."""

from __future__ import annotations

import json

import pytest

from longlamp_cli import run_command

SPLIT = ["--data", "product_review_user", "--split", "validation"]


@pytest.fixture(scope="module")
def adapters(tiny_llama, sample_dir, tmp_path_factory) -> tuple:
    """Adapters for the first two validation users (sorted by id): user_0012 has no profile, so only user_0013 gets
    one. Trained in process, on the base model alone, without profile."""
    from support.training import reset_accelerate

    from training.train_per_user import main

    folder = tmp_path_factory.mktemp("oppu") / "run"
    cache = str(tmp_path_factory.mktemp("datasets-cache"))
    reset_accelerate()
    try:
        assert main(["--model_name", str(tiny_llama), *SPLIT, "--data_dir", str(sample_dir), "--cache_dir", cache,
                     "--output_dir", str(folder), "--max_users", "2", "--max_items_per_user", "1",
                     "--num_train_epochs", "1", "--max_prompt_length", "256"]) == 0
    finally:
        reset_accelerate()
    return folder, cache


def error_line(capsys) -> str:
    """The one error line of a refused run (progress bars of loading aside)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("evaluate_per_user.py: error: "), lines
    return lines[0]


def evaluate_flags(model, sample_dir, adapters, tmp_path, *extra: str) -> list[str]:
    folder, cache = adapters
    return ["--model_name", str(model), *SPLIT, "--data_dir", str(sample_dir), "--cache_dir", cache,
            "--adapters_dir", str(folder), "--max_new_tokens", "4", "--max_prompt_length", "256",
            "--output_dir", str(tmp_path / "p"), *extra]


def test_scores_say_how_many_evaluated_users_had_an_adapter(tiny_llama, sample_dir, adapters, tmp_path, caplog):
    from evaluation.evaluate_per_user import main as evaluate

    assert evaluate(evaluate_flags(tiny_llama, sample_dir, adapters, tmp_path, "--max_eval_examples", "3")) == 0
    scores = json.loads((tmp_path / "p" / "scores.json").read_text())
    assert scores["user_adapters"]["users"] == 3 and scores["user_adapters"]["users_with_adapter"] == 1
    assert scores["user_adapters"]["warning"].startswith("2 of 3 evaluated users have no adapter")
    assert "2 of 3 evaluated users have no adapter" in caplog.text


def test_adapters_for_none_of_the_evaluated_users_are_refused(tiny_llama, sample_dir, adapters, tmp_path, capsys):
    from evaluation.evaluate_per_user import main as evaluate

    argv = [*evaluate_flags(tiny_llama, sample_dir, adapters, tmp_path), "--split", "test"]
    assert run_command(evaluate, argv, "evaluate_per_user.py") == 2
    error = error_line(capsys)
    assert "were trained for none of the 5 users evaluated" in error
    assert not (tmp_path / "p").exists()


def test_another_model_than_the_adapters_were_trained_on_is_refused(tiny_llama, tiny_chat_llama, sample_dir,
                                                                    adapters, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from evaluation.evaluate_per_user import main as evaluate

    task_adapter = tmp_path / "task-adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                   LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(task_adapter)
    for model in (tiny_chat_llama, task_adapter):  # another base; the right base under a task adapter
        assert run_command(evaluate, evaluate_flags(model, sample_dir, adapters, tmp_path),
                           "evaluate_per_user.py") == 2
        error = error_line(capsys)
        assert f"--model_name {model}: the adapters of --adapters_dir" in error
        assert f"trained on the base model {tiny_llama} alone; evaluate them with --model_name {tiny_llama}" in error
    assert not (tmp_path / "p").exists()


def test_other_retrieval_settings_than_the_adapters_were_trained_with_are_refused(tiny_llama, sample_dir, adapters,
                                                                                   tmp_path, capsys):
    from evaluation.evaluate_per_user import main as evaluate

    argv = [*evaluate_flags(tiny_llama, sample_dir, adapters, tmp_path), "--use_profile", "--num_retrieved", "2"]
    assert run_command(evaluate, argv, "evaluate_per_user.py") == 2
    error = error_line(capsys)
    assert "the adapters were trained with other settings than this run's" in error
    assert "retrieval.use_profile: False -> True" in error and "retrieval.num_retrieved: None -> 2" in error
    assert not (tmp_path / "p").exists()


def test_a_folder_without_the_training_record_is_refused(tiny_llama, sample_dir, adapters, tmp_path, capsys):
    import shutil

    from evaluation.evaluate_per_user import main as evaluate

    folder, cache = adapters
    copy = tmp_path / "copy"
    shutil.copytree(folder / "users", copy / "users")
    argv = evaluate_flags(tiny_llama, sample_dir, (copy, cache), tmp_path)
    assert run_command(evaluate, argv, "evaluate_per_user.py") == 2
    assert "has no per_user_config.json: not a training/train_per_user.py output folder" in error_line(capsys)


def test_adapters_on_a_task_adapter_take_it_or_its_merged_export_and_refuse_the_base(tiny_llama, sample_dir,
                                                                                     sample_cache, tmp_path, capsys,
                                                                                     fresh_accelerate):
    from peft import LoraConfig, get_peft_model
    from support.records import write_training_run
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evaluation import evaluate_per_user
    from evaluation.zero_shot import per_user
    from training.saving import export_merged
    from training.train_per_user import main as train

    task_adapter = tmp_path / "task" / "final"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                   LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(task_adapter)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(task_adapter)  # as train.py saves it
    write_training_run(tmp_path / "task", model_name=str(tiny_llama), max_prompt_length=256, use_chat_template=False)
    folder = tmp_path / "oppu"
    assert train(["--model_name", str(tiny_llama), "--task_adapter", str(task_adapter), *SPLIT, "--data_dir",
                  str(sample_dir), "--cache_dir", sample_cache, "--output_dir", str(folder), "--max_users", "2",
                  "--max_items_per_user", "1", "--num_train_epochs", "1"]) == 0
    merged = export_merged(task_adapter, tmp_path / "merged")
    for model in (task_adapter, merged):
        plan = per_user.prepare(evaluate_per_user.parse_args(evaluate_flags(model, sample_dir, (folder, sample_cache),
                                                                            tmp_path)))
        assert plan.coverage == {"users": 5, "users_with_adapter": 1, "warning": plan.coverage["warning"]}
    capsys.readouterr()
    assert run_command(evaluate_per_user.main, evaluate_flags(tiny_llama, sample_dir, (folder, sample_cache), tmp_path),
                       "evaluate_per_user.py") == 2
    assert (f"trained on the task adapter {task_adapter} (on {tiny_llama}); evaluate them with --model_name "
            f"{task_adapter} or its merged export") in error_line(capsys)

    # the task adapter changed in place: refused on it and on its merged export (checked through the adapter it names)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                   LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).save_pretrained(
        task_adapter)
    for model in (task_adapter, merged):
        assert run_command(evaluate_per_user.main, evaluate_flags(model, sample_dir, (folder, sample_cache), tmp_path),
                           "evaluate_per_user.py") == 2
        error = error_line(capsys)
        assert "the weights differ from those the adapters of --adapters_dir" in error
        assert f"(adapter {task_adapter} changed: fingerprint" in error
    assert not (tmp_path / "p").exists()


def test_a_model_folder_changed_in_place_is_refused_and_the_same_weights_accepted(tiny_llama, sample_dir,
                                                                                  sample_cache, tmp_path, capsys,
                                                                                  fresh_accelerate):
    """per_user_config.json records the fingerprint of the weights (the folder's content digest); the same path
    with other weights is one error line naming the folder and both fingerprints, before any output."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from evaluation.evaluate_per_user import main as evaluate
    from longlamp_io import folder_content_digest
    from longlamp_runs import read_record
    from training.train_per_user import main as train

    model, folder = tmp_path / "model", tmp_path / "oppu"
    shutil.copytree(tiny_llama, model)
    assert train(["--model_name", str(model), *SPLIT, "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
                  "--output_dir", str(folder), "--max_users", "2", "--max_items_per_user", "1",
                  "--num_train_epochs", "1", "--max_prompt_length", "256"]) == 0
    trained = {"base": folder_content_digest(model)}
    assert read_record(folder / "per_user_config.json").model.fingerprint == trained
    flags = evaluate_flags(model, sample_dir, (folder, sample_cache), tmp_path, "--max_eval_examples", "2")
    assert evaluate([*flags, "--output_dir", str(tmp_path / "same")]) == 0  # unchanged: accepted

    weights = AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        weights.lm_head.weight.mul_(1.5)
    weights.save_pretrained(model)  # in place: the same path, other weights
    now = {"base": folder_content_digest(model)}
    assert now != trained
    capsys.readouterr()
    assert run_command(evaluate, flags, "evaluate_per_user.py") == 2
    error = error_line(capsys)
    assert f"--model_name {model}: the weights differ from those the adapters of --adapters_dir {folder}" in error
    assert f"base {model} changed: fingerprint {trained} at training, {now} now" in error
    assert not (tmp_path / "p").exists()


def test_a_record_without_a_fingerprint_is_refused_with_retrain(tiny_llama, sample_dir, adapters, tmp_path, capsys):
    """Adapters whose per_user_config.json records no fingerprint (written before there was one) cannot be matched
    to the model: refused, saying to retrain them."""
    import shutil

    from evaluation.evaluate_per_user import main as evaluate

    folder, cache = adapters
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    config = json.loads((old / "per_user_config.json").read_text())
    config["settings"]["model"]["fingerprint"] = None
    (old / "per_user_config.json").write_text(json.dumps(config))
    assert run_command(evaluate, evaluate_flags(tiny_llama, sample_dir, (old, cache), tmp_path),
                       "evaluate_per_user.py") == 2
    error = error_line(capsys)
    assert f"--adapters_dir {old}: its per_user_config.json records no fingerprint of the weights" in error
    assert "retrain them with training/train_per_user.py" in error
    assert not (tmp_path / "p").exists()
