"""Run folders shared by every command that writes one: atomic files and a lock against two live runs.

A run folder (training's `--output_dir`, a zero-shot run, a ranking's parts) is written by one live process at a
time: `RunLock` holds `.lock` in it while the command runs, refuses a second live run with a message naming the
holder, and takes over a lock whose process is gone (a killed run). `write_text_atomic` and `write_json_atomic`
write through a temporary file, fsync and a rename, so a reader sees the old file or the whole new one.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

LOCK_FILE = ".lock"


class RunFolderError(ValueError):
    """A run folder cannot be used as asked: another live run holds it, or it holds another run."""


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text through a temporary file in the same folder, fsync and a rename: the file is whole or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike, data: object, *, sort_keys: bool = False) -> None:
    """Write JSON atomically (write_text_atomic); nothing is written when `data` is not JSON-serialisable."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=str) + "\n")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class RunLock:
    """`with RunLock(folder):` the folder is this process's until the block ends.

    The lock file records the holder's host and pid. On the same host a lock whose process is gone is stale (a
    run killed with SIGKILL leaves one) and is taken over, and so is one naming this very process (a killed run
    whose pid was reused: containers hand out pids from the start again); a lock from another host (a shared file
    system) is trusted, and the message says which file to remove if that run is known to be dead.
    """

    def __init__(self, folder: str | os.PathLike, command: str = "a run"):
        self.folder, self.command = Path(folder), command
        self.path = self.folder / LOCK_FILE
        self._held = False

    def __enter__(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "command": self.command}
        for _ in range(2):
            try:
                with open(self.path, "x", encoding="utf-8") as handle:
                    json.dump(record, handle)
                self._held = True
                return self
            except FileExistsError:
                holder = self._holder()
                if holder is not None and self._is_live(holder):
                    raise RunFolderError(
                        f"{self.folder} is in use by {holder.get('command', 'another run')} (pid {holder.get('pid')} "
                        f"on {holder.get('host')}): wait for it to finish, or choose another output folder; if that "
                        f"process is known to be dead, remove {self.path}"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
        raise RunFolderError(f"could not take the lock {self.path}: another process keeps creating it")

    def __exit__(self, *exc_info) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # half-written by a process killed while creating it
        return holder if isinstance(holder, dict) else None

    @staticmethod
    def _is_live(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname():
            return True
        pid = holder.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and _process_alive(pid)
