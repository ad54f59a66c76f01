"""The openai backend against a real local OpenAI-compatible server (tests/support/openai_server.py) serving a tiny
model built here: the same predictions as the transformers backend, through faults, hangs, kills and resumes,
with the key in no file or log; and the transformers backend's examples split over two processes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from support.kill import kill_once_written
from support.openai_server import served

from evaluation import evaluate_llm
from generation.http_api import backoff_seconds, public_url, retry_after_seconds
from generation.served_model import APPROXIMATION, ApproximateTokenizer
from generation.vllm_engine import replica_devices
from longlamp_cli import run_command
from longlamp_runs import read_record

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test-0123456789abcdef-never-written"
KEY_ENV = "LONGLAMP_TEST_API_KEY"


def flags(sample_dir, cache, output_dir: Path, *extra: str) -> list[str]:
    return ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir", cache,
            "--output_dir", str(output_dir), "--max_new_tokens", "12", "--use_profile", "--num_retrieved", "2",
            *extra]


def local(model: Path, *extra: str) -> list[str]:
    return ["--model_name", str(model), "--backend", "transformers", *extra]


def api(url: str, model: Path, mode: str, *extra: str) -> list[str]:
    return ["--backend", "openai", "--api_base", url, "--model_name", "tiny", "--api_mode", mode,
            "--tokenizer", str(model), "--api_key_env", KEY_ENV, "--retry_backoff", "0.01", *extra]


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def assert_key_in_no_file(folder: Path, *texts: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(encoding="utf-8", errors="replace"), f"the key is in {path}"
    for text in texts:
        assert KEY not in text


@pytest.fixture(scope="module", autouse=True)
def server_threads():
    """The local side computes with the test server's one thread (tests/support/openai_server.py), and so do the two
    processes `accelerate launch` starts: a float sum split over another number of threads differs in its last
    bits, which a greedy choice between two nearly equal tokens would show."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_completions_endpoint_equals_the_transformers_backend(tiny_llama, sample_dir, sample_cache, tmp_path,
                                                              api_key, capfd):
    common = flags(sample_dir, sample_cache, tmp_path / "local")
    assert evaluate_llm.main(common + local(tiny_llama)) == 0
    with served(tiny_llama, key=KEY) as url:
        assert evaluate_llm.main(flags(sample_dir, sample_cache, tmp_path / "api") + api(url, tiny_llama,
                                                                                       "completions")) == 0
    assert read(tmp_path / "api" / "predictions.json") == read(tmp_path / "local" / "predictions.json")
    assert read(tmp_path / "api" / "prompts.json") == read(tmp_path / "local" / "prompts.json")
    scores, reference = read(tmp_path / "api" / "scores.json"), read(tmp_path / "local" / "scores.json")
    assert scores["scores"]["metrics"] == reference["scores"]["metrics"]
    prompt_tokens = sum(p["prompt_tokens"] for p in read(tmp_path / "api" / "prompts.json"))
    assert scores["usage"] == {"prompt_tokens": prompt_tokens, "requests": 5,
                               "completion_tokens": sum(r["tokens"] for r in records(tmp_path / "api"))}
    assert scores["finish_reasons"] == reference["finish_reasons"] and sum(scores["finish_reasons"].values()) == 5
    assert scores["finish_reasons"].get("length", 0) == scores["generation_lengths"]["hit_max_new_tokens"]
    model = read_record(tmp_path / "api" / "scores.json").model
    assert (model.backend, model.api_mode, model.prompt_tokenizer) == ("openai", "completions", str(tiny_llama))
    assert scores["endpoint"] == url and "max_concurrency" not in json.dumps(scores["settings"])
    assert_key_in_no_file(tmp_path, *capfd.readouterr())


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()[1:]]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_chat_endpoint_equals_the_transformers_backend_greedy_and_sampled(tiny_chat_llama, sample_dir, sample_cache,
                                                                          tmp_path, api_key):
    """The server applies the chat template to the user message, as PromptBuilder does; a sampled request draws
    with its own seed, as a batch of one does locally."""
    sampled = ["--do_sample", "--temperature", "0.8", "--seed", "3"]
    for name, extra in (("greedy", []), ("sampled", sampled)):
        assert evaluate_llm.main(flags(sample_dir, sample_cache, tmp_path / f"local-{name}") + local(
            tiny_chat_llama, "--batch_size", "1", *extra)) == 0
    with served(tiny_chat_llama, key=KEY) as url:
        for name, extra in (("greedy", []), ("sampled", sampled)):
            assert evaluate_llm.main(flags(sample_dir, sample_cache, tmp_path / f"api-{name}") + api(
                url, tiny_chat_llama, "chat", *extra)) == 0
    for name in ("greedy", "sampled"):
        assert read(tmp_path / f"api-{name}" / "predictions.json") == read(tmp_path / f"local-{name}" /
                                                                           "predictions.json")
    assert (read(tmp_path / "api-sampled" / "predictions.json") != read(tmp_path / "api-greedy" / "predictions.json"))
    local_prompts = read(tmp_path / "local-greedy" / "prompts.json")
    messages = read(tmp_path / "api-greedy" / "prompts.json")
    assert [m["prompt_tokens"] for m in messages] == [p["prompt_tokens"] for p in local_prompts]
    for message, prompt in zip(messages, local_prompts):  # the user message is sent, the server wraps it
        assert prompt["prompt"] == f"<|user|>\n{message['prompt']}</s>\n<|assistant|>\n"


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_failing_server_still_yields_the_identical_file(tiny_llama, sample_dir, sample_cache, tmp_path, api_key):
    """429s (with Retry-After), 500s and dropped connections at random, half of all requests."""
    assert evaluate_llm.main(flags(sample_dir, sample_cache, tmp_path / "local") + local(tiny_llama)) == 0
    log = tmp_path / "served.log"
    with served(tiny_llama, "--fail_rate", "0.5", "--seed", "1", "--log", str(log), key=KEY) as url:
        assert evaluate_llm.main(flags(sample_dir, sample_cache, tmp_path / "api") + api(
            url, tiny_llama, "completions", "--max_retries", "30", "--max_concurrency", "4")) == 0
    assert read(tmp_path / "api" / "predictions.json") == read(tmp_path / "local" / "predictions.json")
    assert len(log.read_text().splitlines()) == 5  # each example answered once: nothing recorded twice
    assert_key_in_no_file(tmp_path)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_server_that_never_answers_gives_a_clear_error(tiny_llama, sample_dir, sample_cache, tmp_path, api_key,
                                                         capsys):
    with served(tiny_llama, "--hang", key=KEY) as url:
        argv = flags(sample_dir, sample_cache, tmp_path / "api") + api(
            url, tiny_llama, "completions", "--request_timeout", "1", "--max_retries", "1", "--max_concurrency", "2")
        assert run_command(evaluate_llm.main, argv, prog="evaluate_llm.py") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("evaluate_llm.py: error: ") and "/completions failed 2 times (--max_retries 1)" in error
    assert "no answer within --request_timeout 1 s" in error
    assert not (tmp_path / "api" / "predictions.json").exists()
    assert len(records(tmp_path / "api")) == 0


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_refused_key_fails_at_once_without_showing_it(tiny_llama, sample_dir, sample_cache, tmp_path, api_key,
                                                        capsys):
    with served(tiny_llama, key="another-key") as url:
        argv = flags(sample_dir, sample_cache, tmp_path / "api") + api(url, tiny_llama, "completions")
        assert run_command(evaluate_llm.main, argv, prog="evaluate_llm.py") == 2
    captured = capsys.readouterr()
    assert "refused the request (HTTP 401" in captured.err
    assert_key_in_no_file(tmp_path, captured.out, captured.err)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_killed_run_resumes_without_resending_what_was_done(tiny_llama, sample_dir, sample_cache, tmp_path):
    """A real SIGKILL of a run, then the same command against a restarted server (on another port: the URL is not
    part of the run's settings): exactly the unfinished examples are sent, and the file is the uninterrupted one."""
    slow = ["--max_new_tokens", "60", "--max_concurrency", "1"]
    environment = {**os.environ, KEY_ENV: KEY, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "evaluation/evaluate_llm.py"]
    run = tmp_path / "resumed"
    with served(tiny_llama, key=KEY) as url:
        reference = flags(sample_dir, sample_cache, tmp_path / "reference") + api(url, tiny_llama, "completions")
        subprocess.run(command + reference + slow, cwd=REPO, env=environment, check=True, capture_output=True)
        stderr = tmp_path / "killed.err"
        with open(stderr, "w") as handle:
            kill_once_written(command + flags(sample_dir, sample_cache, run) + api(url, tiny_llama, "completions")
                              + slow, run / "progress.jsonl", 3, REPO, env=environment, stdout=handle,
                              stderr=handle)  # the settings line and 2 examples
    done = {r["id"] for r in records(run)}
    assert 2 <= len(done) < 5 and not (run / "predictions.json").exists()
    log = tmp_path / "served.log"
    with served(tiny_llama, "--log", str(log), key=KEY) as url:
        finished = subprocess.run(command + flags(sample_dir, sample_cache, run) + api(url, tiny_llama, "completions")
                                  + slow, cwd=REPO, env=environment, capture_output=True, text=True)
        assert finished.returncode == 0, finished.stderr[-3000:]
    unfinished = [p["prompt"] for p in read(run / "prompts.json") if p["id"] not in done]
    assert sorted(log.read_text().split()) == sorted(hashlib.sha256(p.encode()).hexdigest() for p in unfinished)
    assert read(run / "predictions.json") == read(tmp_path / "reference" / "predictions.json")
    assert_key_in_no_file(tmp_path, finished.stdout, finished.stderr)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_without_a_tokenizer_the_budget_is_approximated_and_recorded(tiny_chat_llama, sample_dir, sample_cache,
                                                                     tmp_path, api_key):
    with served(tiny_chat_llama, key=KEY) as url:
        argv = [a for a in api(url, tiny_chat_llama, "chat") if a not in ("--tokenizer", str(tiny_chat_llama))]
        assert evaluate_llm.main(flags(sample_dir, sample_cache, tmp_path, "--max_prompt_length", "100") + argv) == 0
    model = read_record(tmp_path / "scores.json").model
    assert model.prompt_tokenizer == APPROXIMATION and model.fingerprint["tokenizer"] is None
    counter = ApproximateTokenizer()
    for prompt in read(tmp_path / "prompts.json"):
        assert prompt["prompt_tokens"] == len(counter(prompt["prompt"])["input_ids"]) <= 100
    assert len(read(tmp_path / "predictions.json")["golds"]) == 5


def test_approximate_tokenizer_counts_pieces_that_join_back_exactly():
    counter = ApproximateTokenizer()
    text = "Generate the review  text\nwritten by a reviewer.  "
    ids = counter(text)["input_ids"]
    assert counter.decode(ids) == text and counter.decode(ids[:3]) == "Generate the"
    assert [counter.decode([i]) for i in ids] == ["Gene", "rate", " the", " revi", "ew", "  text", "\nwrit", "ten",
                                                  " by", " a", " revi", "ewer", ".", "  "]


def test_retry_waits():
    rng = random.Random(0)
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("garbage") is None and retry_after_seconds("99999") == 600.0
    assert retry_after_seconds("Wed, 01 Jan 2025 00:00:10 GMT", now=1735689600.0) == 10.0
    waits = [backoff_seconds(attempt, 1.0, None, rng) for attempt in range(8)]
    for attempt, wait in enumerate(waits):
        delay = min(2 ** attempt, 60)
        assert delay / 2 <= wait <= delay
    assert backoff_seconds(5, 1.0, 2.5, rng) == 2.5  # the server's Retry-After wins
    assert public_url("https://user:secret@host:8443/v1?key=x") == "https://host:8443/v1"


@pytest.mark.parametrize("extra, message", [
    (["--backend", "transformers", "--api_base", "http://x/v1"], "--api_base is for a served model"),
    (["--backend", "openai"], "--backend openai needs --api_base"),
    (["--backend", "openai", "--api_base", "http://x/v1", "--no-use_chat_template"], "--api_mode chat: the server"),
    (["--backend", "openai", "--api_base", "http://x/v1", "--num_beams", "2"], "has no beam search"),
    (["--backend", "openai", "--api_base", "http://x/v1", "--device_map", "cpu"], "does not take device_map"),
    (["--backend", "openai", "--api_base", "ftp://x"], "must be an http:// or https:// URL"),
    (["--backend", "openai", "--api_base", "http://x/v1", "--api_key_env", "LONGLAMP_UNSET_VARIABLE"],
     "the environment variable LONGLAMP_UNSET_VARIABLE is not set"),
    (["--backend", "openai", "--api_base", "http://x/v1", "--max_concurrency", "0"], "--max_concurrency: must be"),
])
def test_served_flags_are_checked_before_any_work(extra, message, sample_dir, sample_cache, tmp_path, capsys,
                                                  tiny_llama, api_key):
    argv = flags(sample_dir, sample_cache, tmp_path / "run") + ["--model_name", str(tiny_llama), *extra]
    assert run_command(evaluate_llm.main, argv, prog="evaluate_llm.py") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_vllm_replicas_get_their_own_gpus():
    gpus = [str(i) for i in range(8)]
    assert [replica_devices(rank, 8, 1, gpus) for rank in range(8)] == [[g] for g in gpus]
    assert [replica_devices(rank, 4, 2, gpus) for rank in range(4)] == [["0", "1"], ["2", "3"], ["4", "5"],
                                                                       ["6", "7"]]
    assert replica_devices(1, 2, 1, ["4", "6"]) == ["6"]
    with pytest.raises(ValueError, match="need 16 GPUs, 8 are visible"):
        replica_devices(0, 4, 4, gpus)


TWO_CPU_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                     "--dynamo_backend", "no"]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_split_the_examples_and_merge_to_the_one_process_file(tiny_llama, sample_dir, sample_cache,
                                                                            tmp_path):
    """`accelerate launch` with 2 gloo CPU processes: each takes every other batch of the length-sorted plan."""
    common = flags(sample_dir, sample_cache, tmp_path / "one") + local(tiny_llama, "--batch_size", "2")
    assert evaluate_llm.main(common) == 0
    two = [a if a != str(tmp_path / "one") else str(tmp_path / "two") for a in common]
    command = [sys.executable, "-m", "accelerate.commands.launch", *TWO_CPU_PROCESSES, "evaluation/evaluate_llm.py",
               *two]
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "process 1 of 2" in done.stderr and "process 0 of 2" in done.stderr
    assert done.stdout.count("predictions.json (5 examples)") == 1  # only the main process reports and writes
    for name in ("predictions.json", "prompts.json", "golds.json"):
        assert read(tmp_path / "two" / name) == read(tmp_path / "one" / name)
    assert read(tmp_path / "two" / "scores.json")["scores"] == read(tmp_path / "one" / "scores.json")["scores"]
    assert sorted(p.name for p in (tmp_path / "two").glob("progress*")) == ["progress.jsonl"]
    assert sorted(r["key"] for r in records(tmp_path / "two")) == sorted(r["key"] for r in records(tmp_path / "one"))


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_share_done_by_another_process_is_merged_by_a_one_process_resume(tiny_llama, sample_dir, sample_cache,
                                                                           tmp_path, monkeypatch):
    """Process 1 of 2 alone (as after a kill of the launch), then one process in the same folder: it generates
    only the rest, merges process 1's file and ends with the one-process file."""
    one = flags(sample_dir, sample_cache, tmp_path / "one") + local(tiny_llama, "--batch_size", "2")
    assert evaluate_llm.main(one) == 0
    split = [a if a != str(tmp_path / "one") else str(tmp_path / "split") for a in one]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert evaluate_llm.main(split) == 0
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == ["progress.rank1.jsonl"]  # no lock, no results
    share = [json.loads(line) for line in (tmp_path / "split" / "progress.rank1.jsonl").read_text().splitlines()[1:]]
    assert len(share) == 2  # 5 examples in batches of 2, 2 and 1: process 1 takes the second
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert evaluate_llm.main(split) == 0
    assert read(tmp_path / "split" / "predictions.json") == read(tmp_path / "one" / "predictions.json")
    assert sorted(p.name for p in (tmp_path / "split").glob("progress*")) == ["progress.jsonl"]
    merged = records(tmp_path / "split")
    by_key = sorted(merged[-2:], key=lambda r: r["key"])
    assert len(merged) == 5 and by_key == sorted(share, key=lambda r: r["key"])  # copied at the end, not redone
