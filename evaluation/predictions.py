"""Predictions that survive a crash: an append-only progress file, and the benchmark's final file.

Generation over a whole split takes hours, so every finished batch is appended to a JSON Lines file and
flushed to disk before the next one starts. A restarted run reads that file back and skips what is done.
The first line records the settings that produced the predictions: resuming with different settings would
mix two runs in one file, so it is refused. Once every example is done, `write_predictions` writes the
benchmark's `{"task", "golds": [{"id", "output"}]}` file, atomically, in dataset order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from evaluation.files import write_json_atomic


class ResumeMismatchError(ValueError):
    """The progress file on disk was produced with other settings than the run being resumed."""


class PredictionStore:
    """Finished predictions of one run, read back from and appended to `path` (JSON Lines).

    Line 1 is `{"settings": {...}}`; every other line is one `{"id", "output"}`. A last line cut short by a
    kill is dropped (its example is generated again); any other unreadable line is an error naming it.
    """

    def __init__(self, path: str | Path, settings: Mapping):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # the form it takes once written and read back
        self.outputs: dict[str, str] = {}
        lines = self._complete_lines() if self.path.exists() else []
        if lines:
            self._read(lines)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append(json.dumps({"settings": self.settings}, ensure_ascii=False) + "\n")

    def __contains__(self, example_id: str) -> bool:
        return example_id in self.outputs

    def __len__(self) -> int:
        return len(self.outputs)

    def add(self, records: Sequence[tuple[str, str]]) -> None:
        """Append (id, output) pairs in one write and force them to disk."""
        self._append("".join(json.dumps({"id": i, "output": o}, ensure_ascii=False) + "\n" for i, o in records))
        self.outputs.update(records)

    def _append(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def _complete_lines(self) -> list[str]:
        """The file's whole lines; a partial last line (killed mid-write) is cut off so appends start clean."""
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) < len(raw):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        # Only "\n" ends a record: JSON escapes it in strings, but not U+2028 or U+0085, where splitlines() cuts.
        return complete.decode("utf-8").split("\n")[:-1]

    def _read(self, lines: list[str]) -> None:
        header = _parse_line(self.path, 1, lines[0])
        if header.get("settings") != self.settings:
            raise ResumeMismatchError(
                f"{self.path} holds predictions made with other settings than this run "
                f"({_difference(header.get('settings') or {}, self.settings)}); use another --output_dir, "
                "or delete the file to start over"
            )
        for number, line in enumerate(lines[1:], start=2):
            record = _parse_line(self.path, number, line)
            if not isinstance(record.get("id"), str) or not isinstance(record.get("output"), str):
                raise ValueError(f'{self.path}, line {number}: expected {{"id": str, "output": str}}, got {line[:200]}')
            self.outputs[record["id"]] = record["output"]


def _parse_line(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}, line {number}: not valid JSON ({error}): {line[:200]}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}, line {number}: expected a JSON object, got {line[:200]}")
    return record


def _difference(old: Mapping, new: Mapping) -> str:
    keys = sorted(set(old) | set(new))
    changed = [f"{k}: {old.get(k)!r} on disk, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changed) or "unreadable settings line"


def write_predictions(path: str | Path, task_name: str, ids: Sequence[str], outputs: Mapping[str, str],
                      users: Mapping[str, str] | None = None) -> None:
    """Write the benchmark's predictions (or golds) file for `ids`, in that order, atomically.

    Golds may carry each example's user, which the scorer turns into per-user averages.
    """
    golds = [{"id": i, "output": outputs[i], **({"user": users[i]} if users else {})} for i in ids]
    write_json_atomic(path, {"task": task_name, "golds": golds})
