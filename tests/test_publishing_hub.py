"""The Hub stand-in is as strict as the Hub where a publisher could get it wrong, and every push path meets that
strictness with one clear refusal: metadata the Hub refuses, a token that may not write (a pull request instead),
a repository that is missing, public or unreadable, a server that never answers or answers something else.

These run in this process: the client's endpoint is pointed at the stand-in (huggingface_hub.constants).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from support.faulty_server import never_answering
from support.hub import TOKEN, files_under
from support.hub_server import HubStandIn

from longlamp_cli import run_command
from longlamp_errors import PublishError

GOOD_CARD = "---\nlicense: mit\nbase_model: me/base\ntags:\n- longlamp\n---\n# A model\n"


def fingerprint(folder: Path, skip: str | None = None) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files_under(folder)
            if skip is None or skip not in p.relative_to(folder).parts}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    server = HubStandIn(tmp_path / "hub", token=TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with server.running():
        yield server


@pytest.fixture
def api(hub):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint, token=TOKEN)


def folder_with(tmp_path: Path, card: str, name: str = "upload") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "README.md").write_text(card)
    (folder / "results.json").write_text("{}")
    return folder


# --- the stand-in ----------------------------------------------------------------------------------------------


def test_the_stand_in_answers_409_for_an_existing_repository_and_keeps_its_visibility(hub, api):
    from huggingface_hub.errors import HfHubHTTPError

    api.create_repo("me/secret", private=True)
    with pytest.raises(HfHubHTTPError) as refused:
        api.create_repo("me/secret")
    assert refused.value.response.status_code == 409
    api.create_repo("me/secret", exist_ok=True, private=False)  # the Hub ignores `private` then
    assert api.repo_info("me/secret").private is True
    api.create_repo("me/open", repo_type="dataset")
    assert api.repo_info("me/open", repo_type="dataset").private is False


@pytest.mark.parametrize("metadata, repo_type, problem", [
    ("license: not-a-licence", "model", "license"),
    ("base_model: /opt/models/tiny", "model", "base_model"),
    ("base_model: <local>/tiny", "model", "base_model"),
    ("model-index:\n- name: m\n  results:\n  - task: text-generation", "model", "model-index[].results[]"),
    ("model-index: {}", "model", "model-index"),
    ("pipeline_tag: text-generation", "dataset", "model metadata"),
    ("model-index:\n- name: m\n  results: []", "dataset", "model metadata"),
])
def test_the_stand_in_applies_the_hubs_metadata_rules(hub, metadata, repo_type, problem):
    from huggingface_hub import RepoCard

    with pytest.raises(ValueError, match=re.escape(problem)):
        RepoCard(f"---\n{metadata}\n---\ntext\n").validate(repo_type)
    RepoCard(GOOD_CARD if repo_type == "model" else "---\nlicense: other\n---\ntext\n").validate(repo_type)


def test_the_stand_in_keeps_branches_apart_and_refuses_a_missing_one(hub, api, tmp_path):
    from huggingface_hub.errors import RevisionNotFoundError

    folder = folder_with(tmp_path, GOOD_CARD)
    api.create_repo("me/m")
    api.upload_file(path_or_fileobj=b"main", path_in_repo="on-main.txt", repo_id="me/m")
    api.create_branch("me/m", branch="dev")
    api.upload_folder(repo_id="me/m", folder_path=str(folder), revision="dev")
    assert hub.repo_files("me/m", "models") == ["on-main.txt"]
    assert hub.repo_files("me/m", "models", "dev") == ["README.md", "on-main.txt", "results.json"]
    with pytest.raises(RevisionNotFoundError):
        api.upload_folder(repo_id="me/m", folder_path=str(folder), revision="missing")


def test_the_stand_in_lets_others_only_open_pull_requests(hub, api, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    hub.add_repo("someone/model")
    folder = folder_with(tmp_path, GOOD_CARD)
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_folder(repo_id="someone/model", folder_path=str(folder))
    assert refused.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as refused:
        api.create_repo("someone/new")
    assert refused.value.response.status_code == 403
    commit = api.upload_folder(repo_id="someone/model", folder_path=str(folder), create_pr=True)
    assert commit.pr_url.endswith("/someone/model/discussions/1")
    assert hub.repo_files("someone/model", "models") == []
    assert hub.repo_files("someone/model", "models", "refs/pr/1") == ["README.md", "results.json"]


# --- upload(): what every push path goes through ----------------------------------------------------------------


def test_refused_metadata_creates_nothing_and_says_why(hub, tmp_path):
    from publishing.hub import upload

    folder = folder_with(tmp_path, "---\nlicense: apache2\n---\ntext\n")
    with pytest.raises(PublishError, match="refuses the metadata.*\"license\".*no repository was created"):
        upload(folder, "me/model", token=TOKEN)
    assert hub.created == [] and not hub.commits


def test_a_token_that_may_not_write_opens_a_pull_request_with_a_message(hub, tmp_path, caplog):
    from publishing.hub import upload

    hub.add_repo("someone/model")
    folder = folder_with(tmp_path, GOOD_CARD)
    url = upload(folder, "someone/model", token=TOKEN)
    assert url.endswith("/someone/model/discussions/1") and "opening a pull request" in caplog.text
    assert upload(folder, "someone/model", token=TOKEN, create_pr=True).endswith("/discussions/2")
    with pytest.raises(PublishError, match="a pull request .* goes to main, not to --hub_revision results"):
        upload(folder, "someone/model", token=TOKEN, revision="results")
    with pytest.raises(PublishError, match="may not create someone/new"):
        upload(folder, "someone/new", token=TOKEN)
    with pytest.raises(PublishError, match="me/missing does not exist"):
        upload(folder, "me/missing", token=TOKEN, create_pr=True)
    assert {c["revision"] for c in hub.commits} == {"refs/pr/1", "refs/pr/2"}


def test_a_private_push_into_an_existing_public_repository_is_refused(hub, tmp_path):
    from publishing.hub import upload

    hub.add_repo("me/public-model")
    folder = folder_with(tmp_path, GOOD_CARD)
    with pytest.raises(PublishError, match="me/public-model exists and is public, but this push must be private"):
        upload(folder, "me/public-model", token=TOKEN, private=True)
    assert not hub.commits
    hub.add_repo("me/private-model", private=True)
    upload(folder, "me/private-model", token=TOKEN, private=True)
    assert len(hub.commits) == 1


def test_a_server_that_never_answers_ends_push_results_with_one_error_line(zero_shot_copy, tmp_path, monkeypatch,
                                                                           capsys):
    from huggingface_hub import constants

    from evaluation import push_results

    monkeypatch.setenv("LONGLAMP_HUB_TIMEOUT", "1")  # read at each request: later tests get the default back
    before = fingerprint(zero_shot_copy)
    start = time.monotonic()
    with never_answering() as endpoint:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        code = run_command(push_results.main, ["--run_dir", str(zero_shot_copy), "--hub_model_id", "me/results",
                                               "--hub_repo_type", "dataset", "--hub_token", TOKEN],
                           prog="push_results.py")
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 30
    assert err.count("push_results.py: error:") == 1 and "timed out" in err.lower() and "Traceback" not in err
    assert fingerprint(zero_shot_copy) == before


def test_an_endpoint_answering_200_with_html_gives_one_error_line(hub, zero_shot_copy, capsys):
    from evaluation import push_results

    hub.garbage = True
    before = fingerprint(zero_shot_copy)
    code = run_command(push_results.main, ["--run_dir", str(zero_shot_copy), "--hub_model_id", "me/results",
                                           "--hub_repo_type", "dataset", "--hub_token", TOKEN], prog="push_results.py")
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "not JSON" in err and "Traceback" not in err
    assert fingerprint(zero_shot_copy) == before


def test_push_results_refusals_leave_the_run_folder_unchanged(hub, zero_shot_copy, capsys):
    from evaluation import push_results

    before = fingerprint(zero_shot_copy)
    base = ["--run_dir", str(zero_shot_copy), "--hub_repo_type", "dataset", "--hub_token", TOKEN]
    assert run_command(push_results.main, base + ["--hub_model_id", "someone/results"], prog="p") == 2
    assert "may not create someone/results" in capsys.readouterr().err
    assert run_command(push_results.main, base + ["--hub_model_id", "me/none", "--create_pr"], prog="p") == 2
    assert "me/none does not exist" in capsys.readouterr().err
    assert fingerprint(zero_shot_copy) == before and not hub.commits


# --- push_results --dry_run and what a run folder may hold ---------------------------------------------------------


@pytest.fixture
def zero_shot_copy(zero_shot_run, tmp_path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(zero_shot_run, folder)
    return folder


@pytest.fixture(scope="module")
def zero_shot_run(tmp_path_factory, tiny_llama, sample_dir, sample_cache) -> Path:
    """A scored zero-shot run with and without profile (3 validation examples)."""
    from evaluation import evaluate_llm

    folder = tmp_path_factory.mktemp("zero-shot") / "run"
    assert evaluate_llm.main(["--validation_data", "product_review_user", "--data_dir", str(sample_dir),
                              "--cache_dir", sample_cache, "--model_addr", str(tiny_llama), "--output_dir",
                              str(folder), "--max_new_tokens", "8", "--limit", "3", "--use_profile",
                              "--num_retrieved", "1", "--compare_no_profile"]) == 0
    return folder


def test_dry_run_writes_only_its_staging_folder(zero_shot_copy):
    from evaluation import push_results

    for name in ("README.md", "results.png", "per_sample.jsonl", "no_profile/per_sample.jsonl"):
        (zero_shot_copy / name).unlink()  # an older run: the dry run computes them into the staging folder only
    before = fingerprint(zero_shot_copy)
    assert push_results.main(["--run_dir", str(zero_shot_copy), "--hub_model_id", "me/results", "--dry_run"]) == 0
    assert fingerprint(zero_shot_copy, skip=push_results.DRY_RUN_FOLDER) == before
    staged = zero_shot_copy / push_results.DRY_RUN_FOLDER
    assert {"README.md", "longlamp/product_review_user/per_sample.jsonl", "longlamp/product_review_user/results.png",
            "longlamp/product_review_user/no_profile/per_sample.jsonl"} <= set(fingerprint(staged))


def test_predictions_that_do_not_match_the_scores_are_refused_not_rewritten(zero_shot_copy, capsys):
    from evaluation import push_results

    predictions = json.loads((zero_shot_copy / "predictions.json").read_text())
    predictions["golds"] = predictions["golds"][:-1]
    (zero_shot_copy / "predictions.json").write_text(json.dumps(predictions))
    before = fingerprint(zero_shot_copy)
    code = run_command(push_results.main, ["--run_dir", str(zero_shot_copy), "--hub_model_id", "me/results",
                                           "--dry_run"], prog="push_results.py")
    assert code == 2 and "push_results.py: error:" in capsys.readouterr().err
    assert fingerprint(zero_shot_copy, skip=push_results.DRY_RUN_FOLDER) == before


def test_a_nan_in_a_per_sample_file_is_refused_and_never_uploaded(zero_shot_copy, capsys):
    from evaluation import push_results

    lines = (zero_shot_copy / "per_sample.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["rouge1"] = float("nan")
    (zero_shot_copy / "per_sample.jsonl").write_text("\n".join([json.dumps(row)] + lines[1:]) + "\n")
    code = run_command(push_results.main, ["--run_dir", str(zero_shot_copy), "--hub_model_id", "me/results",
                                           "--dry_run"], prog="push_results.py")
    assert code == 2 and "per_sample.jsonl" in capsys.readouterr().err
    staged = zero_shot_copy / push_results.DRY_RUN_FOLDER
    assert not any(b"NaN" in p.read_bytes() for p in files_under(staged) if p.suffix in (".json", ".jsonl"))


# --- what the cards say about the model -------------------------------------------------------------------------


def test_a_hub_models_licence_comes_from_model_info_with_its_name_and_link(hub, tmp_path):
    from huggingface_hub import ModelCard
    from support.records import write_summary, zero_shot_record

    from publishing.hub import stage_run

    base = hub.add_repo("org/base")
    (base / "README.md").write_text("---\nlicense: other\nlicense_name: org-licence\nlicense_link: "
                                    "https://example.org/licence\n---\n# Base\n")
    run = tmp_path / "run"
    run.mkdir()
    write_summary(run, zero_shot_record(model="org/base"), {"num_samples": 3, "metrics": {"rouge1": 0.5}})
    staged = stage_run(run, tmp_path / "staged", repo_id="me/results")
    card = ModelCard.load(staged / "README.md").data
    assert (card.license, card.license_name, card.license_link) == ("other", "org-licence",
                                                                   "https://example.org/licence")


def test_a_seq2seq_adapter_card_says_text2text_and_loads_with_the_seq2seq_class(tmp_path):
    from types import SimpleNamespace

    from publishing.cards import _is_seq2seq

    folder = tmp_path / "final"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_2_SEQ_LM", "peft_type": "LORA"}))
    assert _is_seq2seq(SimpleNamespace(model_dir=folder))
    (folder / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM", "peft_type": "LORA"}))
    assert not _is_seq2seq(SimpleNamespace(model_dir=folder))
