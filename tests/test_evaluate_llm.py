"""Zero-shot evaluation end to end: the bundled sample, a tiny model built here, the project's scorer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from evaluation import eval_task, evaluate_llm
from evaluation.metrics import score
from evaluation.zero_shot import ZeroShotOptions, evaluate
from longlamp_tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
REVIEW = TASKS["product_review"]
GENERATION = ["--max_new_tokens", "12", "--batch_size", "2"]


def cli(model: Path, output_dir: Path, sample_dir, cache, *extra: str) -> list[str]:
    return ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir", cache,
            "--model_addr", str(model), "--output_dir", str(output_dir), *GENERATION, *extra]


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def sample_rows(sample_dir, cache, split="validation"):
    import longlamp

    return list(longlamp.load("product_review_user", split=split, data_dir=str(sample_dir), cache_dir=cache))


def test_without_profile_writes_benchmark_files_that_eval_task_scores(tiny_llama, tmp_path, sample_dir, sample_cache):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache)) == 0
    rows = sample_rows(sample_dir, sample_cache)
    predictions = read(tmp_path / "predictions.json")
    assert predictions["task"] == "LongLaMP_product_review_user"
    assert [p["id"] for p in predictions["golds"]] == [row["id"] for row in rows]
    assert all(isinstance(p["output"], str) and p["output"] for p in predictions["golds"])
    prompts = read(tmp_path / "prompts.json")
    assert [p["prompt"] for p in prompts] == [row["input"] for row in rows]  # the non-personalised baseline
    assert {p["profile_items"] for p in prompts} == {0}
    golds = read(tmp_path / "golds.json")["golds"]
    assert [(g["id"], g["output"], g["user"]) for g in golds] == [(r["id"], r["output"], r["reviewerId"]) for r in rows]

    scores = read(tmp_path / "scores.json")
    assert set(scores["scores"]["metrics"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "meteor"}
    outputs = [p["output"] for p in predictions["golds"]]
    assert scores["scores"]["metrics"] == score(outputs, [row["output"] for row in rows])["metrics"]
    settings = scores["settings"]
    assert settings["model"] == str(tiny_llama) and settings["use_profile"] is False
    assert (settings["max_new_tokens"], settings["do_sample"], settings["dtype"]) == (12, False, "float32")
    assert settings["max_prompt_tokens"] == 2048 - 12  # the tokenizer's limit, less the generated tokens

    # The benchmark's scorer takes the files as they are, and agrees.
    assert eval_task.main(["--golds_json", str(tmp_path / "golds.json"),
                           "--preds_json", str(tmp_path / "predictions.json"),
                           "--task_name", "LongLaMP_product_review_user",
                           "--output_file", str(tmp_path / "eval.json"), "--num_workers", "1"]) == 0
    assert read(tmp_path / "eval.json")["metrics"] == scores["scores"]["metrics"]


def test_with_profile_and_comparison(tiny_llama, tmp_path, sample_dir, sample_cache):
    args = cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--use_profile", "--retriever", "bm25",
               "--num_retrieved", "2", "--compare_no_profile")
    assert evaluate_llm.main(args) == 0
    rows = sample_rows(sample_dir, sample_cache)
    prompts = read(tmp_path / "prompts.json")
    assert [p["profile_items"] for p in prompts] == [min(2, len(row["profile"])) for row in rows]
    for prompt, row in zip(prompts, rows):
        assert prompt["prompt"].endswith(row["input"])
        if row["profile"]:
            assert " is a rating for the product with description " in prompt["prompt"]
    assert [p["prompt"] for p in read(tmp_path / "no_profile" / "prompts.json")] == [r["input"] for r in rows]

    with_profile, without = read(tmp_path / "scores.json"), read(tmp_path / "no_profile" / "scores.json")
    assert with_profile["settings"]["retriever"] == "bm25" and with_profile["settings"]["num_retrieved"] == 2
    assert without["settings"]["use_profile"] is False and "retriever" not in without["settings"]
    comparison = read(tmp_path / "comparison.json")
    assert comparison["with_profile"] == with_profile["scores"]["metrics"]
    assert comparison["no_profile"] == without["scores"]["metrics"]
    assert comparison["gain"]["rougeL"] == pytest.approx(comparison["with_profile"]["rougeL"]
                                                         - comparison["no_profile"]["rougeL"])


def test_prompts_are_the_ones_training_builds(tiny_llama, sample_dir, sample_cache, tmp_path):
    """One definition: the same rows give the same prompt text in training and in zero-shot evaluation."""
    from retrieval import get_retriever
    from training.data import ExampleEncoder
    from transformers import AutoTokenizer

    evaluate(ZeroShotOptions(validation_data="product_review_user", data_dir=str(sample_dir), cache_dir=sample_cache,
                             model_addr=str(tiny_llama), output_dir=str(tmp_path), use_profile=True, num_retrieved=3,
                             max_prompt_tokens=300, max_new_tokens=4))
    encoder = ExampleEncoder(REVIEW, AutoTokenizer.from_pretrained(tiny_llama), is_encoder_decoder=False,
                             max_prompt_length=300, max_target_length=1000, num_retrieved=3,
                             retriever=get_retriever("bm25"))
    expected = [encoder.prompt(row) for row in sample_rows(sample_dir, sample_cache)]
    assert [p["prompt"] for p in read(tmp_path / "prompts.json")] == expected


def test_chat_model_gets_its_template(tiny_chat_llama, tmp_path, sample_dir, sample_cache):
    assert evaluate_llm.main(cli(tiny_chat_llama, tmp_path, sample_dir, sample_cache, "--limit", "2")) == 0
    prompts = read(tmp_path / "prompts.json")
    assert len(prompts) == 2 and len(read(tmp_path / "predictions.json")["golds"]) == 2
    assert all(p["prompt"].startswith("<|user|>\n") and p["prompt"].endswith("<|assistant|>\n") for p in prompts)
    assert read(tmp_path / "scores.json")["settings"]["chat_template"] is True


def test_resume_after_a_kill_gives_the_same_file(tiny_llama, tmp_path, sample_dir, sample_cache):
    """A real SIGKILL in the middle of generation, then the same command again."""
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    slow = ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
            "--model_addr", str(tiny_llama), "--max_new_tokens", "60", "--batch_size", "1"]
    assert evaluate_llm.main([*slow, "--output_dir", str(reference)]) == 0

    command = [sys.executable, "evaluation/evaluate_llm.py", *slow, "--output_dir", str(resumed)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = resumed / "progress.jsonl"
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        if progress.exists() and progress.read_text(encoding="utf-8").count("\n") >= 2:  # settings + 1 example
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    finished = progress.read_text(encoding="utf-8").count("\n") - 1
    assert 1 <= finished < 5 and not (resumed / "predictions.json").exists()

    assert evaluate_llm.main([*slow, "--output_dir", str(resumed)]) == 0
    assert (resumed / "predictions.json").read_bytes() == (reference / "predictions.json").read_bytes()
    assert progress.read_text(encoding="utf-8").count("\n") == 1 + 5  # nothing generated twice


def test_resume_after_a_crash_with_sampling(tiny_llama, tmp_path, sample_dir, sample_cache, monkeypatch):
    """Sampled outputs too: the batch plan and seeds do not depend on where the run stopped."""
    from evaluation.generation import TransformersGenerator

    args = cli(tiny_llama, tmp_path / "reference", sample_dir, sample_cache, "--do_sample", "--temperature", "1.3",
               "--seed", "5")
    assert evaluate_llm.main(args) == 0
    generate, calls = TransformersGenerator.generate, []

    def crash_on_third_batch(self, prompts, seeds):
        calls.append(len(prompts))
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return generate(self, prompts, seeds)

    monkeypatch.setattr(TransformersGenerator, "generate", crash_on_third_batch)
    crashed = [a if a != str(tmp_path / "reference") else str(tmp_path / "crashed") for a in args]
    with pytest.raises(RuntimeError, match="simulated"):
        evaluate_llm.main(crashed)
    assert len(read_progress(tmp_path / "crashed")) == 4  # the two finished batches are kept
    monkeypatch.setattr(TransformersGenerator, "generate", generate)
    assert evaluate_llm.main(crashed) == 0
    assert read(tmp_path / "crashed" / "predictions.json") == read(tmp_path / "reference" / "predictions.json")


def read_progress(directory: Path) -> list[dict]:
    lines = (directory / "progress.jsonl").read_text(encoding="utf-8").split("\n")[1:-1]
    return [json.loads(line) for line in lines]


def test_resume_with_other_settings_is_refused(tiny_llama, tmp_path, sample_dir, sample_cache, capsys):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--limit", "2")) == 0
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--num_beams", "2")) == 2
    assert "num_beams: 1 on disk, 2 now" in capsys.readouterr().err


def test_limit_then_full_run_reuses_what_is_done(tiny_llama, tmp_path, sample_dir, sample_cache):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--limit", "2")) == 0
    assert len(read(tmp_path / "predictions.json")["golds"]) == 2
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache)) == 0
    assert len(read(tmp_path / "predictions.json")["golds"]) == 5 and len(read_progress(tmp_path)) == 5


def test_split_without_outputs_is_generated_not_scored(tiny_llama, tmp_path, sample_dir, sample_cache, capsys):
    rows = sample_rows(sample_dir, sample_cache, split="test")
    data = tmp_path / "test_rows.jsonl"
    data.write_text("".join(json.dumps({**row, "output": None}) + "\n" for row in rows), encoding="utf-8")
    args = ["--validation_data", str(data), "--task", "product_review_user", "--model_addr", str(tiny_llama),
            "--output_dir", str(tmp_path / "out"), *GENERATION]
    assert evaluate_llm.main(args) == 0
    assert [p["id"] for p in read(tmp_path / "out" / "predictions.json")["golds"]] == [r["id"] for r in rows]
    scores = read(tmp_path / "out" / "scores.json")
    assert scores["scores"] is None and "5 of 5 examples" in scores["not_scored"]
    assert not (tmp_path / "out" / "golds.json").exists()
    assert "scoring was skipped" in capsys.readouterr().out


def test_prompt_that_cannot_fit_fails_before_generation(tiny_llama, tmp_path, sample_dir, sample_cache, capsys):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--max_prompt_tokens", "20")) == 2
    error = capsys.readouterr().err
    assert "example 'product_review_user-validation-0' (row 0)" in error and "task input alone takes" in error
    assert not (tmp_path / "progress.jsonl").exists() and not (tmp_path / "predictions.json").exists()


@pytest.mark.parametrize("replace, extra, message", [
    ({"--validation_data": "poetry_user"}, [], "unknown LongLaMP config 'poetry_user'"),
    ({}, ["--task", "topic_writing_user"], "--task 'topic_writing_user' contradicts --validation_data"),
    ({"--model_addr": "/nonexistent/model"}, [], "cannot load --model_addr"),
    ({}, ["--compare_no_profile"], "add --use_profile"),
    ({}, ["--use_profile", "--retriever", "bm99"], "unknown retriever 'bm99'"),
])
def test_bad_input_is_a_clear_error(tiny_llama, tmp_path, sample_dir, sample_cache, capsys, replace, extra, message):
    args = cli(tiny_llama, tmp_path, sample_dir, sample_cache, *extra)
    for flag, value in replace.items():
        args[args.index(flag) + 1] = value
    assert evaluate_llm.main(args) == 2
    assert message in capsys.readouterr().err


def test_model_that_produces_no_text_is_recorded_and_scored(tiny_llama, tmp_path, sample_dir, sample_cache, caplog):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    silent = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        silent.lm_head.weight.zero_()  # every logit equal: greedy picks token 0, <pad>, decoded as nothing
    silent.save_pretrained(tmp_path / "silent")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(tmp_path / "silent")
    assert evaluate_llm.main(cli(tmp_path / "silent", tmp_path / "out", sample_dir, sample_cache)) == 0
    assert {p["output"] for p in read(tmp_path / "out" / "predictions.json")["golds"]} == {""}
    scores = read(tmp_path / "out" / "scores.json")
    assert scores["empty_predictions"] == 5 and scores["scores"]["metrics"]["rouge1"] == 0
    assert "5 of 5 predictions are empty" in caplog.text
