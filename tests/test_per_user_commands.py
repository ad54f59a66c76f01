"""The per-user commands end to end on the bundled sample: style vectors written per user with a layer and scale
chosen on validation, and read back by evaluate_per_user.py (scale 0: the plain predictions exactly); summaries
generated on the first run and reused by the next; refusals named in one error line."""

from __future__ import annotations

import json

import pytest

from longlamp_cli import run_command
from longlamp_runs import read_record

SAMPLE_FLAGS = ["--data", "product_review_user", "--max_new_tokens", "6", "--max_prompt_length", "300"]


def common(tiny_llama, sample_dir, sample_cache) -> list[str]:
    return ["--model_name", str(tiny_llama), "--data_dir", str(sample_dir), "--cache_dir", sample_cache, *SAMPLE_FLAGS]


def outputs(run) -> list[str]:
    return [gold["output"] for gold in json.loads((run / "predictions.json").read_text())["golds"]]


def test_style_vectors_are_chosen_on_validation_and_scale_zero_predicts_as_the_plain_model(
        tiny_llama, sample_dir, sample_cache, tmp_path):
    from evaluation.evaluate_per_user import main as evaluate
    from training.train_style_vectors import main as train_vectors

    flags = common(tiny_llama, sample_dir, sample_cache)
    style_dir = tmp_path / "style"
    assert train_vectors([*flags, "--output_dir", str(style_dir), "--scales", "0,50", "--max_items_per_user",
                          "2"]) == 0
    assert len(list(style_dir.glob("*.safetensors"))) == 4  # test users with a profile (the first has none)
    selection = json.loads((style_dir / "style_selection.json").read_text())
    assert selection["layer"] == 1 and [t["scale"] for t in selection["tried"]] == [0.0, 50.0]

    assert evaluate([*flags, "--output_dir", str(tmp_path / "plain")]) == 0
    assert evaluate([*flags, "--style_vectors_dir", str(style_dir), "--style_scale", "0",
                     "--output_dir", str(tmp_path / "zero")]) == 0
    assert evaluate([*flags, "--style_vectors_dir", str(style_dir), "--style_scale", "50",
                     "--output_dir", str(tmp_path / "steered")]) == 0
    plain = outputs(tmp_path / "plain")
    assert outputs(tmp_path / "zero") == plain
    assert outputs(tmp_path / "steered") != plain
    golds = json.loads((tmp_path / "plain" / "golds.json").read_text())
    assert golds["golds"][0]["user"] == "user_0017_jazz" and golds["task"] == "LongLaMP_product_review_user"
    scores = json.loads((tmp_path / "steered" / "scores.json").read_text())
    assert read_record(tmp_path / "steered" / "scores.json").per_user.style_vectors.scale == 50
    assert scores["scores"]["num_samples"] == len(plain)
    vectors = read_record(style_dir / "per_user_config.json")  # what the vectors were made with
    assert vectors.kind == "style_vectors" and vectors.per_user.style_vector_training.scales == [0.0, 50.0]
    assert run_command(train_vectors, [*flags, "--output_dir", str(style_dir), "--scales", "0,5"]) == 2

    # the run's card says what ran and how to run it again, without the machine's paths
    from huggingface_hub import ModelCard

    from publishing.cards import write_run_card

    card = ModelCard.load(write_run_card(tmp_path / "steered")).text
    title = next(line for line in card.splitlines() if line.startswith("# "))
    assert title.endswith("on LongLaMP product_review_user (style vectors (layer 1, scale 50), no profile)")
    assert "| per_user.style_vectors.scale | 50.0 |" in card
    assert ("python evaluation/evaluate_per_user.py" in card and "--style_vectors_dir '<local>/style'" in card
            and "--style_scale 50.0" in card and "--backend transformers" in card and str(tmp_path) not in card)


@pytest.mark.slow
def test_summaries_are_generated_by_the_first_run_and_reused_by_the_next(tiny_llama, sample_dir, sample_cache,
                                                                        tmp_path):
    from evaluation.evaluate_per_user import main as evaluate

    flags = [*common(tiny_llama, sample_dir, sample_cache), "--use_summary", "--summary_max_new_tokens", "8",
             "--summary_cache_dir", str(tmp_path / "summaries")]
    assert evaluate([*flags, "--output_dir", str(tmp_path / "first")]) == 0
    cached = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "summaries").glob("*.json")}
    record = json.loads((tmp_path / "first" / "summaries.json").read_text())
    reading = sum(entry["requests"] for entry in record["sets"])  # distinct: each reads other items
    assert reading <= len(cached) <= reading + sum(entry["combining_requests"] for entry in record["sets"])
    assert sum(entry["requests"] > 0 for entry in record["sets"]) == 4  # the test users with a profile
    assert all(len(e["summarized"]) + len(e["without_text"]) == e["items"] for e in record["sets"])  # every item read
    assert evaluate([*flags, "--output_dir", str(tmp_path / "second")]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "summaries").glob("*.json")} == cached
    assert outputs(tmp_path / "second") == outputs(tmp_path / "first")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_summaries_by_another_model_on_a_server_are_cached_by_their_input(tiny_llama, tiny_chat_llama, sample_dir,
                                                                          sample_cache, tmp_path, monkeypatch):
    """--summary_model on any backend: here a served model (tests/support/openai_server.py), asked once per profile; the
    second run finds every summary in the cache and sends nothing."""
    from support.openai_server import served

    from evaluation.evaluate_per_user import main as evaluate

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    log = tmp_path / "requests.log"
    with served(tiny_chat_llama, "--log", str(log)) as url:
        flags = [*common(tiny_llama, sample_dir, sample_cache), "--use_summary", "--summary_max_new_tokens", "8",
                 "--summary_model", "tiny-chat", "--summary_backend", "openai", "--summary_api_base", url,
                 "--summary_cache_dir", str(tmp_path / "summaries")]
        assert evaluate([*flags, "--output_dir", str(tmp_path / "first")]) == 0
        sent = log.read_text().count("\n")
        assert evaluate([*flags, "--output_dir", str(tmp_path / "second")]) == 0
        record = json.loads((tmp_path / "first" / "summaries.json").read_text())
        reading = sum(entry["requests"] for entry in record["sets"])  # distinct: each reads other items
        combining = sum(entry["combining_requests"] for entry in record["sets"])
        assert log.read_text().count("\n") == sent and reading <= sent <= reading + combining  # each asked once
    prompts = json.loads((tmp_path / "first" / "prompts.json").read_text())
    assert sum("Summary of the author's profile: " in p["prompt"] for p in prompts) == 4
    assert outputs(tmp_path / "second") == outputs(tmp_path / "first")
    summary = read_record(tmp_path / "first" / "scores.json").per_user.profile_summary
    assert (summary.model, summary.backend) == ("tiny-chat", "openai")


def test_refusals_are_one_error_line(tiny_llama, sample_dir, sample_cache, tmp_path, capsys):
    from evaluation.evaluate_per_user import main as evaluate

    flags = [*common(tiny_llama, sample_dir, sample_cache), "--output_dir", str(tmp_path / "p")]
    assert run_command(evaluate, [*flags, "--use_summary", "--summary_of", "retrieved"], "evaluate_per_user.py") == 2
    assert "--summary_of retrieved summarises the retrieved items: add --use_profile" in capsys.readouterr().err
    assert run_command(evaluate, [*flags, "--style_vectors_dir", str(tmp_path)], "evaluate_per_user.py") == 2
    assert "no style_selection.json" in capsys.readouterr().err
    (tmp_path / "empty" / "users").mkdir(parents=True)
    assert run_command(evaluate, [*flags, "--adapters_dir", str(tmp_path / "empty")], "evaluate_per_user.py") == 2
    assert "holds no finished user adapter" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_vllm_refusals_are_one_error_line_before_any_work(tiny_llama, sample_dir, sample_cache, tmp_path, capsys):
    """What the vLLM backend cannot do is refused by name: style vectors (they steer the activations), per-user
    adapters on a model that is an adapter already (one LoRA per request), engine flags without vLLM; and without
    vLLM installed, --backend vllm says what is missing."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from evaluation.evaluate_per_user import main as evaluate
    from generation.vllm_engine import VLLMGenerator

    flags = [*common(tiny_llama, sample_dir, sample_cache), "--output_dir", str(tmp_path / "p")]
    assert run_command(evaluate, [*flags, "--backend", "vllm", "--style_vectors_dir", str(tmp_path)],
                       "evaluate_per_user.py") == 2
    assert ("--backend vllm: style vectors are added to a layer's activations, which only the transformers backend "
            "exposes; use --backend transformers") in capsys.readouterr().err
    assert run_command(evaluate, [*flags, "--backend", "transformers", "--max_num_seqs", "4"]) == 2
    assert "--max_num_seqs is for --backend vllm" in capsys.readouterr().err

    task_adapter = tmp_path / "task-adapter"
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), lora).save_pretrained(task_adapter)
    user = tmp_path / "oppu" / "users" / "one"
    user.mkdir(parents=True)
    (user / "user.json").write_text('{"user_id": "user_0013_cooking"}')
    on_adapter = [*common(task_adapter, sample_dir, sample_cache), "--output_dir", str(tmp_path / "p"),
                  "--adapters_dir", str(tmp_path / "oppu"), "--backend", "vllm"]
    assert run_command(evaluate, on_adapter, "evaluate_per_user.py") == 2
    assert "--model_name: vLLM applies one LoRA adapter per request and the model is an adapter already: give it " \
        "the merged model" in capsys.readouterr().err
    if not VLLMGenerator.available():
        assert run_command(evaluate, [*flags, "--backend", "vllm"], "evaluate_per_user.py") == 2
        assert "the vllm backend needs `pip install vllm`" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_killed_run_resumes_without_regenerating_and_ends_byte_identical(tiny_llama, sample_dir, sample_cache,
                                                                           tmp_path):
    """A real SIGKILL in the middle of steered generation, then the same command again: the finished examples are
    kept, the rest generated, and the files equal an uninterrupted run's."""
    import sys
    from pathlib import Path

    from support.kill import kill_once_written

    from evaluation.evaluate_per_user import main as evaluate
    from training.train_style_vectors import main as train_vectors

    repo = Path(__file__).resolve().parents[1]
    flags = common(tiny_llama, sample_dir, sample_cache)
    style_dir = tmp_path / "style"
    assert train_vectors([*flags, "--output_dir", str(style_dir), "--max_items_per_user", "1", "--layers", "1",
                          "--selection_split", "none"]) == 0
    slow = [*flags, "--max_new_tokens", "60", "--batch_size", "1", "--style_vectors_dir", str(style_dir),
            "--style_layer", "1", "--style_scale", "4"]
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert evaluate([*slow, "--output_dir", str(reference)]) == 0

    command = [sys.executable, "evaluation/evaluate_per_user.py", *slow, "--output_dir", str(resumed)]
    progress = resumed / "progress.jsonl"
    finished = kill_once_written(command, progress, 2, repo)  # the settings line and one example
    examples = len(outputs(reference))
    assert 1 <= finished < examples and not (resumed / "predictions.json").exists()

    assert evaluate([*slow, "--output_dir", str(resumed)]) == 0
    for name in ("predictions.json", "golds.json", "per_sample.jsonl"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    assert progress.read_text(encoding="utf-8").count("\n") == 1 + examples  # nothing generated twice
    assert run_command(evaluate, [*slow, "--style_scale", "5", "--output_dir", str(resumed)]) == 2  # other settings
