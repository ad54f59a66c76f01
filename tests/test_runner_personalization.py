"""The experiment runner with the per-user methods as retriever-like choices (experiments/personalization.yaml at
a reduced size, tiny models): RAG, per-user adapters, style vectors and profile summaries run on identical
examples, results.json pairs each with no profile, and evaluation/leaderboard.py ranks every run folder the
runner wrote in one table. Bad method settings are named with their file and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def reduced(model: Path) -> list[str]:
    sets = {"models.smollm2.model_name": model, "evaluate.max_new_tokens": 8, "evaluate.limit": 4,
            "evaluate.max_prompt_length": 300, "personalization.oppu.train.max_prompt_length": 256,
            "personalization.style.train.scales": "'0,1'", "personalization.style.train.max_items_per_user": 1,
            "personalization.summary.evaluate.summary_max_new_tokens": 8, "scoring.bootstrap": 200}
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
    for group in ("task", "data", "model"):  # what the leaderboard compares runs by
        assert len({repr(getattr(r, group)) for r in records.values()}) == 1, group
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
    assert result.stdout.count("done before, skipped") == 2 * len(VARIANTS) + 2  # generate, score; 2 trainings


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
