"""Bad input at the newer commands (issue 27's tracebacks): each case is one `<command>: error: ...` line and exit
code 2, before any work, and nothing is written. Most are caught by the shared argument types (longlamp_cli: an
output file that is a folder, an output folder that is a file, a seed outside 0..2**32-1, a count past what memory
allows, a data folder that does not exist), so a new command gets them by using the shared flags; a prediction
holding a lone surrogate is refused where every command reads prediction files (scoring/files.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.parsers import load_script
from support.task_files import TASK, gold_entries, prediction_entries, write_task

from longlamp_cli import run_command

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def refused(path: str, argv: list[str], capsys) -> str:
    """Run a command as its entry point does; return its one error line."""
    capsys.readouterr()
    name = Path(path).name
    assert run_command(load_script(path).main, [str(a) for a in argv], prog=name) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def files(tmp_path):
    """Gold and prediction files, a folder and a plain file: what the cases point at."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    return {"golds": write_task(tmp_path / "golds.json", gold_entries()),
            "preds": write_task(tmp_path / "preds.json", prediction_entries()),
            "folder": tmp_path / "folder", "file": tmp_path / "file.txt"}


def contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("extra, message", [
    (["--output_file", "{folder}"], "argument --output_file: {folder} is a folder"),
    (["--seed", "-1"], "argument --seed: must be 0 or more, got -1"),
    (["--seed", str(2**32)], "argument --seed: must be at most 4294967295"),
    (["--resamples", "10000000000"], "argument --resamples: must be at most 1,000,000, got 10,000,000,000"),
    (["--confidence", "1"], "argument --confidence: must be between 0 and 1"),
])
def test_compare(files, tmp_path, capsys, extra, message):
    before = contents(tmp_path)
    extra = [part.format(**files) for part in extra]
    line = refused("evaluation/compare.py", ["--golds", files["golds"], "--preds_a", files["preds"], "--preds_b",
                                             files["preds"], *extra], capsys)
    assert message.format(**files) in line
    assert contents(tmp_path) == before


@pytest.mark.parametrize("extra, message", [
    (["--output", "{file}"], "argument --output: {file} is a file, not a folder"),
    (["--output", "{file}/board"], "argument --output: {file}/board: {file} is a file, not a folder"),
    (["--output", "{folder}", "--seed", "-3"], "argument --seed: must be 0 or more, got -3"),
])
def test_leaderboard(files, tmp_path, capsys, extra, message):
    before = contents(tmp_path)
    line = refused("evaluation/leaderboard.py", [str(files["folder"]), *[part.format(**files) for part in extra]],
                   capsys)
    assert message.format(**files) in line
    assert contents(tmp_path) == before


def test_export_dataset(files, tmp_path, capsys):
    export = "scripts/export_dataset.py"
    out = tmp_path / "exported"
    line = refused(export, ["--config", "product_review_user", "--data_dir", SAMPLE, "--output", files["file"]],
                   capsys)
    assert f"argument --output: {files['file']} is a file, not a folder" in line
    line = refused(export, ["--config", "product_review_user", "--data_dir", tmp_path / "absent", "--output", out],
                   capsys)
    assert f"argument --data_dir: {tmp_path / 'absent'} does not exist" in line
    not_parquet = tmp_path / "ranked.parquet"
    not_parquet.write_text("id,input\n1,text\n")
    line = refused(export, ["--config", "product_review_user", "--ranked", f"validation={not_parquet}", "--output",
                            out], capsys)
    assert f"--ranked {not_parquet}: not a dataset file written by retrieval/rank_profiles.py" in line
    assert not out.exists()


def test_train_per_user_output_dir_a_file(files, capsys):
    line = refused("training/train_per_user.py", ["--model_name", "m", "--data", "product_review_user",
                                                  "--output_dir", files["file"]], capsys)
    assert f"argument --output_dir: {files['file']} is a file, not a folder" in line
    assert files["file"].read_text() == "not a folder"


SURROGATE = "a review with a broken character: \ud800 here"


@pytest.fixture
def surrogate_predictions(tmp_path) -> Path:
    """Valid JSON ("\\ud800" is a legal escape) whose text is not Unicode a tokenizer or encoder can take."""
    entries = prediction_entries()
    entries[2]["output"] = SURROGATE
    path = tmp_path / "surrogate.json"
    path.write_text(json.dumps({"task": TASK, "golds": entries}), encoding="utf-8")  # ensure_ascii: \ud800 escaped
    return path


SURROGATE_REFUSAL = "'output' holds a lone surrogate (\\ud800 at character 34)"


def test_a_lone_surrogate_is_refused_by_every_command_that_reads_predictions(files, surrogate_predictions, tmp_path,
                                                                              capsys, sample_cache):
    """One rule: refused where the prediction file is read, naming the entry and its id."""
    wanted = f"{surrogate_predictions}: golds[2] (id 'id-7'): {SURROGATE_REFUSAL}"
    out = tmp_path / "out"
    cases = {
        "evaluation/judge.py": ["--golds", files["golds"], "--preds", surrogate_predictions, "--judge_model", "judge",
                                "--output_dir", out],
        "evaluation/style_similarity.py": ["--validation_data", "product_review_user", "--data_dir", SAMPLE,
                                           "--cache_dir", sample_cache, "--preds", surrogate_predictions,
                                           "--output_file", out / "style.json"],
        "evaluation/eval_task.py": ["--golds_json", files["golds"], "--preds_json", surrogate_predictions,
                                    "--output_file", out / "scores.json"],
        "evaluation/compare.py": ["--golds", files["golds"], "--preds_a", files["preds"], "--preds_b",
                                  surrogate_predictions, "--output_file", out / "cmp.json"],
    }
    for path, argv in cases.items():
        assert wanted in refused(path, argv, capsys), path
    assert not out.exists()
