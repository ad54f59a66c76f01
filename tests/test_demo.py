"""`make demo`: the experiment runner (scripts/run_benchmark.py) on the demo experiment at a reduced size: every
real stage (retrieval/rank_profiles.py with BM25 and a dense encoder, `accelerate launch training/train.py`,
evaluation/evaluate_llm.py, evaluation/eval_task.py), a SIGKILL and a resume, and results that agree with the
scorer. Tiny random models stand in for SmolLM2 and all-MiniLM-L6-v2 (scripts/prepare_models.py prepares those)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from support.hub import machine_strings
from support.hub_server import metadata_errors
from support.runner import commands_run, reduced_demo, runner

from benchmark_runner.experiment import load_experiment
from benchmark_runner.stages import plan
from longlamp_errors import RunFolderError
from longlamp_runs import STAGE_FILE, StageRecord, read_run, write_stage_record
from scoring.tasks import evaluate_files

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "experiments" / "demo.yaml"


def variant_of(args: dict) -> str:
    """The runner's variant name of a model-index result's `metric_args`."""
    names = {"bm25": "bm25", "contriever": "minilm"}
    return f"{names[args['retriever']]}-k{args['num_retrieved']}" if args["use_profile"] else "no_profile"


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_the_demo_experiment_runs_every_stage_survives_a_kill_and_agrees_with_the_scorer(
        tmp_path, tiny_chat_llama, tiny_encoder):
    output, hub = tmp_path / "demo", tmp_path / "hub"
    sets = reduced_demo(tiny_chat_llama, tiny_encoder)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # 1. Start it and SIGKILL the runner and its stage process once the first profile run is scored.
    first = output / "runs" / "product_review_user" / "smollm2" / "bm25-k1" / "score" / STAGE_FILE
    process = subprocess.Popen(runner(output, sets), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 900
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.stdout.read().decode()[-3000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (output / "results.json").exists()
    done_before = [path.parent for path in output.rglob(STAGE_FILE)]
    assert len(done_before) >= 5  # three rankings, then generation and scoring of the first runs

    # 2. The same command again: finished stages are skipped, the rest runs, everything is published (dry run).
    push = ("--push_to_hub", "--hub_model_id", "someone/longlamp-demo", "--hub_dry_run_dir", str(hub))
    result = subprocess.run(runner(output, sets, *push), env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("done before, skipped") == len(done_before)
    assert all(commands_run(folder) == 1 for folder in done_before)  # nothing finished was run twice

    # 3. The results: JSON, table, plot and cards agree with each other and with the scorer on the predictions.
    results = json.loads((output / "results.json").read_text())
    table = (output / "results.md").read_text()
    runs = {(row["model"], row["variant"]): row for row in results["runs"]}
    assert set(runs) == {("smollm2", "no_profile"), ("smollm2", "bm25-k1"), ("smollm2", "minilm-k1"),
                         ("smollm2-lora", "no_profile"), ("smollm2-lora", "bm25-k1")}
    assert (output / "plots" / "product_review_user.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for (model, variant), row in runs.items():
        folder = output / row["run_dir"]
        rescored = evaluate_files(folder / "generate" / "golds.json", folder / "generate" / "predictions.json",
                                  bootstrap=200, seed=0, num_workers=1)
        assert row["num_samples"] == rescored["num_samples"] == 3
        for metric in ("rouge1", "rougeL", "meteor"):
            entry = row["metrics"][metric]
            assert entry["value"] == rescored["metrics"][metric]
            assert (entry["low"], entry["high"]) == tuple(rescored["bootstrap"]["intervals"][metric].values())
            assert f"{entry['value']:.4f} [{entry['low']:.4f}, {entry['high']:.4f}]" in table
            if variant != "no_profile":
                baseline = runs[(model, "no_profile")]["metrics"][metric]["value"]
                assert row["vs_no_profile"][metric]["difference"] == pytest.approx(entry["value"] - baseline, abs=1e-12)
        card = (folder / "generate" / "README.md").read_text()
        assert f"{row['metrics']['rougeL']['value']:.4f}" in card
    assert (runs[("smollm2-lora", "bm25-k1")]["model_name"] == str(tiny_chat_llama))
    # The dense run records the encoder it ranked with (issue 27: not contriever's default facebook/contriever).
    dense = read_run(output / runs[("smollm2", "minilm-k1")]["run_dir"] / "generate").record.retrieval
    assert (dense.retriever, dense.retriever_model) == ("contriever", str(tiny_encoder))
    assert "facebook/contriever" not in (dense.signature or "")
    trained = output / runs[("smollm2-lora", "bm25-k1")]["run_dir"] / "train" / "final" / "adapter_config.json"
    assert trained.is_file()  # a LoRA adapter, evaluated on its base model

    # 4. What a push would upload: a card with the table and every run's results, results.json without machine
    # paths, the plot, each run's card and the adapter.
    readme = (hub / "README.md").read_text()
    assert metadata_errors(readme, "model") == []
    assert table.split("\n\n", 1)[1] in readme  # results.md below its title
    scored = {(row["model"], row["variant"]): json.loads((output / row["run_dir"] / "generate" / "scores.json")
                                                         .read_text())["scores"]["metrics"] for row in results["runs"]}
    index = ModelCard(readme).data.eval_results  # one result per run and metric, each named apart
    assert len({(r.metric_args["system"], r.metric_name) for r in index}) == len(index) == sum(
        len(metrics) for metrics in scored.values())
    assert all(r.metric_value == scored[(r.metric_args["system"], variant_of(r.metric_args))][r.metric_type]
               for r in index)
    assert {r.dataset_type for r in index} == {"local"}  # the bundled sample: never LongLaMP/LongLaMP
    assert not (hub / ".eval_results").exists()  # entries name a Hub dataset; local data has none
    assert json.loads((hub / "results.json").read_text())["runs"] == [
        {**row, "model_name": f"<local>/{tiny_chat_llama.name}",
         "scores_file": f"{row['run_dir']}/evaluation/results.json"} for row in results["runs"]]
    published = hub / "runs" / "product_review_user"
    assert (published / "smollm2-lora" / "bm25-k1" / "model" / "adapter_config.json").is_file()
    assert (published / "smollm2" / "minilm-k1" / "evaluation" / "README.md").is_file()
    assert all((hub / row["scores_file"]).is_file() for row in json.loads((hub / "results.json").read_text())["runs"])
    assert not list(hub.rglob("golds.json"))
    needles = [needle.encode() for needle in machine_strings(tmp_path, tiny_chat_llama, tiny_encoder)]
    assert not [(p, n) for p in hub.rglob("*") if p.is_file() for n in needles if n in p.read_bytes()]


def test_a_stage_done_with_other_settings_is_an_error_not_a_silent_reuse(tmp_path):
    experiment = load_experiment(DEMO, {"output_dir": str(tmp_path)}, ["models.smollm2.model_name=m",
                                                                         "models.smollm2-lora.model_name=m",
                                                                         "retrievers.minilm.retriever_model=e"])
    stage = plan(experiment)[0]
    stage.folder.mkdir(parents=True)
    write_stage_record(stage.folder, StageRecord("other", ["python", "other"], [], 1.0))
    with pytest.raises(RunFolderError, match="another command"):
        stage.is_done()


@pytest.mark.parametrize("experiment", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_plans_commands_the_stage_scripts_accept(experiment, tmp_path):
    """Each planned stage command parses with its script's real parser (the runner cannot drift from the stages)."""
    import yaml
    from support.parsers import check_against, script_parser, split_command

    values = yaml.safe_load(experiment.read_text())  # `local:` models are prepared at set-up: named here instead
    sets = [f"models.{name}.model_name=m" for name, spec in values["models"].items()
            if str(spec["model_name"]).startswith("local:")]
    sets += [f"retrievers.{name}.retriever_model=e" for name, spec in values["retrievers"].items()
             if str(spec.get("retriever_model")).startswith("local:")]
    overrides = {"data_dir": str(tmp_path)} if "email" in experiment.name else {}
    loaded = load_experiment(experiment, overrides, sets)
    parsers = {}
    for stage in plan(loaded):
        argv = stage.portable_command()
        if argv[:3] == ["python", "-m", "accelerate.commands.launch"]:  # accelerate's module instead of its script
            argv = ["accelerate", "launch", *argv[3:]]
        script, _, arguments = split_command(argv)
        parser = parsers.setdefault(script, script_parser(script))
        check_against(parser, arguments, f"{experiment.name}: {stage.name}")


def test_the_experiments_environment_reaches_the_stages_under_the_callers_own(monkeypatch):
    from benchmark_runner.stages import stage_env

    experiment = load_experiment(DEMO, {}, ["retrievers.minilm.retriever_model=e", "models.smollm2.model_name=m",
                                            "models.smollm2-lora.model_name=m", "env.LONGLAMP_TEST_VARIABLE=3"])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert stage_env(experiment)["OMP_NUM_THREADS"] == "1" and stage_env(experiment)["LONGLAMP_TEST_VARIABLE"] == "3"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert stage_env(experiment)["OMP_NUM_THREADS"] == "2"


def test_the_prepared_smollm2_folder_is_a_plain_model_folder_with_its_chat_template():
    """What scripts/prepare_models.py left at set-up: safetensors weights without a quantization config, and the
    tokenizer with its chat template (so every command takes it as --model_name). Fast: nothing is generated."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    from benchmark_runner.local_models import DEFAULT_OUTPUT, is_complete

    if not is_complete(DEFAULT_OUTPUT):
        pytest.skip(f"{DEFAULT_OUTPUT} is not prepared: run `make setup` (scripts/prepare_models.py)")
    config = AutoConfig.from_pretrained(DEFAULT_OUTPUT)
    assert config.model_type == "llama" and getattr(config, "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_OUTPUT)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert "Hi" in prompt and prompt.rstrip().endswith("assistant")
    with safe_open(DEFAULT_OUTPUT / "model.safetensors", "pt") as weights:
        names = set(weights.keys())
    assert len(names) >= 272 - 1 and "model.embed_tokens.weight" in names
