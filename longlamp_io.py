"""Writing files and folders safely: atomic files, one atomic folder replace, a lock against two live runs, and
the digests of a folder.

`write_bytes_atomic`, `write_text_atomic` and `write_json_atomic` write through a temporary file, fsync and a
rename, so a reader sees the old file or the whole new one; `replace_folder` does the same for a folder built under
another name. Every JSON file and JSON line of the project is strict JSON (`json_text`, `json_line`,
`write_json_lines`): a NaN or an infinity is refused with an error naming its key and nothing is written, never the
`NaN` literal that other JSON readers reject (a value that may be missing is written as null by its producer, never
as NaN). A run folder (training's `--output_dir`, a zero-shot run, a ranking's parts) is written by one live process
at a time: `RunLock` holds `.lock` in it while the command runs, refuses a second live run with a message naming the
holder, and takes over a lock whose process is gone (a killed run).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import socket
import uuid
from pathlib import Path

from longlamp_errors import RunFolderError

LOCK_FILE = ".lock"


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text as `write_bytes_atomic` does."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write through a temporary file in the same folder, fsync and a rename: the file is whole or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _non_finite(data: object, where: str = "") -> str | None:
    """The key path of the first NaN or infinity in `data` ("scores.metrics.rouge1", "runs[2].mean"), or None."""
    if isinstance(data, float) and not math.isfinite(data):
        return where or "the value"
    if isinstance(data, dict):
        items = ((f"{where}.{key}" if where else str(key), value) for key, value in data.items())
    elif isinstance(data, (list, tuple)):
        items = ((f"{where}[{index}]", value) for index, value in enumerate(data))
    else:
        return None
    return next((found for key, value in items if (found := _non_finite(value, key)) is not None), None)


def _strict(dump, data: object, name: str) -> str:
    try:
        return dump(data)
    except ValueError:  # json's "Out of range float values are not JSON compliant", which names no key
        key = _non_finite(data)
        if key is None:
            raise
        raise ValueError(f"{name}: {key} is not a finite number; JSON holds only finite numbers, so nothing was "
                         "written") from None


def json_text(data: object, *, sort_keys: bool = False, name: str = "JSON") -> str:
    """`data` as indented strict JSON (ValueError naming the key of a NaN or infinity; `name`: the file)."""
    return _strict(lambda d: json.dumps(d, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=str,
                                        allow_nan=False), data, name) + "\n"


def json_line(record: object, *, name: str = "JSON line") -> str:
    """One strict JSON line, newline included (a JSON Lines file's record)."""
    return _strict(lambda d: json.dumps(d, ensure_ascii=False, allow_nan=False), record, name) + "\n"


def write_json_atomic(path: str | os.PathLike, data: object, *, sort_keys: bool = False) -> None:
    """Write strict JSON atomically (write_text_atomic); nothing is written when `data` is not JSON-serialisable
    or holds a NaN or infinity (ValueError naming the file and the key)."""
    write_text_atomic(path, json_text(data, sort_keys=sort_keys, name=str(path)))


def write_json_lines(path: str | os.PathLike, records) -> None:
    """Write one strict JSON line per record, atomically: the file is whole or absent."""
    write_text_atomic(path, "".join(json_line(record, name=f"{path}, line {number}")
                                    for number, record in enumerate(records, 1)))


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


# renameat2(2) with RENAME_EXCHANGE (Linux 3.15, glibc 2.28): both paths exist before and after, swapped at once.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}  # kernel or file system lacks it


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the platform or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a libc without renameat2
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike, *, if_absent: bool = False) -> bool:
    """Put the finished folder `staging` at `target` (same file system); returns whether it was put there.

    A reader of `target` sees the old folder or the whole new one, never neither: an existing `target` is swapped
    with `staging` in one step (Linux's renameat2 with RENAME_EXCHANGE), then the old folder is removed. Where the
    exchange is unsupported (another OS, a file system without it) the old folder is renamed aside and the new one
    renamed in, which leaves a moment without `target`. `if_absent`: keep an existing `target` (a cache entry that
    another process wrote first) and remove `staging` instead.
    """
    staging, target = Path(staging), Path(target)
    if not os.path.lexists(target):
        try:
            os.rename(staging, target)
            return True
        except OSError:
            if not os.path.lexists(target):
                raise
    if if_absent:  # another process put it there first
        shutil.rmtree(staging, ignore_errors=True)
        return False
    if _exchange(staging, target):
        shutil.rmtree(staging)  # it now holds the old folder
        return True
    aside = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    os.rename(target, aside)
    os.rename(staging, target)
    shutil.rmtree(aside)
    return True


def folder_content_digest(folder: str | os.PathLike) -> str:
    """"sha256:" and a digest of every file's relative path and bytes (dot-files aside): a folder saved again with
    other bytes differs, one copied elsewhere does not."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def folder_stat_digest(folder: str | os.PathLike) -> str:
    """A short digest of every file's relative path, size and modification time: cheap (no file is read), and it
    changes when a file is written again, even with the same bytes."""
    folder = Path(folder)
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
