"""The per-user commands (training/train_per_user.py, training/train_style_vectors.py, evaluation/evaluate_per_user.py)
as an adversarial user meets them: two instances on one output folder, and a summary server (--use_summary with
--summary_backend openai, on both sides of +PAG) that never answers, fails, answers what is not a chat completion or
answers `"content": null`. Each ends as one `<prog>: error: ...` line with exit 2 and nothing half-written, or as a
correct result.

Their other kinds live beside the fixtures they need: SIGKILL and rerun in tests/test_per_user_commands.py
(evaluate_per_user.py mid-generation, byte-identical files) and tests/test_per_user.py (train_per_user.py at a user
boundary, two processes); bad files and flags in tests/test_per_user_commands.py (refusals), tests/test_per_user_pag.py
(summary flags), tests/test_per_user_adapters_fit.py (adapters for other users or another model),
tests/test_per_user_oppu.py (non-finite learning rates and losses, an output that is a file) and
tests/test_command_bad_input.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import judge
from support.faulty_server import answering, never_answering

from longlamp_cli import run_command
from longlamp_io import RunLock

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"train_per_user.py": "training/train_per_user.py",
            "train_style_vectors.py": "training/train_style_vectors.py",
            "evaluate_per_user.py": "evaluation/evaluate_per_user.py"}


def sample_flags(tiny_llama, sample_dir, sample_cache, output: Path) -> list[str]:
    return ["--model_name", str(tiny_llama), "--data", "product_review_user", "--split", "validation", "--data_dir",
            str(sample_dir), "--cache_dir", sample_cache, "--max_prompt_length", "256", "--output_dir", str(output)]


COMMAND_FLAGS = {  # each command's own, small
    "train_per_user.py": ["--max_users", "2", "--max_items_per_user", "2", "--num_train_epochs", "1"],
    "train_style_vectors.py": ["--max_items_per_user", "1", "--layers", "1", "--selection_split", "none",
                               "--max_new_tokens", "4"],
    "evaluate_per_user.py": ["--max_new_tokens", "4", "--max_eval_examples", "3"],
}


def one_error_line(err: str, prog: str) -> str:
    errors = [line for line in err.strip().splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# --- two instances on one output folder ----------------------------------------------------------------------------

@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("prog", COMMANDS)
def test_a_second_instance_on_a_folder_in_use_is_refused_and_leaves_the_first_ones_files(
        prog, tiny_llama, sample_dir, sample_cache, tmp_path):
    """Issue 27: train_per_user.py rewrote the running instance's per_user_config.json, then removed it as "a
    refused run's", before its lock refused it; train_style_vectors.py had no lock."""
    out = tmp_path / "out"
    out.mkdir()
    first = {"per_user_config.json": b'{"the first instance": "its settings"}', "progress.jsonl": b'{"first"}\n'}
    for name, content in first.items():
        (out / name).write_bytes(content)
    with RunLock(out, "the first instance"):
        done = subprocess.run([sys.executable, COMMANDS[prog], *sample_flags(tiny_llama, sample_dir, sample_cache, out),
                               *COMMAND_FLAGS[prog]], capture_output=True, text=True, cwd=REPO, timeout=240)
        assert done.returncode == 2, done.stderr
        assert f"{out} is in use by the first instance" in one_error_line(done.stderr, prog)
        assert sorted(p.name for p in out.iterdir()) == sorted([".lock", *first])
        assert {name: (out / name).read_bytes() for name in first} == first


# --- a faulty summary server ---------------------------------------------------------------------------------------

def summary_flags(url: str, cache: Path) -> list[str]:
    return ["--use_summary", "--summary_max_new_tokens", "8", "--summary_model", "fake", "--summary_backend",
            "openai", "--summary_api_base", url, "--summary_request_timeout", "1", "--summary_max_retries", "1",
            "--summary_cache_dir", str(cache)]


def per_user_main(prog: str):
    if prog == "train_per_user.py":
        from training.train_per_user import main
    else:
        from evaluation.evaluate_per_user import main
    return main


def nothing_written(prog: str, out: Path, cache: Path) -> None:
    """No adapter, settings record, prompts or predictions of the failed run, and no summary cached."""
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert written == [], written
    if (cache / "summaries.sqlite").exists():
        assert judge.cache_rows(cache / "summaries.sqlite") == 0


FAULTS = {
    "silent": (never_answering, (), "failed 2 times (--summary_max_retries 1); the last: no answer within "
               "--summary_request_timeout 1 s"),  # the summary model's flags, not the run's own model's
    "500": (answering, (500, b"internal error"), "failed 2 times (--summary_max_retries 1); the last: HTTP 500"),
    "html": (answering, (200, b"<html>maintenance</html>", "text/html"),
             "answered something that is not a /chat/completions response"),
    "no-choices": (answering, (200, b'{"choices": []}', "application/json"),
                   "answered something that is not a /chat/completions response"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("prog", ["evaluate_per_user.py", "train_per_user.py"])
def test_a_faulty_summary_server_ends_the_run_with_one_error_line_and_nothing_written(
        prog, fault, tiny_llama, sample_dir, sample_cache, tmp_path, capsys, monkeypatch):
    """A silent server held the run for 9 tries of 600 s: --summary_request_timeout and --summary_max_retries bound
    it, as --request_timeout and --max_retries bound a served model's generation."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server, arguments, message = FAULTS[fault]
    out, cache = tmp_path / "out", tmp_path / "summaries"
    with server(*arguments) as endpoint:
        code = run_command(per_user_main(prog), [*sample_flags(tiny_llama, sample_dir, sample_cache, out),
                                                 *COMMAND_FLAGS[prog], *summary_flags(f"{endpoint}/v1", cache)], prog)
    line = one_error_line(capsys.readouterr().err, prog)
    assert code == 2 and message in line, line
    nothing_written(prog, out, cache)


@pytest.mark.slow
def test_null_summaries_are_an_error_never_cached_and_asked_again_of_a_working_server(
        tiny_llama, sample_dir, sample_cache, tmp_path, capsys, monkeypatch):
    """A server answering `"content": null` would have put an empty summary in every prompt, and cached it for good."""
    from evaluation.evaluate_per_user import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    prog, cache = "evaluate_per_user.py", tmp_path / "summaries"
    flags = COMMAND_FLAGS[prog]
    with judge.fake_server(lambda message, temperature: None) as (url, received):
        code = run_command(main, [*sample_flags(tiny_llama, sample_dir, sample_cache, tmp_path / "out"), *flags,
                                  *summary_flags(url, cache)], prog)
    line = one_error_line(capsys.readouterr().err, prog)
    assert code == 2 and received and "summary requests were answered with no text" in line, line
    nothing_written(prog, tmp_path / "out", cache)
    with judge.fake_server(lambda message, temperature: "Writes short, warm reviews.") as (url, received):
        assert run_command(main, [*sample_flags(tiny_llama, sample_dir, sample_cache, tmp_path / "out"), *flags,
                                  *summary_flags(url, cache)], prog) == 0
        assert received and judge.cache_rows(cache / "summaries.sqlite") == len(received)  # asked again, all kept
    prompts = (tmp_path / "out" / "prompts.json").read_text()
    assert "Writes short, warm reviews." in prompts
