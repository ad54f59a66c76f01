"""OPPU's +PAG on both sides (issue 24 item 8): with --use_summary, train_per_user.py puts each user's profile summary
in the prompts their adapter is trained on, built as evaluate_per_user.py builds its prompts and recorded in
per_user_config.json; evaluation refuses adapters trained without the summary when asked for one, and the other way
round. Summaries are written by the run's own model or by another one (here served by
tests/support/openai_server.py)."""

from __future__ import annotations

import json

import pytest

from longlamp_cli import run_command
from longlamp_runs import ProfileSummary, read_record

SPLIT = ["--data", "product_review_user", "--split", "validation"]
TRAINED = "user_0013_cooking"  # the only one of the first two validation users (by id) with a profile
SUMMARY = ["--use_summary", "--summary_max_new_tokens", "8"]


def train_flags(model, sample_dir, cache, folder, *extra: str) -> list[str]:
    return ["--model_name", str(model), *SPLIT, "--data_dir", str(sample_dir), "--cache_dir", cache, "--output_dir",
            str(folder), "--max_users", "2", "--max_items_per_user", "2", "--num_train_epochs", "1",
            "--max_prompt_length", "256", *extra]


def evaluate_flags(model, sample_dir, cache, adapters, output, *extra: str) -> list[str]:
    return ["--model_name", str(model), *SPLIT, "--data_dir", str(sample_dir), "--cache_dir", cache, "--adapters_dir",
            str(adapters), "--max_new_tokens", "4", "--max_prompt_length", "256", "--max_eval_examples", "3",
            "--output_dir", str(output), *extra]


def user_record(folder, user: str) -> dict:
    return next(json.loads(path.read_text()) for path in (folder / "users").glob("*/user.json")
                if json.loads(path.read_text())["user_id"] == user)


def error_line(capsys, prog: str) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    return lines[0]


def test_training_prompts_hold_the_summary_as_evaluation_builds_them(tiny_llama, sample_dir, sample_cache, tmp_path):
    """The training encoder's prompt of an example with a summary is the evaluation's prompt of the same items and
    input: the summary cut so that the task input fits, never the input."""
    from longlamp_tasks import parse_config_name
    from personalization.summaries import SUMMARY_PREFIX, SummaryPromptBuilder
    from training.train_per_user import parse_args
    from training.user_adapters import SummaryExampleEncoder, example_encoder

    args = parse_args(train_flags(tiny_llama, sample_dir, sample_cache, tmp_path / "oppu", *SUMMARY, "--use_profile",
                                  "--num_retrieved", "1"))
    task, _ = parse_config_name(args.task)
    encoder, _, _ = example_encoder(args, task)
    assert isinstance(encoder, SummaryExampleEncoder)
    item = {"overall": "5.0", "summary": "Great pan", "description": "A pan", "reviewText": "I cook eggs every day."}
    summary = "The author reviews kitchen tools briefly. " * 40  # longer than the budget leaves: cut
    example = {"id": "u-profile-1", "input": "Generate the review text for a pan.", "output": "Fine pan.",
               "profile": [item], "summary": summary}
    prompt = encoder.prompt(example)
    assert prompt == SummaryPromptBuilder(encoder.prompts)(encoder.retrieved(example), example["input"], summary)
    assert SUMMARY_PREFIX + "The author reviews kitchen tools briefly." in prompt and example["input"] in prompt
    assert summary.strip() not in prompt and encoder.prompts.count(prompt) <= encoder.max_prompt_length
    encoded = encoder.encode(example)
    assert SUMMARY_PREFIX.strip() in encoder.tokenizer.decode(encoded["input_ids"][:encoded["prompt_length"]])


@pytest.mark.slow
def test_own_model_summaries_are_trained_on_recorded_and_the_same_at_evaluation(tiny_llama, sample_dir, sample_cache,
                                                                                tmp_path, capsys, fresh_accelerate):
    """The run's own model writes the summaries at training; per_user_config.json records the summary settings and
    user.json what each summary read and said. Evaluated with the same summary settings (and the training's cache),
    the user's summary is the one the adapter was trained with; evaluated without a summary, the adapters are
    refused, and adapters trained without one are refused for an evaluation with one."""
    from evaluation.evaluate_per_user import main as evaluate
    from training.train_per_user import main as train

    pag, plain = tmp_path / "pag", tmp_path / "plain"
    assert train(train_flags(tiny_llama, sample_dir, sample_cache, pag, *SUMMARY)) == 0
    record = read_record(pag / "per_user_config.json")
    assert record.per_user.profile_summary == ProfileSummary("profile", 8, None, None)
    summary = user_record(pag, TRAINED)["profile_summary"]
    entry = summary["sets"][0]
    assert summary["of"] == "profile" and entry["user"] == TRAINED and entry["requests"] >= 1
    assert len(entry["summarized"]) + len(entry["without_text"]) == entry["items"]
    cached = sorted(path.name for path in (pag / "summaries").glob("*.json"))
    assert cached

    flags = evaluate_flags(tiny_llama, sample_dir, sample_cache, pag, tmp_path / "with", *SUMMARY,
                           "--summary_cache_dir", str(pag / "summaries"))
    assert evaluate(flags) == 0
    evaluated = json.loads((tmp_path / "with" / "summaries.json").read_text())
    assert next(e for e in evaluated["sets"] if e["user"] == TRAINED)["summary"] == entry["summary"]
    assert read_record(tmp_path / "with" / "scores.json").per_user.profile_summary == record.per_user.profile_summary

    capsys.readouterr()
    without = evaluate_flags(tiny_llama, sample_dir, sample_cache, pag, tmp_path / "without")
    assert run_command(evaluate, without, "evaluate_per_user.py") == 2
    error = error_line(capsys, "evaluate_per_user.py")
    assert "the adapters were trained with other settings than this run's" in error
    assert "per_user.profile_summary.of: 'profile' -> None" in error
    assert not (tmp_path / "without").exists()

    assert train(train_flags(tiny_llama, sample_dir, sample_cache, plain)) == 0
    assert read_record(plain / "per_user_config.json").per_user is None
    assert "profile_summary" not in user_record(plain, TRAINED)
    capsys.readouterr()
    asked = evaluate_flags(tiny_llama, sample_dir, sample_cache, plain, tmp_path / "asked", *SUMMARY)
    assert run_command(evaluate, asked, "evaluate_per_user.py") == 2
    assert "per_user.profile_summary.of: None -> 'profile'" in error_line(capsys, "evaluate_per_user.py")
    assert not (tmp_path / "asked").exists()


@pytest.mark.slow
def test_summaries_of_retrieved_items_are_one_per_training_prompt(tiny_llama, sample_dir, sample_cache, tmp_path,
                                                                  fresh_accelerate):
    """--summary_of retrieved: each training example's retrieved items (the user's earlier items) and each held-out
    row's are summarised; the first item, with no earlier one, gets none."""
    from training.train_per_user import main as train

    folder = tmp_path / "oppu"
    assert train(train_flags(tiny_llama, sample_dir, sample_cache, folder, *SUMMARY, "--summary_of", "retrieved",
                             "--use_profile", "--num_retrieved", "1")) == 0
    summary = user_record(folder, TRAINED)["profile_summary"]
    ids = [entry["id"] for entry in summary["sets"]]
    assert summary["of"] == "retrieved" and ids[:2] == [f"{TRAINED}-profile-0", f"{TRAINED}-profile-1"]
    first, second = summary["sets"][:2]
    assert (first["items"], first["requests"], first["summary"]) == (0, 0, "")
    assert second["items"] == 1 and second["requests"] == 1
    assert len(ids) > 2  # the held-out rows too
    assert read_record(folder / "per_user_config.json").per_user.profile_summary.of == "retrieved"


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_served_summary_model_writes_the_training_summaries(tiny_llama, tiny_chat_llama, sample_dir, sample_cache,
                                                             tmp_path, monkeypatch, fresh_accelerate):
    """--summary_model on a server (tests/support/openai_server.py) at training: asked once per request, recorded,
    and the evaluation with the same settings and cache asks nothing for the trained user."""
    from support.openai_server import served

    from evaluation.evaluate_per_user import main as evaluate
    from training.train_per_user import main as train

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    log = tmp_path / "requests.log"
    folder = tmp_path / "oppu"
    with served(tiny_chat_llama, "--log", str(log)) as url:
        served_flags = [*SUMMARY, "--summary_model", "tiny-chat", "--summary_backend", "openai", "--summary_api_base",
                        url, "--summary_cache_dir", str(tmp_path / "summaries")]
        assert train(train_flags(tiny_llama, sample_dir, sample_cache, folder, *served_flags)) == 0
        sent = log.read_text().count("\n")
        entry = user_record(folder, TRAINED)["profile_summary"]["sets"][0]
        assert entry["requests"] <= sent <= entry["requests"] + entry["combining_requests"]
        assert evaluate(evaluate_flags(tiny_llama, sample_dir, sample_cache, folder, tmp_path / "test",
                                       *served_flags)) == 0
        evaluated = json.loads((tmp_path / "test" / "summaries.json").read_text())
        others = [e for e in evaluated["sets"] if e["user"] != TRAINED]
        assert log.read_text().count("\n") - sent <= sum(e["requests"] + e["combining_requests"] for e in others)
    assert next(e for e in evaluated["sets"] if e["user"] == TRAINED)["summary"] == entry["summary"]
    trained = read_record(folder / "per_user_config.json").per_user.profile_summary
    assert trained == ProfileSummary("profile", 8, "tiny-chat", "openai")
    prompts = json.loads((tmp_path / "test" / "prompts.json").read_text())
    assert any("Summary of the author's profile: " in p["prompt"] for p in prompts if p["user"] == TRAINED)


def test_summary_flags_are_checked_before_anything_runs(tiny_llama, sample_dir, sample_cache, tmp_path, capsys):
    from training.train_per_user import main as train

    base = train_flags(tiny_llama, sample_dir, sample_cache, tmp_path / "oppu")
    refusals = {
        ("--use_summary", "--summary_of", "retrieved"): "--summary_of retrieved summarises the retrieved items: add "
                                                        "--use_profile",
        ("--summary_model", "m"): "--summary_model and --summary_api_base choose who writes the summaries: add "
                                  "--use_summary",
        ("--use_summary", "--summary_backend", "openai"): "--summary_backend openai writes the summaries with a served "
                                                          "model: give --summary_model",
        ("--use_summary", "--summary_model", "m", "--summary_api_base", "http://127.0.0.1:9/v1"):
            "--summary_api_base is for a served summary model: add --summary_backend openai",
    }
    for extra, message in refusals.items():
        assert run_command(train, [*base, *extra], "train_per_user.py") == 2
        assert message in error_line(capsys, "train_per_user.py")
    assert not (tmp_path / "oppu").exists()


def test_every_summary_flag_is_recorded_or_run_control():
    """The summary flags both commands share are the record's profile summary or run control (a cache folder, a
    server's address): a new one cannot go unrecorded."""
    from dataclasses import fields

    from longlamp_runs import RUN_CONTROL, SUMMARY_FLAGS
    from personalization.cli import ProfileSummaryArguments

    names = {spec.name for spec in fields(ProfileSummaryArguments)}
    assert names == SUMMARY_FLAGS | (names & RUN_CONTROL) and names & RUN_CONTROL == {
        "summary_cache_dir", "summary_api_base", "summary_request_timeout", "summary_max_retries"}
