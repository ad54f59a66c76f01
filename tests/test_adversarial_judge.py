"""The judge (evaluation/judge.py) and style similarity (evaluation/style_similarity.py) as an adversarial user
meets them: bad files, SIGKILL and rerun, two instances on one output folder, and judge servers that never answer,
fail, answer what is not JSON or answer `"content": null`. Each ends as one `<prog>: error: ...` line with exit 2
and no half-written output, or as a correct result. (style similarity talks to no server; its refusals of another
task's, unknown or missing prediction ids are in tests/test_style.py, and a lone surrogate in predictions is refused
by every command in tests/test_command_bad_input.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import judge
from support.faulty_server import answering, never_answering
from support.kill import same_threads

from longlamp_io import RunLock

REPO = Path(__file__).resolve().parents[1]
JUDGE = str(REPO / "evaluation" / "judge.py")
STYLE = str(REPO / "evaluation" / "style_similarity.py")


@pytest.fixture
def task_files(tmp_path) -> tuple[Path, Path]:
    return judge.judge_task_files(tmp_path)


def one_error_line(err: str, prog: str) -> str:
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# --- the judge: bad files -------------------------------------------------------------------------------------------

def test_bad_input_is_one_error_line_before_any_model_is_loaded(task_files, tmp_path, capsys):
    golds, _ = task_files
    preds = judge.write_task(tmp_path / "other.json", judge.PREDICTIONS[:2])
    code, _ = judge.run(golds, preds, tmp_path / "no-such-model", tmp_path / "out")
    assert code == 2 and "1 of 3 gold ids have no prediction" in capsys.readouterr().err
    code, _ = judge.run(golds, golds, "tiny", tmp_path / "out", "--api_base", "http://localhost:1/v1")
    assert code == 2 and "add --backend openai" in capsys.readouterr().err
    (tmp_path / "not-a-cache").write_text("not SQLite, just text that is long enough to be read as a header")
    code, _ = judge.run(golds, golds, tmp_path / "no-such-model", tmp_path / "out", "--cache_file",
                  str(tmp_path / "not-a-cache"))
    assert code == 2 and "not-a-cache: not a judge cache" in capsys.readouterr().err
    code, _ = judge.run(golds, golds, tmp_path / "no-such-model", tmp_path / "out", "--max_aspects", "4")
    assert code == 2 and "ExPerT keeps every aspect" in capsys.readouterr().err
    code, _ = judge.run(golds, golds, tmp_path / "no-such-model", tmp_path / "out", "--protocol", "graded",
                  "--max_text_tokens", "100")
    assert code == 2 and "--max_text_tokens: used by --protocol expert only" in capsys.readouterr().err


def test_a_gold_file_cut_short_is_refused_naming_it_and_nothing_is_written(task_files, tmp_path, capsys):
    golds, preds = task_files
    golds.write_text(golds.read_text()[:-30])
    code, _ = judge.run(golds, preds, tmp_path / "no-such-model", tmp_path / "out")
    assert code == 2 and str(golds) in one_error_line(capsys.readouterr().err, "judge.py")
    assert not (tmp_path / "out").exists()


# --- the judge: SIGKILL and rerun -----------------------------------------------------------------------------------

@pytest.mark.multiprocess
def test_a_killed_run_resumes_from_the_answers_committed_before_the_kill(tmp_path, capsys):
    golds, preds = judge.many_examples(tmp_path, 10)
    with judge.fake_server(judge.rule_judge, delay=0.01) as (url, _):
        flags = [*judge.served_flags(url), "--max_concurrency", "1"]
        assert judge.run(golds, preds, "fake", tmp_path / "full", *flags, capsys=capsys)[0] == 0
        total = judge.cache_rows(tmp_path / "full" / "judge_cache.sqlite")
        command = [sys.executable, str(REPO / "evaluation" / "judge.py"), "--golds", str(golds), "--preds",
                   str(preds), "--judge_model", "fake", "--output_dir", str(tmp_path / "killed"), *flags]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, **same_threads()})
        try:
            rows = 0
            while process.poll() is None and rows < total // 3:
                time.sleep(0.02)
                if (tmp_path / "killed" / "judge_cache.sqlite").exists():
                    rows = judge.cache_rows(tmp_path / "killed" / "judge_cache.sqlite")
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait()
        assert 0 < rows < total and not (tmp_path / "killed" / "judge_scores.json").exists()
        code, calls = judge.run(golds, preds, "fake", tmp_path / "killed", *flags, capsys=capsys)
    assert code == 0 and calls["cached"] >= rows
    assert judge.cache_rows(tmp_path / "killed" / "judge_cache.sqlite") == total
    assert judge.outputs(tmp_path / "killed")[1] == judge.outputs(tmp_path / "full")[1]


# --- the judge: two instances on one folder -------------------------------------------------------------------------

@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_second_judge_on_a_folder_in_use_is_refused_and_writes_nothing(tmp_path):
    golds, preds = judge.many_examples(tmp_path, 2)
    out = tmp_path / "out"
    with judge.fake_server(judge.rule_judge) as (url, received), RunLock(out, "judge.py"):
        done = subprocess.run([sys.executable, JUDGE, "--golds", str(golds), "--preds", str(preds), "--judge_model",
                               "fake", "--output_dir", str(out), *judge.served_flags(url)], capture_output=True,
                              text=True, cwd=REPO, timeout=240)
        assert done.returncode == 2 and f"{out} is in use by judge.py" in one_error_line(done.stderr, "judge.py")
        assert not received and sorted(p.name for p in out.iterdir()) == [".lock"]


# --- the judge: faulty servers --------------------------------------------------------------------------------------

def failing_flags(url: str) -> list[str]:
    return [*judge.served_flags(url), "--max_retries", "1", "--request_timeout", "1"]


def test_a_judge_server_that_never_answers_ends_the_run_with_one_error_line(task_files, tmp_path, capsys):
    golds, preds = task_files
    with never_answering() as endpoint:
        code, _ = judge.run(golds, preds, "fake", tmp_path / "out", *failing_flags(f"{endpoint}/v1"))
    line = one_error_line(capsys.readouterr().err, "judge.py")
    assert code == 2 and "failed 2 times" in line and "no answer within --request_timeout 1 s" in line, line
    assert not (tmp_path / "out" / "judge_scores.json").exists()
    assert judge.cache_rows(tmp_path / "out" / "judge_cache.sqlite") == 0


@pytest.mark.parametrize("status, body, content_type, message", [
    (500, b"internal error", "text/plain", "failed 2 times (--max_retries 1); the last: HTTP 500: internal error"),
    (200, b"<html>maintenance</html>", "text/html", "answered something that is not a /chat/completions response"),
    (200, b'{"choices": []}', "application/json", "answered something that is not a /chat/completions response"),
], ids=["500", "html", "no-choices"])
def test_a_judge_server_answering_garbage_ends_the_run_with_one_error_line(task_files, tmp_path, capsys, status, body,
                                                                           content_type, message):
    golds, preds = task_files
    with answering(status, body, content_type) as endpoint:
        code, _ = judge.run(golds, preds, "fake", tmp_path / "out", *failing_flags(f"{endpoint}/v1"))
    line = one_error_line(capsys.readouterr().err, "judge.py")
    assert code == 2 and message in line, line
    assert not (tmp_path / "out" / "judge_scores.json").exists()
    assert judge.cache_rows(tmp_path / "out" / "judge_cache.sqlite") == 0


def test_null_answers_are_left_out_never_cached_and_asked_again_of_a_working_server(tmp_path, capsys):
    """Issue 27: `"content": null` was cached as an answer for good, and a rerun against a working server gave
    the same zeros."""
    golds, preds = judge.many_examples(tmp_path, 3)
    with judge.fake_server(lambda text, temperature: None) as (url, _):
        code, calls = judge.run(golds, preds, "fake", tmp_path / "out", *judge.served_flags(url), capsys=capsys)
    scores = judge.scores_of(tmp_path / "out")["scores"]
    assert code == 0 and scores["unreadable_references"]["count"] == 3 and scores["scored_examples"] == 0
    assert judge.cache_rows(tmp_path / "out" / "judge_cache.sqlite") == 0
    with judge.fake_server(judge.rule_judge) as (url, _):
        code, calls = judge.run(golds, preds, "fake", tmp_path / "out", *judge.served_flags(url), capsys=capsys)
        assert code == 0 and calls["cached"] == 0 and calls["sent"] > 0
        assert judge.run(golds, preds, "fake", tmp_path / "clean", *judge.served_flags(url), capsys=capsys)[0] == 0
    assert judge.outputs(tmp_path / "out")[1] == judge.outputs(tmp_path / "clean")[1]
    assert judge.scores_of(tmp_path / "out")["scores"]["scored_examples"] == 3


# --- style similarity -----------------------------------------------------------------------------------------------

@pytest.fixture
def style_inputs(tmp_path, sample_dir, sample_cache, tiny_encoder) -> tuple[Path, list[str]]:
    """The sample's references as predictions, and the command line that scores them (output and embedding cache
    appended by the caller)."""
    import longlamp

    rows = longlamp.load_split("product_review_user", "validation", data_dir=str(sample_dir), cache_dir=sample_cache)
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"task": "LongLaMP_product_review_user",
                                 "golds": [{"id": r["id"], "output": r["output"]} for r in rows]}))
    return preds, ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir",
                   sample_cache, "--preds", str(preds), "--encoder", str(tiny_encoder)]


def style(argv: list[str], output: Path, embeddings: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, STYLE, *argv, "--output_file", str(output), "--embedding_cache_dir",
                             str(embeddings)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**(env or os.environ), **same_threads()})


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def without_paths(path: Path) -> dict:
    result = json.loads(path.read_text(encoding="utf-8"))
    result["encoder"].pop("cache_dir", None)
    return result


@pytest.mark.multiprocess
@pytest.mark.slow
def test_style_similarity_refuses_a_predictions_file_cut_short_naming_it(style_inputs, tmp_path):
    preds, argv = style_inputs
    preds.write_text(preds.read_text()[:-40])
    done = finished(style(argv, tmp_path / "out" / "style.json", tmp_path / "embeddings"))
    assert done.returncode == 2 and str(preds) in one_error_line(done.stderr, "style_similarity.py")
    assert not (tmp_path / "out").exists()


@pytest.mark.multiprocess
@pytest.mark.slow
def test_style_similarity_killed_while_embedding_then_rerun_equals_a_clean_run(style_inputs, tmp_path):
    """SIGKILL as soon as its embedding cache is being written: no output file, and the rerun (on that cache)
    writes what a judge.run on a fresh cache writes."""
    _, argv = style_inputs
    output, embeddings = tmp_path / "killed.json", tmp_path / "embeddings"
    process = style(argv, output, embeddings)
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not (
            embeddings.exists() and any(p.is_file() for p in embeddings.rglob("*"))):
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "style similarity ended before it could be killed"
    assert not output.exists()
    assert finished(style(argv, output, embeddings)).returncode == 0
    assert finished(style(argv, tmp_path / "clean.json", tmp_path / "fresh")).returncode == 0
    assert without_paths(output) == without_paths(tmp_path / "clean.json")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_style_similarity_runs_on_one_output_and_cache_leave_one_whole_result(style_inputs, tmp_path):
    """No lock: each judge.run writes its one file whole (a rename) and the embedding cache takes both; the file is
    the result of either, equal to a judge.run alone."""
    _, argv = style_inputs
    output, embeddings = tmp_path / "style.json", tmp_path / "embeddings"
    both = [style(argv, output, embeddings) for _ in range(2)]
    assert [finished(process).returncode for process in both] == [0, 0]
    assert finished(style(argv, tmp_path / "alone.json", tmp_path / "fresh")).returncode == 0
    assert without_paths(output) == without_paths(tmp_path / "alone.json")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_style_similarity_with_an_encoder_on_a_hub_that_never_answers_ends_with_one_error_line(style_inputs, tmp_path):
    """transformers' from_pretrained asks the Hub first with no timeout at all: every command's Hub requests now give
    up after LONGLAMP_HUB_TIMEOUT (longlamp_cli.run_command); the encoder that cannot be loaded is one error line.
    (A generous subprocess limit: a hang fails the test, the time itself is not asserted.)"""
    _, argv = style_inputs
    argv = [*argv[:-1], "me/encoder"]  # a Hub id instead of the tiny encoder's folder
    with never_answering() as endpoint:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_XET": "1",
               "LONGLAMP_HUB_TIMEOUT": "1"}
        done = finished(style(argv, tmp_path / "style.json", tmp_path / "embeddings", env=env))
    line = one_error_line(done.stderr, "style_similarity.py")
    assert done.returncode == 2 and "cannot load the encoder 'me/encoder'" in line, line
    assert not (tmp_path / "style.json").exists()
