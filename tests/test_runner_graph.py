"""The runner's stage graph on small real commands (python -c): a stage is done only when it was made from today's
inputs (data changed in place, an earlier stage redone), a moved output folder resumes, stages run in parallel, a
failure stops only what needs it, and the SLURM path runs through submitit's local executor."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from benchmark_runner.execute import LocalExecutor, SlurmExecutor, execute
from benchmark_runner.experiment import RESOURCE_DEFAULTS
from benchmark_runner.stages import JOB_FILE, Stage
from longlamp_runs import read_stage_record

pytestmark = pytest.mark.multiprocess  # every stage is a process (and sacct, submitit's jobs)

COPY = ("import sys, time, pathlib; time.sleep(float(sys.argv[3])); out = pathlib.Path(sys.argv[2]); "
        "out.parent.mkdir(parents=True, exist_ok=True); out.write_text(pathlib.Path(sys.argv[1]).read_text() + '+'); "
        "open(sys.argv[2] + '.times', 'w').write(f'{time.time()}')")


def graph(root: Path, data: Path, sleep: float = 0.0, fail: str | None = None) -> list[Stage]:
    """a and b read the data; c needs a. Each copies its input (plus '+') to its output; `fail` exits 1."""
    def stage(name, source, needs=(), reads=True):
        folder = root / name
        code = "raise SystemExit(1)" if name == fail else COPY
        return Stage(name, "generate", folder, [sys.executable, "-c", code, str(source), str(folder / "out.txt"),
                                               str(sleep)], ["out.txt"], list(needs),
                     {"data": data} if reads else {}, root)
    a = stage("a", data / "x.txt")
    b = stage("b", data / "x.txt")
    c = stage("c", root / "a" / "out.txt", [a], reads=False)
    return [a, b, c]


def run(stages: list[Stage], parallel: int = 1) -> dict:
    return {name: outcome.state for name, outcome in execute(stages, LocalExecutor(parallel), {}).items()}


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "x.txt").write_text("one")
    return folder


def test_data_changed_in_place_redoes_every_stage_made_from_it_and_what_follows(tmp_path, data):
    root = tmp_path / "out"
    assert run(graph(root, data)) == {"a": "ran", "b": "ran", "c": "ran"}
    assert run(graph(root, data)) == {"a": "skipped", "b": "skipped", "c": "skipped"}
    (data / "x.txt").write_text("two")  # same folder, new contents
    assert run(graph(root, data)) == {"a": "ran", "b": "ran", "c": "ran"}
    assert (root / "c" / "out.txt").read_text() == "two++"  # nothing made from "one" is left or reported


def test_killed_between_stages_then_data_changed_nothing_stale_is_kept(tmp_path, data):
    root = tmp_path / "out"
    a, b, c = graph(root, data)
    assert run([a]) == {"a": "ran"}  # the runner stopped after the first stage
    (data / "x.txt").write_text("two")
    assert run(graph(root, data)) == {"a": "ran", "b": "ran", "c": "ran"}
    assert [(root / n / "out.txt").read_text() for n in "abc"] == ["two+", "two+", "two++"]


def test_an_earlier_stage_redone_with_other_outputs_redoes_the_stages_after_it(tmp_path, data):
    root = tmp_path / "out"
    run(graph(root, data))
    shutil.rmtree(root / "a")  # a is lost, and its redone output differs
    (data / "x.txt").write_text("two")
    a, b, c = graph(root, data)
    assert run([a]) == {"a": "ran"}
    assert c.state() == "stale" and c.changed_inputs() == ["stage a"]


def test_the_record_names_output_paths_relative_to_the_output_folder_so_a_moved_folder_resumes(tmp_path, data):
    root = tmp_path / "out"
    run(graph(root, data))
    record = read_stage_record(root / "c")
    assert str(root) not in json.dumps(record.command) and "{output_dir}/c/out.txt" in record.command
    assert Stage("s", "score", root, ["python", "x.py", "--cache_dir", str(tmp_path / "cache")], cache=tmp_path
                 / "cache").recorded_command() == ["python", "x.py", "--cache_dir", "{cache_dir}"]
    moved = tmp_path / "elsewhere" / "out"
    moved.parent.mkdir()
    shutil.copytree(root, moved)
    shutil.rmtree(root)
    assert run(graph(moved, data)) == {"a": "skipped", "b": "skipped", "c": "skipped"}


def test_two_stages_run_at_once_and_the_results_match_a_serial_run(tmp_path, data):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    run(graph(serial, data, sleep=1.0))
    started = time.monotonic()
    assert run(graph(parallel, data, sleep=1.0), parallel=2) == {"a": "ran", "b": "ran", "c": "ran"}
    a_at, b_at = (float((parallel / n / "out.txt.times").read_text()) for n in "ab")
    assert abs(a_at - b_at) < 0.9  # a and b ran side by side (each sleeps 1 s)
    assert time.monotonic() - started < 3 * 1.0 + 6  # not three sleeps one after another plus start-up
    for name in "abc":
        assert (parallel / name / "out.txt").read_text() == (serial / name / "out.txt").read_text()


def test_a_failing_stage_leaves_its_siblings_finished_and_its_dependents_not_started(tmp_path, data):
    root = tmp_path / "out"
    outcomes = execute(graph(root, data, fail="a"), LocalExecutor(2), {})
    assert {n: o.state for n, o in outcomes.items()} == {"a": "failed", "b": "ran", "c": "blocked"}
    assert str(root / "a" / "stage.log") in outcomes["a"].reason
    assert json.loads((root / "a" / JOB_FILE).read_text())["state"] == "failed"
    assert read_stage_record(root / "b") is not None and not (root / "c").exists()
    assert run(graph(root, data)) == {"a": "ran", "b": "skipped", "c": "ran"}  # fixed: the rest, nothing twice


def test_the_slurm_executor_runs_each_stage_as_a_submitit_job(tmp_path, data):
    """submitit's local executor runs the same pickled jobs a SLURM cluster would (no scheduler here)."""
    root = tmp_path / "out"
    executor = SlurmExecutor(root, RESOURCE_DEFAULTS, cluster="local")
    outcomes = execute(graph(root, data), executor, {})
    assert {n: o.state for n, o in outcomes.items()} == {"a": "ran", "b": "ran", "c": "ran"}
    assert all(o.job and o.job != "local" for o in outcomes.values())  # each a job with its id
    assert (root / "c" / "out.txt").read_text() == "one++"
    assert run(graph(root, data)) == {"a": "skipped", "b": "skipped", "c": "skipped"}


def test_status_reads_the_folder_and_starts_nothing(tmp_path, data):
    from benchmark_runner.status import grid_status

    root = tmp_path / "out"
    execute(graph(root, data, fail="a"), LocalExecutor(1), {})
    (data / "x.txt").write_text("two")
    lines = grid_status(graph(root, data, fail="a"), root).splitlines()
    assert lines[0] == f"failed   a (exit 1), log: {root / 'a' / 'stage.log'}"
    assert lines[1] == "pending  b (made from other inputs: data {})".format(data)
    assert lines[2] == "pending  c" and lines[3] == "3 stages: 1 failed, 2 pending"
    assert not (root / "c").exists()


def test_a_slurm_job_gets_the_callers_environment_without_it_being_written_to_disk(tmp_path, data, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_on_disk")
    root = tmp_path / "out"
    show = Stage("env", "score", root / "env", [sys.executable, "-c", "import os, sys; open(sys.argv[1], 'w').write("
                 "os.environ['HF_TOKEN'] + ' ' + os.environ['ADDED'])", str(root / "env" / "seen.txt")],
                 ["seen.txt"], [], {}, root)
    outcomes = execute([show], SlurmExecutor(root, RESOURCE_DEFAULTS, cluster="local"),
                       {**os.environ, "ADDED": "by the experiment"})
    assert outcomes["env"].state == "ran"
    assert (root / "env" / "seen.txt").read_text() == "hf_secret_never_on_disk by the experiment"
    assert not [path for path in (root / "slurm").rglob("*") if path.is_file()
                and b"hf_secret_never_on_disk" in path.read_bytes()]


def test_a_job_a_stopped_runner_left_running_is_waited_for_and_shown_by_status(tmp_path, data, monkeypatch):
    """The scheduler (sacct, here a script answering as SLURM does) still runs the job of a stage: the runner
    attaches to it instead of submitting a second job into the same folder, and --status shows its id."""
    from benchmark_runner.status import grid_status

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\necho 'JobID|State|NodeList'\necho '4242|RUNNING|node7'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "out"
    a = graph(root, data)[0]
    a.folder.mkdir(parents=True)
    (a.folder / JOB_FILE).write_text(json.dumps({"job": "4242", "state": "submitted"}))
    attached = SlurmExecutor(root, RESOURCE_DEFAULTS).attach(a)
    assert attached is not None and attached[1] == "4242" and not attached[0].done()
    assert grid_status([a], root).splitlines()[0] == "running  a (job 4242, RUNNING)"
