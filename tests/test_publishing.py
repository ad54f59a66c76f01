"""Publishing through the real huggingface_hub client against the local Hub stand-in: trained models and
adapters come back from the Hub and generate what the local folder generates; cards carry scores.json's
numbers exactly; exported datasets load with plain `datasets`; a failed upload changes nothing and a retry
completes it; a known token appears in no file written and nothing printed.

Client-side steps run in subprocesses: huggingface_hub reads HF_ENDPOINT when it is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from support.hub import TOKEN, assert_token_nowhere, assert_uploads_portable, files_under, hub_env, run
from support.hub_server import HubStandIn
from support.training import CONFIG, run_flags

from evaluation import evaluate_llm
from longlamp_errors import ConfigError, PublishError, UsageError

REPO = Path(__file__).resolve().parents[1]
def fingerprint(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files_under(folder)}


@pytest.fixture(scope="module")
def zero_shot_run(tmp_path_factory, tiny_llama, sample_dir, sample_cache) -> Path:
    """A scored zero-shot run with and without profile (4 validation examples)."""
    folder = tmp_path_factory.mktemp("zero-shot") / "run"
    assert evaluate_llm.main(["--validation_data", CONFIG, "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
                              "--model_addr", str(tiny_llama), "--output_dir", str(folder), "--max_new_tokens", "12",
                              "--batch_size", "2", "--limit", "4", "--use_profile", "--num_retrieved", "2",
                              "--compare_no_profile"]) == 0
    return folder


# --- cards, plots, results files -------------------------------------------------------------------------------


def test_zero_shot_card_values_equal_scores_json_and_eval_results_parse_back(zero_shot_run, tiny_llama):
    from huggingface_hub import ModelCard

    from longlamp_runs import read_run
    from publishing.cards import eval_result_entries

    card = ModelCard.load(zero_shot_run / "README.md")  # written by the evaluation itself
    scores = {False: json.loads((zero_shot_run / "no_profile" / "scores.json").read_text()),
              True: json.loads((zero_shot_run / "scores.json").read_text())}
    found = {(r.metric_args["use_profile"], r.metric_type): r for r in card.data.eval_results}
    expected = {(profile, metric): value for profile, summary in scores.items()
                for metric, value in summary["scores"]["metrics"].items()}
    assert {key: found[key].metric_value for key in found} == expected  # exactly, every metric, both variants
    assert {r.dataset_config for r in found.values()} == {CONFIG} and {r.dataset_split for r in found.values()} == {
        "validation"}
    # the bundled sample is local data: never presented as the Hub dataset, nor as training data of a zero-shot run
    assert {r.dataset_type for r in found.values()} == {"local"} and card.data.datasets is None
    assert "longlamp" in card.data.tags
    assert "![Results](results.png)" in card.text
    assert (zero_shot_run / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(tiny_llama) not in str(card) and str(zero_shot_run) not in str(card)  # no machine paths
    assert "Paired difference" in card.text

    assert eval_result_entries(read_run(zero_shot_run)) == []  # .eval_results name Hub datasets only


def test_cards_show_local_paths_in_code_link_the_paper_and_say_what_the_numbers_are_for(zero_shot_run, tmp_path):
    import re

    from huggingface_hub import ModelCard
    from support.records import write_summary, zero_shot_record

    from publishing.cards import build_run_card

    card = build_run_card(zero_shot_run)
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", card.text, flags=re.S))
    assert "<local>" in card.text and "<local>" not in prose  # an HTML tag to Markdown: hidden outside code
    assert "https://arxiv.org/abs/2407.11016" in card.text
    assert "## Intended use and limitations" in card.text and "not comparable with published LongLaMP" in card.text
    assert re.search(r"^- transformers \d", card.text, re.M)
    unscored = tmp_path / "unscored"
    unscored.mkdir()
    write_summary(unscored, zero_shot_record(), None)
    assert "model_name" not in ModelCard(str(build_run_card(unscored))).data.to_dict()  # no stray top-level key


def test_results_on_the_hub_dataset_carry_its_identity_and_one_value_per_eval_results_entry(tmp_path):
    """Rows from the Hub (no --data_dir, a config name): LongLaMP/LongLaMP with its split name `val` and the
    revision asked for; each .eval_results entry one value, its task id naming metric and variant."""
    import yaml
    from huggingface_hub import eval_result_entries_to_yaml, parse_eval_result_entries
    from support.records import write_summary, zero_shot_record

    from longlamp_runs import read_run
    from publishing.cards import card_data, eval_result_entries, eval_results

    scores = {"num_samples": 3, "metrics": {"rouge1": 0.25, "meteor": 0.125}}
    write_summary(tmp_path, zero_shot_record(retriever="bm25", k=2, revision="refs/convert/parquet"), scores)
    run = read_run(tmp_path)
    results = eval_results(run)
    assert {(r.dataset_type, r.dataset_config, r.dataset_split, r.dataset_revision) for r in results} == {
        ("LongLaMP/LongLaMP", CONFIG, "val", "refs/convert/parquet")}
    assert card_data(run).datasets is None  # zero-shot: not training data
    entries = eval_result_entries(run, source_url="https://huggingface.co/me/m/blob/main/r.json")
    parsed = parse_eval_result_entries(yaml.safe_load(yaml.safe_dump(eval_result_entries_to_yaml(entries))))
    assert {e.task_id: e.value for e in parsed} == {f"{CONFIG}/val/rouge1/bm25_k2": 0.25,
                                                    f"{CONFIG}/val/meteor/bm25_k2": 0.125}
    assert all(e.dataset_id == "LongLaMP/LongLaMP" and e.source_url for e in parsed)


def test_per_sample_scores_match_the_scorer_and_carry_no_golds(zero_shot_run):
    from scoring.metrics import per_sample_scores

    lines = [json.loads(line) for line in (zero_shot_run / "per_sample.jsonl").read_text().splitlines()]
    predictions = json.loads((zero_shot_run / "predictions.json").read_text())["golds"]
    golds = json.loads((zero_shot_run / "golds.json").read_text())["golds"]
    assert [line["id"] for line in lines] == [p["id"] for p in predictions]
    expected = per_sample_scores([p["output"] for p in predictions], [g["output"] for g in golds])
    for metric, values in expected.items():
        assert [line[metric] for line in lines] == [float(v) for v in values]
    assert [line["user"] for line in lines] == [g["user"] for g in golds]
    assert set(lines[0]) == {"id", "user", "prediction_words", *expected}


def test_plot_comparison_draws_grouped_bars_and_rejects_bad_rows(tmp_path):
    from publishing.plots import plot_comparison

    rows = [{"label": "profile", "group": "ROUGE-1", "value": 0.3, "low": 0.25, "high": 0.35},
            {"label": "no profile", "group": "ROUGE-1", "value": 0.2, "low": None, "high": None},
            {"label": "profile", "group": "METEOR", "value": 0.1, "low": 0.05, "high": 0.2}]
    path = plot_comparison(rows, tmp_path / "plots" / "cmp.png", "test", metric_label="F1")
    assert path.read_bytes()[:4] == b"\x89PNG" and list(path.parent.iterdir()) == [path]
    with pytest.raises(ValueError, match="row 0 has no value"):
        plot_comparison([{"label": "a", "group": "b"}], tmp_path / "bad.png", "bad")
    assert not (tmp_path / "bad.png").exists()


def test_dry_run_stages_results_without_golds(zero_shot_run, tmp_path):
    from evaluation import push_results

    assert push_results.main(["--run_dir", str(zero_shot_run), "--hub_model_id", "me/results", "--hub_repo_type",
                              "dataset", "--dry_run"]) == 0
    staged = zero_shot_run / push_results.DRY_RUN_FOLDER
    names = {p.relative_to(staged).as_posix() for p in files_under(staged)} - {".longlamp-staged"}
    assert names == {"README.md", "results.png", "results.json", "predictions.json", "prompts.json", "comparison.json",
                     "per_sample.jsonl", "no_profile/results.json", "no_profile/predictions.json",
                     "no_profile/prompts.json", "no_profile/per_sample.jsonl"}  # .eval_results are for models
    import datasets
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(staged / "README.md").data.to_dict()  # a dataset card: no model metadata
    assert not {"model-index", "base_model", "library_name", "pipeline_tag"} & set(card)
    assert [c["config_name"] for c in card["configs"]] == ["per_sample", "predictions", "per_sample_no_profile",
                                                           "predictions_no_profile"]
    per_sample_rows = [json.loads(line) for line in (zero_shot_run / "per_sample.jsonl").read_text().splitlines()]
    loaded = datasets.load_dataset(str(staged), "per_sample", cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["validation"] and [dict(r) for r in loaded["validation"]] == per_sample_rows
    predictions = datasets.load_dataset(str(staged), "predictions_no_profile", cache_dir=str(tmp_path / "cache"))
    assert predictions["validation"]["id"] == [r["id"] for r in per_sample_rows]
    references = [g["output"].strip() for g in json.loads((zero_shot_run / "golds.json").read_text())["golds"]]
    staged_text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files_under(staged))
    assert not any(reference in staged_text for reference in references if len(reference) > 40)
    # the bundled sample is local data: results.json does not name the Hub dataset as its source
    assert json.loads((staged / "results.json").read_text())["data_source"]["dataset"] == "local"
    shutil.rmtree(staged)


def test_an_email_run_is_not_pushed_publicly_without_the_licence_flag(zero_shot_run, tmp_path):
    from publishing.hub import push_run

    email = tmp_path / "email-run"
    shutil.copytree(zero_shot_run, email)
    summary = json.loads((email / "scores.json").read_text())
    summary["settings"]["task"]["config"] = "email_generation_user"
    (email / "scores.json").write_text(json.dumps(summary))
    with pytest.raises(PublishError, match="Avocado"):
        push_run(email, "me/email", repo_type="dataset", dry_run_dir=tmp_path / "staged")
    assert push_run(email, "me/email", repo_type="dataset", private=True, dry_run_dir=tmp_path / "staged")


def test_train_config_never_records_the_token_and_checks_the_repo_id():
    from training.config import parse_args

    base = ["--model_name", "m", "--output_dir", "o", "--train_data", CONFIG]
    config = parse_args(base + ["--push_to_hub", "--hub_model_id", "me/model", "--hub_token", TOKEN])
    assert config.hub_token == TOKEN and "hub_token" not in config.to_dict()
    assert TOKEN not in json.dumps(config.to_dict()) and TOKEN not in repr(config)
    with pytest.raises(ConfigError, match="hub_model_id NAMESPACE/NAME"):
        parse_args(base + ["--push_to_hub"])
    with pytest.raises(ConfigError, match="needs --hub_private"):
        parse_args(["--model_name", "m", "--output_dir", "o", "--train_data", "email_generation_user", "--push_to_hub",
                    "--hub_model_id", "me/email"])
    with pytest.raises(UsageError, match="argument --hub_strategy: invalid choice: 'every_save'"):
        parse_args(base + ["--hub_strategy", "every_save"])


# --- through the real client and the stand-in ----------------------------------------------------------------

GENERATE = """
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
local, repo, base = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    if base != "-":
        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), name)
    return AutoModelForCausalLM.from_pretrained(name)
texts = []
for name in (local, repo):
    tokenizer = AutoTokenizer.from_pretrained(name)
    batch = tokenizer(["Generate the review text written by a reviewer"], return_tensors="pt")
    out = load(name).generate(**batch, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    texts.append(tokenizer.decode(out[0]))
from huggingface_hub import ModelCard
card = ModelCard.load(repo)
print(json.dumps({"texts": texts, "library": card.data.library_name, "base_model": card.data.base_model,
                  "results": [[r.metric_type, r.metric_value] for r in card.data.eval_results or []]}))
"""


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("adapter", [False, True], ids=["full", "lora"])
def test_trained_model_pushed_with_push_to_hub_comes_back_and_generates_the_same(adapter, tiny_llama, short_data,
                                                                                    tmp_path):
    train_rows, validation_rows = short_data
    hub = HubStandIn(tmp_path / "hub", token=TOKEN)
    output = tmp_path / "run"
    flags = run_flags(tiny_llama, output, train_rows, validation_rows, max_steps=2, save_steps=1,
                      eval_generation_examples=2, generation_max_new_tokens=6, use_lora=adapter, push_to_hub=True,
                      hub_model_id="me/tiny-review", hub_strategy="checkpoint", hub_token=TOKEN)
    with hub.running():
        env = hub_env(hub, tmp_path)
        trained = run(["-m", "training.train", *flags], env)
        back = run(["-c", GENERATE, str(output / "final"), "me/tiny-review", str(tiny_llama) if adapter else "-"],
                   {**env, "HF_TOKEN": TOKEN})
    result = json.loads(back.stdout.strip().splitlines()[-1])
    assert result["texts"][0] == result["texts"][1]
    assert result["library"] == ("peft" if adapter else "transformers")
    history = json.loads(sorted((output / "checkpoints").glob("checkpoint-*/trainer_state.json"))[-1].read_text())
    scored = [entry for entry in history["history"] if "rouge1" in entry][-1]
    assert dict(result["results"]) == {m: scored[m] for m in ("rouge1", "rougeL", "meteor")}
    stored = set(hub.repo_files("me/tiny-review", "models"))
    weights = "adapter_model.safetensors" if adapter else "model.safetensors"
    assert {weights, "README.md", "training_config.json", "results.png", ".eval_results/longlamp.yaml",
            "last-checkpoint/trainer_state.json", "validation/predictions.json", "validation/per_sample.jsonl",
            "validation/results.json"} <= stored
    assert "validation/golds.json" not in stored  # the generations' scores are published, never the golds
    published = json.loads((hub.repo_dir("me/tiny-review", "models") / "validation" / "results.json").read_text())
    assert json.dumps(published).count('"low"') >= 3  # each metric with its 95% interval
    assert (output / "README.md").is_file()  # the card is also written locally
    checkpoint_commits = [c for c in hub.commits if any(path.startswith("last-checkpoint/") for _, path in
                                                        c["operations"])]
    assert len(checkpoint_commits) == 2  # one per saved checkpoint, each replacing the previous one
    assert_token_nowhere(TOKEN, [output, tmp_path / "hub"], [trained.stdout, trained.stderr, back.stdout], hub)
    assert assert_uploads_portable(hub, tmp_path, tiny_llama, train_rows) > 10
    uploaded_config = json.loads((hub.repo_dir("me/tiny-review", "models") / "adapter_config.json").read_text()
                                 if adapter else "{}")
    assert "base_model_name_or_path" not in uploaded_config  # the base was a local folder: no Hub id to name
    if adapter:  # the checkpoint holds the adapter and the state to resume, never the frozen base weights
        pushed = checkpoint_commits[0]["files"]
        from safetensors.torch import load

        tensors = load(pushed["last-checkpoint/model.safetensors"])
        assert tensors and all(".lora_" in name for name in tensors)
        assert {"last-checkpoint/optimizer.bin", "last-checkpoint/scheduler.bin",
                "last-checkpoint/trainer_state.json"} <= set(pushed)


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_lora_run_resumes_from_its_pushed_checkpoint_to_the_uninterrupted_weights(tiny_llama, short_data, tmp_path):
    from support.training import assert_same_weights, weights

    train_rows, validation_rows = short_data
    hub = HubStandIn(tmp_path / "hub", token=TOKEN)
    common = dict(max_steps=3, save_steps=1, save_total_limit=5, use_lora=True)
    with hub.running():
        env = hub_env(hub, tmp_path)
        run(["-m", "training.train", *run_flags(tiny_llama, tmp_path / "whole", train_rows, validation_rows,
                                                 push_to_hub=True, hub_model_id="me/lora", hub_strategy="checkpoint",
                                                 hub_token=TOKEN, **common)], env)
    first = next(c for c in hub.commits if any(p.startswith("last-checkpoint/") for _, p in c["operations"]))
    from_hub = tmp_path / "downloaded"  # the checkpoint of step 1 exactly as the Hub holds it
    for name, data in first["files"].items():
        (from_hub / name).parent.mkdir(parents=True, exist_ok=True)
        (from_hub / name).write_bytes(data)
    assert json.loads((from_hub / "last-checkpoint" / "trainer_state.json").read_text())["global_step"] == 1
    run(["-m", "training.train", *run_flags(tiny_llama, tmp_path / "resumed", train_rows, validation_rows,
                                            resume_from_checkpoint=from_hub / "last-checkpoint", **common)],
        hub_env(hub, tmp_path))
    assert_same_weights(weights(tmp_path / "whole" / "final" / "adapter_model.safetensors"),
                        weights(tmp_path / "resumed" / "final" / "adapter_model.safetensors"))


@pytest.mark.multiprocess
@pytest.mark.slow
def test_server_error_mid_upload_leaves_the_run_intact_and_a_retry_completes_it(zero_shot_run, tmp_path):
    hub = HubStandIn(tmp_path / "hub", token=TOKEN)
    command = ["evaluation/push_results.py", "--run_dir", str(zero_shot_run), "--hub_model_id", "me/results",
               "--hub_repo_type", "dataset", "--hub_token", TOKEN]
    with hub.running():
        env = hub_env(hub, tmp_path, HF_HUB_ETAG_TIMEOUT="5")
        run(command, env)  # writes the per-sample scores and the card once: the folder is then stable
        before = fingerprint(zero_shot_run)
        shutil.rmtree(hub.repo_dir("me/results"))
        hub.commits.clear()
        hub.fail_commits = 10  # more than the client's own retries
        failed = run(command, env, expect=2)
        assert "push_results.py: error: uploading to me/results failed" in failed.stderr
        assert "run the same command again" in failed.stderr and "Traceback" not in failed.stderr
        assert fingerprint(zero_shot_run) == before and hub.repo_files("me/results") == []
        hub.fail_commits = 0
        retried = run(command, env)
        again = run(command, env)
    assert fingerprint(zero_shot_run) == before
    assert len(hub.commits) == 2 and hub.commits[0]["operations"] == hub.commits[1]["operations"]
    paths = [path for _, path in hub.commits[0]["operations"]]
    assert len(paths) == len(set(paths)) and set(paths) == set(hub.repo_files("me/results"))
    assert "golds.json" not in paths
    assert_token_nowhere(TOKEN, [zero_shot_run, tmp_path / "hub"],
                         [failed.stdout, failed.stderr, retried.stdout, retried.stderr, again.stderr], hub)
    assert assert_uploads_portable(hub, tmp_path, zero_shot_run) >= 10


LOAD_PLAIN = """
import json, sys
import datasets
rows = {}
for name in sys.argv[3].split(","):
    loaded = datasets.load_dataset(sys.argv[1], name, cache_dir=sys.argv[2])
    rows[name] = {split: [dict(r) for r in data] for split, data in loaded.items()}
assert not any(m.startswith(("longlamp", "publishing", "evaluation", "training")) for m in sys.modules)
json.dump(rows, open(sys.argv[4], "w"))
"""


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_exported_dataset_loads_with_plain_datasets_before_and_after_upload(sample_dir, sample_cache, tmp_path):
    import longlamp

    configs = ["product_review_user", "topic_writing_temporal"]
    folder = tmp_path / "export"
    hub = HubStandIn(tmp_path / "hub", token=TOKEN)
    with hub.running():
        env = hub_env(hub, tmp_path)
        exported = run(["scripts/export_dataset.py", "--config", *configs, "--data_dir", str(sample_dir),
                        "--cache_dir", sample_cache, "--output", str(folder), "--push_to_hub", "me/longlamp",
                        "--hub_token", TOKEN], env)
        plain = {**hub_env(hub, tmp_path, with_repo=False), "HF_TOKEN": TOKEN}
        for source, out in ((str(folder), "local.json"), ("me/longlamp", "hub.json")):
            run(["-c", LOAD_PLAIN, source, str(tmp_path / f"cache-{out}"), ",".join(configs), str(tmp_path / out)],
                plain, cwd=tmp_path)
    expected = {name: {split: list(data) for split, data in longlamp.load(name, data_dir=str(sample_dir),
                                                                         cache_dir=sample_cache).items()}
                for name in configs}
    for out in ("local.json", "hub.json"):
        assert json.loads((tmp_path / out).read_text()) == json.loads(json.dumps(expected)), out
    assert set(hub.repo_files("me/longlamp")) == {p.relative_to(folder).as_posix() for p in files_under(folder)}
    assert_token_nowhere(TOKEN, [folder, tmp_path / "hub"], [exported.stdout, exported.stderr], hub)
    assert assert_uploads_portable(hub, tmp_path, sample_dir) >= 5


@pytest.mark.multiprocess
@pytest.mark.slow
def test_email_export_warns_and_pushes_privately_by_default(sample_dir, tmp_path):
    hub = HubStandIn(tmp_path / "hub")
    with hub.running():
        env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN)
        done = run(["scripts/export_dataset.py", "--config", "email_generation_user", "--data_dir",
                    str(sample_dir / "avocado"), "--cache_dir", str(tmp_path / "cache"), "--output",
                    str(tmp_path / "export"), "--push_to_hub", "me/email"], env)
    assert "LDC2015T03" in done.stderr and "(private)" in done.stdout
    assert hub.created and all(asked.get("visibility") == "private" for asked in hub.created), hub.created
    assert "license_name: ldc-avocado" in (tmp_path / "export" / "README.md").read_text()
    assert hub.private[("datasets", "me/email")] is True


@pytest.mark.multiprocess
@pytest.mark.slow
def test_email_data_never_reaches_an_existing_public_repository_without_the_licence_flag(sample_dir, tmp_path):
    """`private=` is ignored by the Hub when the repository exists: the real visibility decides."""
    hub = HubStandIn(tmp_path / "hub", token=TOKEN)
    hub.add_repo("me/public-email", "datasets", private=False)
    hub.add_repo("me/private-email", "datasets", private=True)
    command = ["scripts/export_dataset.py", "--config", "email_generation_user", "--data_dir",
               str(sample_dir / "avocado"), "--cache_dir", str(tmp_path / "cache"), "--output",
               str(tmp_path / "export"), "--hub_token", TOKEN, "--push_to_hub"]
    with hub.running():
        env = hub_env(hub, tmp_path)
        for extra in ([], ["--private"]):
            refused = run([*command, "me/public-email", *extra], env, expect=2)
            assert refused.stderr.count("error:") == 1 and "me/public-email exists and is public" in refused.stderr
            assert "Traceback" not in refused.stderr
        assert not hub.commits and hub.repo_files("me/public-email") == []
        run([*command, "me/private-email"], env)
        assert [c["repo"] for c in hub.commits] == ["me/private-email"]
        accepted = run([*command, "me/public-email", "--public_despite_license"], env)
    assert "pushing the email task publicly" in accepted.stderr
    assert [c["repo"] for c in hub.commits] == ["me/private-email", "me/public-email"]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_zero_shot_results_pushed_into_an_existing_model_repo_keep_its_card(tiny_llama, sample_dir, sample_cache,
                                                                             tmp_path):
    from huggingface_hub import ModelCard

    hub = HubStandIn(tmp_path / "hub", token=TOKEN)
    repo = hub.repo_dir("me/tiny", "models")
    model = tmp_path / "tiny"  # the evaluated model's local copy, with its card: the licence is read from it
    shutil.copytree(tiny_llama, model)
    (model / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Tiny\n\nThe owner's own words.\n")
    shutil.copytree(model, repo)
    output = tmp_path / "run"
    command = ["evaluation/evaluate_llm.py", "--validation_data", CONFIG, "--data_dir", str(sample_dir), "--cache_dir",
               sample_cache, "--model_addr", str(model), "--output_dir", str(output), "--max_new_tokens", "8",
               "--limit", "3", "--push_to_hub", "--hub_model_id", "me/tiny", "--hub_revision", "longlamp-results"]
    with hub.running():
        env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN)
        first = run(command, env)
        second = run(command, env)  # the same results again: the card gains no second section
    assert (repo / "README.md").read_text() == (model / "README.md").read_text()  # main as it was: a branch apart
    repo = hub.repo_dir("me/tiny", "models", "longlamp-results")
    card = ModelCard((repo / "README.md").read_text())
    scores = json.loads((output / "scores.json").read_text())["scores"]["metrics"]
    assert card.data.license == "apache-2.0" and "The owner's own words." in card.text
    assert ModelCard((repo / "longlamp" / CONFIG / "README.md").read_text()).data.license == "apache-2.0"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == scores
    assert card.text.count(f"<!-- longlamp:{CONFIG} -->") == 1
    assert (repo / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    assert {"README.md", "results.json", "predictions.json", "results.png"} <= {
        p.name for p in (repo / "longlamp" / CONFIG).iterdir()}
    assert {c["revision"] for c in hub.commits} == {"longlamp-results"}
    assert "pushed to" in first.stdout
    assert_token_nowhere(TOKEN, [output], [first.stdout, first.stderr, second.stdout, second.stderr], hub)
    assert assert_uploads_portable(hub, tmp_path, model, sample_dir) >= 5


@pytest.mark.multiprocess
def test_a_ranked_split_exports_as_its_own_config_that_plain_datasets_loads(sample_dir, sample_cache, tmp_path):
    import longlamp
    from retrieval import rank_profiles

    ranked = tmp_path / "val_bm25.parquet"
    assert rank_profiles.main(["--config", CONFIG, "--split", "validation", "--data_dir", str(sample_dir),
                               "--retriever", "bm25", "--output", str(ranked)]) == 0
    from publishing.dataset_export import export_config

    name = export_config(CONFIG, tmp_path / "export", ranked={"validation": ranked}, data_dir=str(sample_dir),
                         cache_dir=sample_cache)
    assert name == f"{CONFIG}_bm25_ranked"
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(tmp_path / "export" / "README.md")
    assert all(split["num_bytes"] > 0 for split in card.data.dataset_info[0]["splits"])  # else every load warns
    assert "local data (`<local>/sample`), not checked against LongLaMP/LongLaMP" in card.text
    run(["-c", LOAD_PLAIN, str(tmp_path / "export"), str(tmp_path / "cache"), name, str(tmp_path / "rows.json")],
        {**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    loaded = json.loads((tmp_path / "rows.json").read_text())[name]
    assert list(loaded) == ["validation"]
    assert loaded["validation"] == json.loads(json.dumps(list(longlamp.load_split(str(ranked), "validation"))))


@pytest.mark.multiprocess
def test_export_refuses_mislabelled_ranked_files_and_bad_paths_with_one_error_line(sample_dir, sample_cache, tmp_path,
                                                                                   capsys):
    from longlamp_cli import run_command
    from retrieval import rank_profiles
    from scripts import export_dataset

    ranked = tmp_path / "val_bm25.parquet"
    assert rank_profiles.main(["--config", CONFIG, "--split", "validation", "--data_dir", str(sample_dir),
                               "--retriever", "bm25", "--output", str(ranked)]) == 0
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "not.parquet").write_text("not parquet")
    base = ["--data_dir", str(sample_dir), "--cache_dir", sample_cache]
    cases = {
        "another config": (["--config", "topic_writing_user", "--ranked", f"validation={ranked}", *base,
                            "--output", str(tmp_path / "out1")], f"{ranked}: not the validation split of "
                                                                  "topic_writing_user"),
        "another split": (["--config", CONFIG, "--ranked", f"train={ranked}", *base, "--output",
                           str(tmp_path / "out2")], f"train={ranked}: not the train split of {CONFIG}"),
        "output a file": (["--config", CONFIG, *base, "--output", str(tmp_path / "a-file")], "is a file"),
        "missing data_dir": (["--config", CONFIG, "--data_dir", str(tmp_path / "missing"), "--output",
                              str(tmp_path / "out3")], "missing"),
        "not parquet": (["--config", CONFIG, "--ranked", str(tmp_path / "not.parquet"), *base, "--output",
                         str(tmp_path / "out4")], "not.parquet"),
    }
    for case, (argv, expected) in cases.items():
        code = run_command(export_dataset.main, argv, prog="export_dataset.py")
        err = capsys.readouterr().err
        assert code == 2 and err.count("export_dataset.py: error:") == 1 and expected in err, (case, err)
        assert "Traceback" not in err, case
    assert not any((tmp_path / f"out{i}").exists() for i in range(1, 5))  # nothing half-written


def test_local_paths_are_reduced_to_their_last_part_hub_ids_and_urls_kept(tmp_path, monkeypatch):
    from support.records import zero_shot_record

    from publishing.runs import public_name, public_record

    assert [public_name(value) for value in (str(tmp_path / "final"), "product_review_user",
                                             f"contriever(model_name={tmp_path}/encoder, batch=2)",
                                             "facebook/contriever", "~/models/tiny", "https://hf.co/a/b")] == [
        "<local>/final", "product_review_user", "contriever(model_name=<local>/encoder, batch=2)",
        "facebook/contriever", "<local>/tiny", "https://hf.co/a/b"]
    record = zero_shot_record(model=str(tmp_path / "final"), data=str(tmp_path / "rows.parquet"),
                              retriever=f"contriever(model_name={tmp_path}/encoder, dtype=float32)", k=2)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zero_shot").mkdir()  # a folder named like a setting's value: only settings that are places change
    shown = public_record(record)
    assert (shown.model.name, shown.data.data, shown.retrieval.signature, shown.kind, shown.task.config) == (
        "<local>/final", "<local>/rows.parquet", "contriever(model_name=<local>/encoder, dtype=float32)",
        "zero_shot", "product_review_user")


def test_only_the_main_process_pushes(zero_shot_run, tmp_path, monkeypatch):
    from publishing.hub import push_run

    monkeypatch.setenv("RANK", "1")
    assert push_run(zero_shot_run, "me/results", dry_run_dir=tmp_path / "staged") == ""
    assert not (tmp_path / "staged").exists()
    monkeypatch.setenv("RANK", "0")
    assert push_run(zero_shot_run, "me/results", dry_run_dir=tmp_path / "staged") == str(tmp_path / "staged")
