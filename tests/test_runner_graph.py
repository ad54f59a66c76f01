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

from benchmark_runner.execute import LocalExecutor, SlurmExecutor, array_groups, execute
from benchmark_runner.experiment import default_resources
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
    executor = SlurmExecutor(root, default_resources(), cluster="local")
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
    outcomes = execute([show], SlurmExecutor(root, default_resources(), cluster="local"),
                       {**os.environ, "ADDED": "by the experiment"})
    assert outcomes["env"].state == "ran"
    assert (root / "env" / "seen.txt").read_text() == "hf_secret_never_on_disk by the experiment"
    assert not [path for path in (root / "slurm").rglob("*") if path.is_file()
                and b"hf_secret_never_on_disk" in path.read_bytes()]


# What `sacct -o JobID,State,NodeList --parsable2 -j 4242 -j 4300` prints (submitit's query) for a plain job and
# a job array of 5 tasks throttled to 2 at once: each started task as `<array id>_<index>` with its steps (`.batch`,
# `.extern`), the tasks not started yet on one line as `<array id>_[<first>-<last>%<parallelism>]`, as SLURM's
# job array documentation shows them.
SACCT = """JobID|State|NodeList
4242|RUNNING|node7
4242.batch|RUNNING|node7
4242.extern|RUNNING|node7
4300_0|COMPLETED|node1
4300_0.batch|COMPLETED|node1
4300_0.extern|COMPLETED|node1
4300_1|FAILED|node2
4300_1.batch|FAILED|node2
4300_1.extern|COMPLETED|node2
4300_2|RUNNING|node3
4300_2.batch|RUNNING|node3
4300_[3-4%2]|PENDING|None assigned
"""


def test_jobs_a_stopped_runner_left_are_waited_for_or_resubmitted_and_shown_by_status(tmp_path, data, monkeypatch):
    """The scheduler (sacct, here a script answering as SLURM does) still runs or queues a stage's job or array
    task: the runner attaches to it instead of submitting a second job into the same folder, and --status shows
    its id; a failed task or one that ended without the stage's record is submitted again."""
    from benchmark_runner.status import grid_status

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct.txt").write_text(SACCT)
    (bin_dir / "sacct").write_text(f"#!/bin/sh\ncat {bin_dir / 'sacct.txt'}\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "out"
    stages = [Stage(f"s{job}", "generate", root / f"s{job}", [sys.executable, "-c", "pass"], ["out.txt"], [], {},
                    root) for job in ("4242", "4300_0", "4300_1", "4300_2", "4300_4")]
    for stage in stages:
        stage.folder.mkdir(parents=True)
        (stage.folder / JOB_FILE).write_text(json.dumps({"job": stage.name[1:], "state": "submitted"}))
    executor = SlurmExecutor(root, default_resources())
    attached = {stage.name[1:]: executor.attach(stage) for stage in stages}
    assert {job: found[1] if found else None for job, found in attached.items()} == {
        "4242": "4242", "4300_0": None, "4300_1": None, "4300_2": "4300_2", "4300_4": "4300_4"}
    assert not attached["4300_2"][0].done()
    assert grid_status(stages, root).splitlines() == [
        "running  s4242 (job 4242, RUNNING)",
        "pending  s4300_0 (job 4300_0: COMPLETED)",
        f"failed   s4300_1 (job 4300_1, FAILED), log: {root / 's4300_1' / 'stage.log'}",
        "running  s4300_2 (job 4300_2, RUNNING)",
        "running  s4300_4 (job 4300_4, PENDING)",
        "5 stages: 3 running, 1 failed, 1 pending"]


def test_stages_of_one_kind_ready_together_are_one_array_and_a_failing_task_fails_only_its_dependents(tmp_path,
                                                                                                        data):
    """a and b (one kind) are ready together: one job array through submitit's batch (its local executor here runs
    each task as a process); a fails, so c (which needs it) is not started and b finishes; the rerun submits only
    a and c, and everything matches a serial run."""
    root, serial = tmp_path / "out", tmp_path / "serial"
    assert [[stage.name for stage, _ in group] for group in array_groups(
        [(stage, {}) for stage in graph(root, data)], default_resources())] == [["a", "b", "c"]]
    one_each = {kind: {**spec, "array": False} for kind, spec in default_resources().items()}
    assert [[stage.name for stage, _ in group] for group in array_groups(
        [(stage, {}) for stage in graph(root, data)], one_each)] == [["a"], ["b"], ["c"]]
    outcomes = execute(graph(root, data, fail="a"), SlurmExecutor(root, default_resources(), cluster="local"), {})
    assert {n: o.state for n, o in outcomes.items()} == {"a": "failed", "b": "ran", "c": "blocked"}
    assert json.loads((root / "a" / JOB_FILE).read_text())["state"] == "failed"
    outcomes = execute(graph(root, data), SlurmExecutor(root, default_resources(), cluster="local"), {})
    assert {n: o.state for n, o in outcomes.items()} == {"a": "ran", "b": "skipped", "c": "ran"}
    run(graph(serial, data))
    for name in "abc":
        assert (root / name / "out.txt").read_text() == (serial / name / "out.txt").read_text()
