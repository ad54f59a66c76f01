"""A preempted job, for the resume tests: start a command, SIGKILL it once its progress file holds enough lines."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def same_threads() -> dict[str, str]:
    """Environment variables that give a child process this process's number of torch compute threads: a float sum
    split over another number of threads differs in its last bits, so a child's results equal this process's only
    when both compute with the same count (a fresh process would take one per core)."""
    import torch

    return {"OMP_NUM_THREADS": str(torch.get_num_threads())}


def kill_once_written(command: list[str], progress: Path, lines: int, cwd: Path, **popen) -> int:
    """Run `command` until `progress` has `lines` complete lines, then SIGKILL it (no handler runs); returns how
    many lines after the first (the settings line) it had written. Fails if the run ends before it is killed. The
    child computes with this process's thread count, so that what it finished equals what this process computes."""
    popen["env"] = {**popen.get("env", os.environ), **same_threads()}
    process = subprocess.Popen(command, cwd=cwd, **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                                                    **popen})
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        if progress.exists() and progress.read_text(encoding="utf-8").count("\n") >= lines:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    return progress.read_text(encoding="utf-8").count("\n") - 1
