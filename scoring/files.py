"""The benchmark's gold and prediction files, zip archives and result files, read and written safely.

A task file is UTF-8 JSON `{"task": "<name>", "golds": [{"id": "...", "output": "..."}, ...]}`, for golds and
predictions alike (the README's format). Gold entries may also carry a "user" string, which enables per-user
averages. Anything else is refused with a DataError that names the file, the entry and what was expected:
invalid UTF-8 or JSON, missing fields, non-string ids or outputs, empty gold outputs, duplicate ids, ids that
do not match the golds. An empty prediction is valid (it scores zero).

Zip archives are extracted member by member after checking that no path leaves the target folder (absolute
paths, "..", links) and that the total unpacked size stays under a limit (zip bombs).
Results are written with `longlamp_io.write_json_atomic`, so a failed run leaves no partial output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from longlamp_errors import DataError
from longlamp_io import write_json_atomic
from scoring.task_names import canonical_task_name

MAX_UNZIPPED_BYTES = 2 * 1024**3
MAX_ZIP_MEMBERS = 10_000
EXAMPLES_SHOWN = 5
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class TaskFile:
    """One task's gold or prediction file, checked: entries in file order, task name canonical."""

    path: str
    task: str
    ids: list[str]
    outputs: list[str]
    users: list[str] | None


def _examples(values) -> str:
    shown = sorted(values)[:EXAMPLES_SHOWN]
    return ", ".join(map(repr, shown)) + (", ..." if len(values) > EXAMPLES_SHOWN else "")


def load_json(path: str | os.PathLike, name: str | None = None) -> object:
    """Parse a UTF-8 JSON file (a byte-order mark is tolerated); `name` is how messages call it (default: path)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{name or path}: cannot read the file ({error.strerror})") from None
    path = name or path
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text (invalid byte {raw[error.start:error.start + 1]!r} at offset {error.start}); "
            "save the file as UTF-8"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


def read_task_file(path: str | os.PathLike, role: str, name: str | None = None) -> TaskFile:
    """Read and check a gold (role "golds") or prediction (role "predictions") file; `name` as in load_json."""
    data = load_json(path, name)
    path = name or path
    if not isinstance(data, dict) or not isinstance(data.get("task"), str) or not isinstance(data.get("golds"), list):
        raise DataError(
            f'{path}: expected an object {{"task": <string>, "golds": [{{"id": ..., "output": ...}}, ...]}}'
        )
    try:
        task = canonical_task_name(data["task"])
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None
    ids, outputs, users = [], [], []
    for i, entry in enumerate(data["golds"]):
        where = f"{path}: golds[{i}]"
        if not isinstance(entry, dict):
            raise DataError(f"{where} is {type(entry).__name__}, expected an object with 'id' and 'output'")
        if not isinstance(entry.get("id"), str):
            raise DataError(f"{where}: 'id' is {_type_name(entry, 'id')}, expected a string")
        where += f" (id {entry['id']!r})"
        if not isinstance(entry.get("output"), str):
            raise DataError(f"{where}: 'output' is {_type_name(entry, 'output')}, expected a string")
        surrogate = _lone_surrogate(entry["output"])
        if surrogate is not None:
            raise DataError(f"{where}: 'output' holds a lone surrogate (\\u{ord(entry['output'][surrogate]):04x} at "
                            f"character {surrogate}), which is not text: no tokenizer or file encoding takes it; "
                            "write the file from valid Unicode")
        if role == "golds" and not entry["output"].strip():
            raise DataError(f"{where}: the gold output is empty, so nothing can be scored against it")
        if "user" in entry and not isinstance(entry["user"], str):
            raise DataError(f"{where}: 'user' is {_type_name(entry, 'user')}, expected a string")
        ids.append(entry["id"])
        outputs.append(entry["output"])
        users.append(entry.get("user"))
    if not ids:
        raise DataError(f"{path}: 'golds' is empty, expected at least one entry")
    duplicates = [i for i, count in Counter(ids).items() if count > 1]
    if duplicates:
        raise DataError(f"{path}: {len(duplicates)} ids appear more than once: {_examples(duplicates)}")
    with_user = sum(user is not None for user in users)
    if role == "golds" and 0 < with_user < len(users):
        raise DataError(f"{path}: {len(users) - with_user} entries lack the 'user' that the others have")
    return TaskFile(str(path), task, ids, outputs, users if role == "golds" and with_user else None)


def _lone_surrogate(text: str) -> int | None:
    """Where a string holds a lone UTF-16 surrogate (JSON's "\\ud800" reads as one), or None. Every command that
    reads a prediction or gold file refuses one here: some would score it, others crash on it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def _type_name(entry: dict, key: str) -> str:
    return "missing" if key not in entry else type(entry[key]).__name__


def check_task(golds: TaskFile, predictions: TaskFile, task_name: str | None = None) -> str:
    """The task both files are for (and the one asked for, if any); DataError if they disagree."""
    asked = canonical_task_name(task_name) if task_name else golds.task
    if not golds.task == predictions.task == asked:
        named = f"--task_name {asked}, " if task_name else ""
        raise DataError(
            f"task names disagree: {named}{golds.path} has {golds.task}, {predictions.path} has {predictions.task}"
        )
    return asked


def predictions_in_gold_order(golds: TaskFile, predictions: TaskFile) -> list[str]:
    """Each gold's prediction, in gold order; DataError unless the prediction ids are exactly the gold ids."""
    by_id = dict(zip(predictions.ids, predictions.outputs))
    missing = set(golds.ids) - set(by_id)
    extra = set(by_id) - set(golds.ids)
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"{len(missing)} of {len(golds.ids)} gold ids have no prediction ({_examples(missing)})")
        if extra:
            problems.append(f"{len(extra)} prediction ids are not in the golds ({_examples(extra)})")
        raise DataError(f"{predictions.path} does not match {golds.path}: {'; '.join(problems)}")
    return [by_id[i] for i in golds.ids]


def _member_target(member: zipfile.ZipInfo, root: Path, zip_path) -> Path:
    """Where a member may be written inside `root`; DataError for any path that could leave it."""
    name = member.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    mode = member.external_attr >> 16
    escapes = "\0" in name or name.startswith("/") or _DRIVE.match(name) or ".." in parts
    if stat.S_ISLNK(mode):
        raise DataError(f"{zip_path}: member {member.filename!r} is a symbolic link, which is not extracted")
    target = root.joinpath(*parts) if parts else root
    if escapes or not target.resolve().is_relative_to(root):
        raise DataError(f"{zip_path}: member {member.filename!r} would be written outside {root}")
    return target


def extract_zip(
    zip_path: str | os.PathLike, destination: str | os.PathLike, max_bytes: int = MAX_UNZIPPED_BYTES,
    max_members: int = MAX_ZIP_MEMBERS,
) -> list[Path]:
    """Extract a zip into `destination` (which must be new or empty) and return its JSON files, sorted.

    macOS metadata ("__MACOSX/", "._*") is skipped. Paths leaving `destination`, links, encrypted members,
    more than `max_members` members or more than `max_bytes` once decompressed are refused.
    """
    root = Path(destination).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{zip_path}: not a readable zip file ({error})") from None
    with archive:
        members = [m for m in archive.infolist() if not _is_macos_metadata(m.filename)]
        if len(members) > max_members:
            raise DataError(f"{zip_path}: {len(members)} members, more than the limit of {max_members}")
        declared = sum(m.file_size for m in members)
        if declared > max_bytes:
            raise DataError(
                f"{zip_path}: unpacks to {declared:,} bytes, more than the limit of {max_bytes:,}; refused as a "
                "possible zip bomb. If the files are genuine, raise the limit (--max_unzipped_mb)."
            )
        files = []
        for member in members:
            target = _member_target(member, root, zip_path)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if member.flag_bits & 0x1:
                raise DataError(f"{zip_path}: member {member.filename!r} is encrypted")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # zipfile never yields more than a member's declared size (a longer stream fails its CRC check),
                # so the declared total checked above bounds what is written.
                with archive.open(member) as source, open(target, "xb") as sink:
                    shutil.copyfileobj(source, sink)
            except FileExistsError:
                raise DataError(f"{zip_path}: member {member.filename!r} appears more than once") from None
            except (zipfile.BadZipFile, NotImplementedError, EOFError) as error:
                raise DataError(f"{zip_path}: member {member.filename!r} cannot be read ({error})") from None
            if target.suffix.lower() == ".json":
                files.append(target)
    return sorted(files)


def _is_macos_metadata(name: str) -> bool:
    return name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("._")


def write_predictions(path: str | Path, task_name: str, ids: Sequence[str], outputs: Mapping[str, str],
                      users: Mapping[str, str] | None = None) -> None:
    """Write the benchmark's predictions (or golds) file for `ids`, in that order, atomically.

    Golds may carry each example's user, which the scorer turns into per-user averages.
    """
    golds = [{"id": i, "output": outputs[i], **({"user": users[i]} if users else {})} for i in ids]
    write_json_atomic(path, {"task": task_name, "golds": golds})
