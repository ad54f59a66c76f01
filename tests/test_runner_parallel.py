"""The runner on real stages (tiny models): two stages at once, and SLURM job arrays through submitit, give the serial
run's results.json byte for byte, even when the runner is killed with stages in flight and started again (nothing
finished runs twice); data changed
in place, before a rerun or between a kill and a rerun, is never reported with results made from the old data; a
finished folder moved elsewhere resumes with every stage skipped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.runner import commands_run, reduced_demo, runner

from longlamp_runs import STAGE_FILE

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
pytestmark = [pytest.mark.e2e, pytest.mark.multiprocess, pytest.mark.slow]


def finish(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def kill_when(command: list[str], ready) -> None:
    """Start the runner and SIGKILL it (and its stages) once `ready()` holds."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 900
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def in_flight(output: Path) -> list[Path]:
    """Stage folders whose command is running now (their job file says so, and they have no record yet)."""
    return [job.parent for job in output.rglob(".job.json")
            if '"running"' in job.read_text() and not (job.parent / STAGE_FILE).exists()]


@pytest.fixture(scope="module")
def serial(tmp_path_factory, tiny_chat_llama, tiny_encoder) -> tuple[Path, list[str]]:
    """The reduced demo run serially (its output folder, and the settings that reduce it)."""
    sets = reduced_demo(tiny_chat_llama, tiny_encoder)
    output = tmp_path_factory.mktemp("serial") / "serial"
    finish(runner(output, sets))
    return output, sets


def test_two_stages_at_once_killed_in_flight_and_rerun_give_the_serial_results(tmp_path, serial):
    serial, sets = serial
    parallel = tmp_path / "parallel"

    kill_when(runner(parallel, sets, "--max_parallel", "2"),
              lambda: len(list(parallel.rglob(STAGE_FILE))) >= 3 and in_flight(parallel))
    done_before = [path.parent for path in parallel.rglob(STAGE_FILE)]
    result = finish(runner(parallel, sets, "--max_parallel", "2"))
    assert result.stdout.count("done before, skipped") == len(done_before)
    assert all(commands_run(folder) == 1 for folder in done_before)  # nothing finished was run twice
    # no timings in results.json: the same bytes
    assert (parallel / "results.json").read_bytes() == (serial / "results.json").read_bytes()

    moved = tmp_path / "moved" / "parallel"
    moved.parent.mkdir()
    shutil.move(parallel, moved)
    result = finish(runner(moved, sets))
    stages = len(list(moved.rglob(STAGE_FILE)))
    assert result.stdout.count("done before, skipped") == stages
    assert (moved / "results.json").read_bytes() == (serial / "results.json").read_bytes()


def test_the_slurm_executor_with_job_arrays_gives_the_serial_results(tmp_path, serial):
    """--executor slurm through submitit (its local executor: no SLURM here runs the same pickled jobs as
    processes), the stages of a kind ready together submitted as one array (the default)."""
    serial, sets = serial
    output = tmp_path / "slurm"
    result = finish(runner(output, sets, "--executor", "slurm"))
    assert result.stdout.count("(job ") == len(list(output.rglob(STAGE_FILE)))  # each stage a job, with its id
    assert (output / "results.json").read_bytes() == (serial / "results.json").read_bytes()
    result = finish(runner(output, sets, "--executor", "slurm"))
    assert result.stdout.count("done before, skipped") == len(list(output.rglob(STAGE_FILE)))


def change_golds(data: Path, mark: str) -> list[str]:
    """Rewrite the validation split's golds in place (the same file), each prefixed with `mark`; returns them."""
    path = data / "product_review_user" / "val-00000-of-00001.parquet"
    table = pq.read_table(path)
    golds = [f"{mark} {text}" for text in table.column("output").to_pylist()]
    index = table.schema.get_field_index("output")
    pq.write_table(table.set_column(index, "output", [golds]), path)
    return golds


def reported_golds(output: Path) -> dict[str, list[str]]:
    """Each run's golds as it was generated and scored (golds.json), by run folder."""
    found = {}
    for path in output.glob("runs/*/*/*/generate/golds.json"):
        data = json.loads(path.read_text())
        found[str(path.parent.parent.relative_to(output))] = [entry["output"] for entry in data["golds"]]
    return found


def test_data_changed_in_place_is_never_reported_with_results_of_the_old_data(tmp_path, tiny_chat_llama):
    data = tmp_path / "data"
    shutil.copytree(REPO / "data" / "sample" / "product_review_user", data / "product_review_user")
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(
        f"name: changing\noutput_dir: {tmp_path / 'out'}\ndata_dir: {data}\nconfigs: [product_review_user]\n"
        "retrievers: {bm25: {retriever: bm25}}\nk: [1]\n"
        f"models: {{m: {{model_name: {tiny_chat_llama}, mode: zero_shot}}}}\n"
        "evaluate: {max_new_tokens: 4, limit: 3}\nscoring: {bootstrap: 100, seed: 0, num_workers: 1}\n"
        "env: {OMP_NUM_THREADS: 1}\n")
    output = tmp_path / "out"
    command = runner(output, [], config=experiment)
    finish(command)

    # 1. Changed in place, then the same command: every stage that read the data (and what follows) is redone.
    golds = change_golds(data, "first change:")
    result = finish(command)
    assert "done before, skipped" not in result.stdout and "made from other inputs" in result.stdout
    assert all(found == golds[:3] for found in reported_golds(output).values())

    # 2. Killed between stages (the run without profile scored, the BM25 run not yet), changed, run again.
    change_golds(data, "second change:")
    no_profile = output / "runs" / "product_review_user" / "m" / "no_profile" / "score"
    started = no_profile.joinpath(STAGE_FILE).stat().st_mtime
    kill_when(command, lambda: no_profile.joinpath(STAGE_FILE).is_file()
              and no_profile.joinpath(STAGE_FILE).stat().st_mtime > started)
    golds = change_golds(data, "third change:")
    result = finish(command)
    assert "done before, skipped" not in result.stdout
    assert set(reported_golds(output)) == {f"runs/product_review_user/m/{run}" for run in ("no_profile", "bm25-k1")}
    assert all(found == golds[:3] for found in reported_golds(output).values())
    results = json.loads((output / "results.json").read_text())
    assert [row["num_samples"] for row in results["runs"]] == [3, 3]
