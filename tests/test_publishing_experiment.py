"""The experiment push (scripts/run_benchmark.py --push_to_hub) and data copies of the Hub dataset, against the
strict Hub stand-in.

One grid runs for real: a tiny model stored on the stand-in as a Hub model (`me/tiny-chat`, with its licence in its
card), zero-shot and LoRA-fine-tuned, without profile and with BM25, on a local copy of LongLaMP/LongLaMP that
scripts/export_dataset.py wrote from the stand-in (which serves the bundled sample under that name, as the Hub
would serve the real rows). The pushed repository must read as the Hub would show it: a root card whose metadata
the Hub accepts and whose model-index holds every run's every metric, `.eval_results` at the root, source URLs that
name files the repository holds, snippets that run, and not one byte naming this machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.hub import TOKEN, assert_uploads_portable, hub_env, run
from support.hub_server import COMMIT, HubStandIn, card_metadata, metadata_errors

pytestmark = [pytest.mark.e2e, pytest.mark.multiprocess, pytest.mark.slow]  # one grid, run and pushed
CONFIG = "product_review_user"
MODEL = "me/tiny-chat"
PUSHED = "me/longlamp-grid"
EXPERIMENT = """
name: pushed
configs: [product_review_user]
eval_split: validation
retrievers:
  bm25: {retriever: bm25, ranked: false}
k: [1]
models:
  tiny: {model_name: me/tiny-chat, mode: zero_shot}
  tiny-lora:
    model_name: me/tiny-chat
    mode: fine_tuned
    train: {use_lora: true, lora_r: 8, lora_alpha: 16, max_steps: 2, save_steps: 1, max_train_examples: 4,
            max_eval_examples: 2, per_device_train_batch_size: 2, report_to: none, seed: 0}
evaluate: {max_new_tokens: 8, limit: 3, batch_size: 4}
scoring: {bootstrap: 200, seed: 0, num_workers: 1}
env: {OMP_NUM_THREADS: 1}
"""


def serve_longlamp(hub: HubStandIn, sample_dir: Path) -> None:
    """The stand-in serves the bundled sample's public configs as LongLaMP/LongLaMP (the Hub's layout)."""
    shutil.copytree(sample_dir, hub.repo_dir("LongLaMP/LongLaMP", "datasets"), ignore=shutil.ignore_patterns("avocado"))


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, tiny_chat_llama, sample_dir):
    """The grid run and pushed; returns (hub, root, output folder, the runner's stdout)."""
    root = tmp_path_factory.mktemp("experiment-push")
    hub = HubStandIn(root / "hub", token=TOKEN)
    serve_longlamp(hub, sample_dir)
    model = hub.repo_dir(MODEL, "models")
    shutil.copytree(tiny_chat_llama, model)
    (model / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Tiny chat\n")
    export, output = root / "longlamp-copy", root / "grid"
    (root / "grid.yaml").write_text(EXPERIMENT)
    with hub.running():
        env = hub_env(hub, root, HF_TOKEN=TOKEN)
        run(["scripts/export_dataset.py", "--config", CONFIG, "--output", str(export), "--cache_dir",
             str(root / "export-cache")], env)
        done = run(["scripts/run_benchmark.py", "--config", str(root / "grid.yaml"), "--output_dir", str(output),
                    "--data_dir", str(export), "--cache_dir", str(root / "datasets-cache"), "--push_to_hub",
                    "--hub_model_id", PUSHED], env)
        yield hub, root, output, done.stdout


def repo_text(hub: HubStandIn, name: str) -> str:
    return (hub.repo_dir(PUSHED, "models") / name).read_text(encoding="utf-8")


def source_urls(value) -> list[str]:
    """Every `url` under a `source` in parsed YAML (model-index results, .eval_results entries)."""
    if isinstance(value, dict):
        found = [value["source"]["url"]] if isinstance(value.get("source"), dict) else []
        return found + [url for item in value.values() for url in source_urls(item)]
    if isinstance(value, list):
        return [url for item in value for url in source_urls(item)]
    return []


def test_the_root_card_covers_every_run_with_metadata_the_hub_accepts(pushed):
    from huggingface_hub import ModelCard, parse_eval_result_entries

    hub, _, output, _ = pushed
    readme = repo_text(hub, "README.md")
    assert metadata_errors(readme, "model") == []
    assert any(method == "POST" and path == "/api/validate-yaml" for method, path, _ in hub.requests)
    card = ModelCard(readme)
    assert card.data.base_model == MODEL and card.data.license == "apache-2.0"  # the licence from model_info
    assert card.data.datasets == ["LongLaMP/LongLaMP"]  # the LoRA models were trained on a copy of its rows
    assert card.data.library_name is None and card.data.pipeline_tag is None  # the root holds no model
    assert {"longlamp", "zero-shot", "fine-tuned", CONFIG} <= set(card.data.tags)
    results = json.loads((output / "results.json").read_text())
    folders = [row["run_dir"] for row in results["runs"]]
    assert len(folders) == 4
    expected = {}
    for row in results["runs"]:
        scores = json.loads((output / row["run_dir"] / "generate" / "scores.json").read_text())["scores"]["metrics"]
        for metric, value in scores.items():
            expected[(row["model"], row["profile"], metric)] = value
            if metric in row["metrics"]:
                assert row["metrics"][metric]["value"] == value
    found = {(r.metric_args["system"], r.metric_args["use_profile"], r.metric_type): r for r in card.data.eval_results}
    assert len(card.data.eval_results) == len(found) == len(expected)  # one result per run and metric
    assert {key: r.metric_value for key, r in found.items()} == expected
    assert {(r.dataset_type, r.dataset_config, r.dataset_split, r.dataset_revision) for r in found.values()} == {
        ("LongLaMP/LongLaMP", CONFIG, "val", COMMIT)}
    entries = parse_eval_result_entries(yaml.safe_load(repo_text(hub, ".eval_results/longlamp.yaml")))
    assert len(entries) == len(expected) and len({e.task_id for e in entries}) == len(entries)  # one value each
    assert {(e.dataset_id, e.dataset_revision) for e in entries} == {("LongLaMP/LongLaMP", COMMIT)}
    assert {e.task_id: e.value for e in entries} == {
        f"{CONFIG}/val/{metric}/{model}/{'bm25_k1' if profile else 'no_profile'}": value
        for (model, profile, metric), value in expected.items()}
    stored = set(hub.repo_files(PUSHED, "models"))
    assert not [name for name in stored if "/.eval_results/" in name]  # only the root's are read by the Hub
    for folder in folders:
        assert {f"{folder}/evaluation/README.md", f"{folder}/evaluation/predictions.json",
                f"{folder}/evaluation/results.json"} <= stored
    assert {f"{folder}/model/adapter_model.safetensors" for folder in folders if "tiny-lora" in folder} <= stored


def test_every_source_url_names_a_file_of_the_repository_and_nothing_names_this_machine(pushed, tiny_chat_llama,
                                                                                         sample_dir):
    hub, root, output, _ = pushed
    stored = set(hub.repo_files(PUSHED, "models"))
    prefix = f"{hub.endpoint}/{PUSHED}/blob/main/"
    cards = [name for name in stored if name.endswith("README.md")]
    urls = source_urls(yaml.safe_load(repo_text(hub, ".eval_results/longlamp.yaml")))
    for name in cards:
        assert metadata_errors(repo_text(hub, name), "model") == [], name  # each run's card as valid as the root's
        urls += source_urls(card_metadata(repo_text(hub, name)) or {})
    assert all(url.startswith(prefix) and url.removeprefix(prefix) in stored for url in urls), sorted(set(urls))
    links = re.findall(r"\]\(((?:runs|plots)/[^)]+)\)", repo_text(hub, "README.md"))
    assert len(links) >= 4 + 2 + 1 and set(links) <= stored  # each run's card, each model's card, the plot
    local = json.loads((output / "results.json").read_text())
    assert {url.removeprefix(prefix) for url in urls} == {f"{row['run_dir']}/evaluation/results.json"
                                                          for row in local["runs"]}  # each run's own numbers
    uploaded = json.loads(repo_text(hub, "results.json"))
    assert uploaded["runs"] == [{**row, "model_name": MODEL, "scores_file": f"{row['run_dir']}/evaluation/results.json"}
                                for row in local["runs"]]  # portable: Hub ids kept, files where the repo has them
    assert all(row["scores_file"] in stored for row in uploaded["runs"])
    assert assert_uploads_portable(hub, root, tiny_chat_llama, sample_dir, output) > 40


SNIPPET_CHECK = "\nassert model is not None and tokenizer is not None\n"


def test_the_root_cards_snippets_run_against_the_hub(pushed):
    hub, root, _, _ = pushed
    readme = repo_text(hub, "README.md")
    snippets = re.findall(r"```python\n(.*?)\n```", readme, re.S)
    assert len(snippets) == 3  # the results, and each of the two fine-tuned adapters (from its own folder)
    assert all("subfolder=" in code for code in snippets if "PeftModel" in code)
    every_card = "".join(repo_text(hub, name) for name in hub.repo_files(PUSHED, "models") if name.endswith(".md"))
    assert not re.search(rf"from_pretrained\((base, )?'{PUSHED}'\)", every_card)  # no model at the root
    env = hub_env(hub, root, with_repo=False, HF_TOKEN=TOKEN, HF_HOME=str(root / "snippet-home"))
    for code in snippets:  # the stand-in is still running (the fixture's)
        done = subprocess.run([sys.executable, "-c", code + (SNIPPET_CHECK if "model =" in code else "")],
                              cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, code + "\n" + done.stderr[-3000:]
