"""Run folders: one live run at a time, stale locks of killed runs taken over, JSON written whole or not at all."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from longlamp_errors import RunFolderError
from longlamp_io import LOCK_FILE, RunLock, write_json_atomic


@pytest.mark.multiprocess
def test_a_second_live_run_in_the_same_folder_is_refused_with_the_holder_named(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"host": __import__("socket").gethostname(), "pid": holder.pid,
                                                      "command": "train.py"}))
        with pytest.raises(RunFolderError, match=f"in use by train.py \\(pid {holder.pid}"):
            with RunLock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # the refused run left the holder's lock alone


@pytest.mark.multiprocess
def test_the_lock_of_a_killed_run_is_taken_over_and_released_at_the_end(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": __import__("socket").gethostname(),
                                                  "pid": int(dead.stdout)}))
    with RunLock(tmp_path, "evaluate_llm.py"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == "evaluate_llm.py"
    assert not (tmp_path / LOCK_FILE).exists()


def test_json_is_written_whole_and_no_temporary_file_stays(tmp_path):
    write_json_atomic(tmp_path / "a" / "scores.json", {"b": 1, "a": [1, 2]}, sort_keys=True)
    assert json.loads((tmp_path / "a" / "scores.json").read_text()) == {"a": [1, 2], "b": 1}
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "a" / "scores.json", {1j: "complex keys are not JSON"})
    assert json.loads((tmp_path / "a" / "scores.json").read_text()) == {"a": [1, 2], "b": 1}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["scores.json"]


def test_a_refusal_is_one_line_but_a_library_failure_keeps_its_traceback(capsys):
    from longlamp_cli import json_object, run_command

    def refuses(argv):
        json_object("--chat_template_kwargs", "[1]")  # the project's own check refuses

    def library_fails(argv):
        import json

        json.loads("{")  # json.JSONDecodeError is a ValueError raised inside the standard library

    assert run_command(refuses, [], prog="cmd") == 2
    assert capsys.readouterr().err == "cmd: error: --chat_template_kwargs must be a JSON object, got '[1]'\n"
    with pytest.raises(ValueError, match="Expecting property name"):
        run_command(library_fails, [], prog="cmd")


def test_the_project_modules_are_those_pyproject_installs():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from longlamp_cli import PROJECT_MODULES

    setuptools = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    installed = set(setuptools["py-modules"]) | {name.rstrip("*") for name in setuptools["packages"]["find"]["include"]}
    assert PROJECT_MODULES == installed | {"__main__"}


def _folder(path, text: str):
    path.mkdir(parents=True)
    (path / "marker").write_text(text)
    return path


def test_replace_folder_never_leaves_a_moment_without_the_folder(tmp_path):
    """A reader polling the folder during 300 replacements always finds one whole folder (old or new)."""
    import threading

    from longlamp_io import _exchange, replace_folder

    target = _folder(tmp_path / "target", "0")
    if not _exchange(_folder(tmp_path / "probe", "x"), target):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here")
    _exchange(tmp_path / "probe", target)  # swap back
    missing, done = [], threading.Event()

    def read():
        while not done.is_set():
            try:
                (target / "marker").read_text()
            except FileNotFoundError:
                missing.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for number in range(1, 301):
            assert replace_folder(_folder(tmp_path / f"staging{number}", str(number)), target)
    finally:
        done.set()
        reader.join()
    assert not missing and (target / "marker").read_text() == "300"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe", "target"]  # every old folder removed


def test_replace_folder_without_the_exchange_renames_the_old_folder_aside(tmp_path, monkeypatch):
    import longlamp_io

    monkeypatch.setattr(longlamp_io, "_exchange", lambda a, b: False)
    target = _folder(tmp_path / "target", "old")
    assert longlamp_io.replace_folder(_folder(tmp_path / "staging", "new"), target)
    assert (target / "marker").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["target"]


def test_replace_folder_if_absent_keeps_what_another_process_put_there(tmp_path):
    from longlamp_io import replace_folder

    target = _folder(tmp_path / "cache", "first")
    assert not replace_folder(_folder(tmp_path / "mine", "second"), target, if_absent=True)
    assert (target / "marker").read_text() == "first" and not (tmp_path / "mine").exists()
    assert replace_folder(_folder(tmp_path / "mine", "second"), tmp_path / "new", if_absent=True)
