"""Dataset export (scripts/export_dataset.py, its library publishing/dataset_export.py) as an adversarial user meets
it: SIGKILL and rerun, two instances on one output folder, and a Hub that never answers or answers 500 on the push.
Its bad files (an output that is a file, a data folder that does not exist, a ranked file that is not Parquet or
of another config or split) are in tests/test_command_bad_input.py and tests/test_publishing.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.faulty_server import answering, never_answering

REPO = Path(__file__).resolve().parents[1]
EXPORT = str(REPO / "scripts" / "export_dataset.py")


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file but hidden ones (a temporary file a kill interrupted)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def export(*args, env: dict | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, EXPORT, *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **popen)


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def one_error_line(done: subprocess.CompletedProcess, prog: str) -> str:
    errors = [line for line in done.stderr.strip().splitlines() if line.startswith(f"{prog}: error: ")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0]


@pytest.fixture
def data(sample_dir, sample_cache) -> list[str]:
    return ["--data_dir", str(sample_dir), "--cache_dir", sample_cache]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_an_export_killed_while_writing_then_rerun_equals_a_clean_export(data, tmp_path):
    configs = ["--config", "product_review_user", "topic_writing_temporal"]
    out = tmp_path / "killed"
    process = export(*configs, *data, "--output", out)
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not any(
            p.suffix == ".parquet" for p in out.rglob("*")):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the export ended before it could be killed"
    assert finished(export(*configs, *data, "--output", out)).returncode == 0
    assert finished(export(*configs, *data, "--output", tmp_path / "clean")).returncode == 0
    assert files_in(out) == files_in(tmp_path / "clean")


@pytest.mark.multiprocess
def test_an_export_into_a_folder_another_export_is_writing_is_refused_and_changes_nothing(data, tmp_path):
    """Two exports at once lost a config from the card (each rewrites it); the folder's lock refuses the second.
    This process holds the lock as the first export would, after its checks."""
    from longlamp_io import RunLock

    out = tmp_path / "export"
    assert finished(export("--config", "product_review_user", *data, "--output", out)).returncode == 0
    before = files_in(out)
    with RunLock(out, "scripts/export_dataset.py"):
        refused = finished(export("--config", "topic_writing_temporal", *data, "--output", out))
    assert "is in use by scripts/export_dataset.py" in one_error_line(refused, "export_dataset.py")
    assert files_in(out) == before and not (out / "topic_writing_temporal").exists()
    assert finished(export("--config", "topic_writing_temporal", *data, "--output", out)).returncode == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "config_name: product_review_user" in card and "config_name: topic_writing_temporal" in card


def hub_env(endpoint: str, tmp_path: Path) -> dict:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "LONGLAMP_HUB_TIMEOUT": "1", "HF_TOKEN": "hf_exportTestToken0123456789"}
    return env


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["silent", "500"])
def test_a_push_to_a_faulty_hub_is_one_error_line_and_keeps_the_export(data, tmp_path, fault):
    out = tmp_path / "export"
    server = never_answering() if fault == "silent" else answering(500, b"oops")
    with server as endpoint:
        done = finished(export("--config", "product_review_user", *data, "--output", out, "--push_to_hub",
                               "me/longlamp", env=hub_env(endpoint, tmp_path)))
    line = one_error_line(done, "export_dataset.py")
    assert "me/longlamp" in line and ("timed out" in line.lower() if fault == "silent" else "500" in line), line
    assert "hf_exportTestToken" not in done.stderr + done.stdout
    assert finished(export("--config", "product_review_user", *data, "--output", tmp_path / "clean")).returncode == 0
    assert files_in(out) == files_in(tmp_path / "clean")
