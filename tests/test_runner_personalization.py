"""The experiment runner with the per-user methods as retriever-like choices (experiments/personalization.yaml at
a reduced size, tiny models): RAG, per-user adapters, style vectors and profile summaries run on identical
examples, results.json pairs each with no profile, and evaluation/leaderboard.py ranks every run folder the
runner wrote in one table. Bad method settings are named with their file and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from benchmark_runner.experiment import load_experiment
from longlamp_errors import ConfigError
from longlamp_runs import PER_SAMPLE_FILE, read_record
from scoring import per_sample

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "personalization.yaml"
TASK = "LongLaMP_product_review_user"
VARIANTS = {"no_profile", "bm25-k2", "oppu", "style", "summary"}
RUN = "product_review_user/smollm2/oppu"


def reduced(model: Path) -> list[str]:
    sets = {"models.smollm2.model_name": model, "evaluate.max_new_tokens": 8, "evaluate.limit": 4,
            "evaluate.max_prompt_length": 300, "personalization.oppu.train.max_prompt_length": 256,
            "personalization.style.train.scales": "'0,1'", "personalization.style.train.max_items_per_user": 1,
            "personalization.summary.evaluate.summary_max_new_tokens": 8, "scoring.bootstrap": 200,
            "personalization.oppu.task_lora.max_steps": 1, "personalization.oppu.task_lora.max_train_examples": 2}
    return [part for key, value in sets.items() for part in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def finished(tiny_llama, tmp_path_factory) -> tuple[Path, list[str], dict]:
    output = tmp_path_factory.mktemp("personalization") / "run"
    command = [sys.executable, str(REPO / "scripts" / "run_benchmark.py"), "--config", str(EXPERIMENT),
               "--output_dir", str(output), "--cache_dir", str(output.parent / "datasets-cache"), *reduced(tiny_llama)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output, command, env


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_every_method_runs_on_the_same_examples_and_is_paired_with_no_profile(finished):
    output, _, _ = finished
    results = json.loads((output / "results.json").read_text())
    runs = {row["variant"]: row for row in results["runs"]}
    assert set(runs) == VARIANTS
    assert {v: runs[v]["personalization"] for v in VARIANTS} == {
        "no_profile": None, "bm25-k2": None, "oppu": "per_user_adapters", "style": "style_vectors",
        "summary": "profile_summary"}
    ids = {v: per_sample.read(output / runs[v]["run_dir"] / "score" / PER_SAMPLE_FILE)[0] for v in VARIANTS}
    assert len(ids["no_profile"]) == 4 and all(found == ids["no_profile"] for found in ids.values())
    for variant in VARIANTS - {"no_profile"}:
        assert runs[variant]["vs_no_profile"]["rougeL"]["difference"] == pytest.approx(
            runs[variant]["metrics"]["rougeL"]["value"] - runs["no_profile"]["metrics"]["rougeL"]["value"], abs=1e-12)
    table = (output / "results.md").read_text()
    assert "oppu (per_user_adapters)" in table and "style (style_vectors)" in table and "bm25 k=2" in table
    records = {v: read_record(output / runs[v]["run_dir"] / "generate" / "scores.json") for v in VARIANTS}
    assert records["oppu"].per_user.methods() == ["per-user adapters (OPPU)"]
    assert records["style"].per_user.style_vectors.layer == 1  # chosen on validation
    assert records["summary"].per_user.profile_summary is not None and records["summary"].per_user.adapters is None
    for group in ("task", "data"):  # what the leaderboard compares runs by
        assert len({repr(getattr(r, group)) for r in records.values()}) == 1, group
    # one model, except OPPU's: its task LoRA on that model (OPPU's adapters start from one)
    assert len({repr(r.model) for variant, r in records.items() if variant != "oppu"}) == 1
    assert records["oppu"].model.name.endswith("/oppu/task_lora/final")
    report = json.loads((output / runs["oppu"]["run_dir"] / "train" / "per_user_report.json").read_text())
    assert report["users_with_adapter"] == 4


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_the_leaderboard_ranks_every_run_of_the_runner_in_one_table(finished, tmp_path):
    from evaluation import leaderboard

    output, _, _ = finished
    folders = sorted((output / "runs").glob("*/*/*/generate"))
    assert len(folders) == len(VARIANTS)
    board = leaderboard.build(folders, tmp_path / "board", "rougeL", num_resamples=100, seed=0)
    assert board["not_ranked"] == []
    (group,) = board["configs"][TASK]
    assert group["apart"] is None and group["split"] == "test"
    assert {Path(row["path"]).parent.name for row in group["rows"]} == VARIANTS
    assert all(row["examples"] == 4 for row in group["rows"])


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_started_again_the_runner_skips_every_stage(finished):
    output, command, env = finished
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # generate and score of each run; the trainings: OPPU's task LoRA, its adapters, the style vectors
    assert result.stdout.count("done before, skipped") == 2 * len(VARIANTS) + 3


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_oppus_adapters_train_on_its_task_lora_are_evaluated_on_it_and_refused_on_the_base(finished, tiny_llama,
                                                                                          tmp_path):
    output, _, env = finished
    run_dir = output / "runs" / RUN
    adapter = run_dir / "task_lora" / "final"
    assert (adapter / "adapter_config.json").is_file()
    trained = read_record(run_dir / "train" / "per_user_config.json")
    assert (trained.training.task_adapter, trained.model.name) == (str(adapter), str(tiny_llama))
    evaluated = read_record(run_dir / "generate" / "scores.json")
    assert evaluated.model.name == str(adapter)
    # the adapter-fit check the runner's own run passed refuses the base model alone
    command = [sys.executable, str(REPO / "evaluation" / "evaluate_per_user.py"), "--model_name", str(tiny_llama),
               "--data", "product_review_user", "--split", "test", "--data_dir", str(REPO / "data" / "sample"),
               "--cache_dir", str(output.parent / "datasets-cache"), "--adapters_dir", str(run_dir / "train"),
               "--output_dir", str(tmp_path / "base"), "--max_new_tokens", "4"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and f"trained on the task adapter {adapter}" in result.stderr
    assert not (tmp_path / "base").exists()


@pytest.mark.parametrize("sets, message", [
    (["personalization.oppu.method=per_user_lora"],
     r"personalization.oppu.method must be one of per_user_adapters, style_vectors, profile_summary, "
     r"got 'per_user_lora'"),
    (["personalization.style.train.selection_split=test"], r"personalization.style.train.selection_split: .* the "
                                                           r"evaluated split \(test\)"),
    (["personalization.summary.train={max_items_per_user: 2}"], r"personalization.summary.train: profile_summary "
                                                                "has no training stage"),
    (["personalization.summary.temperature=2"], r"personalization.summary: unknown key\(s\) temperature"),
    (["models.smollm2.personalization=[opu]"], r"models.smollm2.personalization: \['opu'\] are not among"),
    (["personalization.no_profile={method: profile_summary}"],
     r"personalization \['no_profile'\] would share a run folder"),
    (["retrievers.bm25.options={num_workers: 2}"],
     r"retrievers.bm25.options are rank_profiles.py flags; with ranked: false"),
    (["personalization.style.task_lora=false"],
     r"personalization.style.task_lora: only per_user_adapters trains a task LoRA, not style_vectors"),
    (["personalization.oppu.task_lora={use_profile: true, lora_r: 4}"],
     r"personalization.oppu.task_lora: use_profile are set by the runner \(the prompt settings are the method's"),
    (["eval_split=train", "personalization.style.train.selection_split=validation"],
     r"personalization.oppu.task_lora: the task LoRA trains on the train split, which is the evaluated one"),
])
def test_a_bad_method_setting_names_the_file_and_the_field(sets, message):
    with pytest.raises(ConfigError, match=f"^{EXPERIMENT}: {message}"):
        load_experiment(EXPERIMENT, {}, ["models.smollm2.model_name=m", *sets])


def test_a_model_may_run_some_methods_and_a_fine_tuned_one_builds_on_its_own_training():
    from benchmark_runner.stages import plan

    experiment = load_experiment(EXPERIMENT, {}, [
        "models.smollm2.model_name=m", "models.smollm2.personalization=[oppu]",
        "models.tuned={model_name: m, mode: fine_tuned, train: {use_lora: true}, retrievers: []}"])
    names = [stage.name for stage in plan(experiment)]
    assert "train product_review_user/smollm2/oppu" in names and "generate product_review_user/smollm2/style" \
        not in names
    per_user = next(s for s in plan(experiment) if s.name == "train product_review_user/tuned/oppu").command
    task_model = str(experiment.output_dir / "runs" / "product_review_user" / "tuned" / "no_profile" / "train" /
                     "final")
    assert per_user[per_user.index("--model_name") + 1] == "m"
    assert per_user[per_user.index("--task_adapter") + 1] == task_model
    evaluated = next(s for s in plan(experiment) if s.name == "generate product_review_user/tuned/summary").command
    assert evaluated[evaluated.index("--model_name") + 1] == task_model
    assert names.index("train product_review_user/tuned/no_profile") < names.index(
        "train product_review_user/tuned/oppu")


def task_lora_plan(*sets: str) -> tuple[dict, Path]:
    from benchmark_runner.stages import plan

    experiment = load_experiment(EXPERIMENT, {}, ["models.smollm2.model_name=m", *sets])
    return {stage.name: stage for stage in plan(experiment)}, experiment.output_dir / "runs" / RUN


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_a_zero_shot_model_trains_oppus_task_lora_first_and_its_adapters_start_and_are_evaluated_on_it():
    from training.config import parser

    stages, run_dir = task_lora_plan("personalization.oppu.task_lora=true")  # OPPU's settings, as they are
    names = list(stages)
    task, per_user, generate = (stages[f"{verb} {RUN}{what}"] for verb, what in
                                (("train", " task LoRA"), ("train", ""), ("generate", "")))
    assert task.kind == "train" and names.index(task.name) < names.index(per_user.name)
    command = task.portable_command()
    assert command[:5] == ["accelerate", "launch", "--config_file", "accelerate_configs/cpu.yaml", "training/train.py"]
    args = parser().parse_args(command[5:])
    # OPPU's task_LoRA.py: LoRA r 8, alpha 8, dropout 0.05; AdamW 1e-4, weight decay 0.01, 10% warm-up then linear
    # decay, clipping 0.3, batch 16, 3 epochs, grouped by length; on the task's train split, no profile (k 0)
    assert (args.use_lora, args.lora_r, args.lora_alpha, args.lora_dropout) == (True, 8, 8, 0.05)
    assert (args.learning_rate, args.weight_decay, args.lr_scheduler, args.warmup_ratio, args.max_grad_norm,
            args.per_device_train_batch_size, args.num_train_epochs, args.group_by_length) == (
        1e-4, 0.01, "linear", 0.1, 0.3, 16, 3, True)
    assert (args.train_data, args.validation_data, args.task, args.model_name) == (
        "product_review_user", None, "product_review_user", "m")
    assert args.use_profile is False and args.max_prompt_length == 512  # the method's own prompt settings
    assert args.output_dir == str(run_dir / "task_lora")
    adapter = str(run_dir / "task_lora" / "final")
    assert (flag(per_user.command, "--model_name"), flag(per_user.command, "--task_adapter")) == ("m", adapter)
    assert flag(generate.command, "--model_name") == adapter
    assert [need.name for need in per_user.needs] == [task.name]
    assert [need.name for need in generate.needs] == [task.name, per_user.name]
    assert f"stage {task.name}" in per_user.inputs() and f"stage {task.name}" in generate.inputs()


def test_the_task_lora_settings_are_oppus_per_user_ones_with_its_three_epochs():
    from benchmark_runner.stages import TASK_LORA
    from training.train_per_user import TrainPerUserArguments

    defaults = {spec.name: spec.default for spec in fields(TrainPerUserArguments)}
    assert {key: value for key, value in TASK_LORA.items() if key in defaults and key != "num_train_epochs"} == {
        key: defaults[key] for key in TASK_LORA if key in defaults and key != "num_train_epochs"}
    assert set(TASK_LORA) - set(defaults) == {"use_lora", "group_by_length"}  # train.py's own (OPPU's Trainer's)


def test_the_task_lora_can_be_set_or_turned_off():
    stages, run_dir = task_lora_plan("personalization.oppu.task_lora={num_train_epochs: 1, lora_r: 4}")
    command = stages[f"train {RUN} task LoRA"].command
    assert (flag(command, "--num_train_epochs"), flag(command, "--lora_r")) == ("1", "4")
    stages, _ = task_lora_plan("personalization.oppu.task_lora=false")
    assert f"train {RUN} task LoRA" not in stages  # OPPU's adapters on the base model alone (a named difference)
    assert flag(stages[f"train {RUN}"].command, "--model_name") == "m"
    assert "--task_adapter" not in stages[f"train {RUN}"].command
    assert flag(stages[f"generate {RUN}"].command, "--model_name") == "m"
