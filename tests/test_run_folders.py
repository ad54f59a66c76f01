"""Run folders: one live run at a time, stale locks of killed runs taken over, JSON written whole or not at all."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from longlamp_io import LOCK_FILE, RunLock, write_json_atomic
from longlamp_errors import RunFolderError


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
