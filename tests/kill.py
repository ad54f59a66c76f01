"""A preempted job, for the resume tests: start a command, SIGKILL it once its progress file holds enough lines."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_once_written(command: list[str], progress: Path, lines: int, cwd: Path, **popen) -> int:
    """Run `command` until `progress` has `lines` complete lines, then SIGKILL it (no handler runs); returns how
    many lines after the first (the settings line) it had written. Fails if the run ends before it is killed."""
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
