"""Predictions that survive a crash: an append-only progress file, and the benchmark's final file.

Generation over a whole split takes hours, so every finished batch is appended to a JSON Lines file and
flushed to disk before the next one starts. A restarted run reads that file back and skips what is done.
Each line is keyed by a hash of the example's prompt token ids (and seed), not by its id: the sample and the
real data share ids, and an example whose prompt changed is generated again, never mixed in.
The first line holds the run's record (longlamp_runs.RunRecord) under "settings": resuming with a different model
(its weights fingerprinted), decoding or prompt settings would mix two runs in one file, so it is refused with the
list of what changed. Other data (the record's `data` group) is not refused: the examples whose prompts are
unchanged are kept, the others redone, and the file rewritten with the new header. Once every example is done,
`scoring.files.write_predictions` writes the benchmark's file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

from longlamp_errors import RunFolderError
from longlamp_io import json_line, write_text_atomic
from longlamp_runs import RunRecord, describe_differences, differences

logger = logging.getLogger(__name__)
DATA_SETTINGS = "data"  # the record's group that may change on resume: lines are keyed by their prompts


class PredictionStore:
    """Finished generations of one run, read back from and appended to `path` (JSON Lines).

    Line 1 is `{"settings": <the run record>}`; every other line is one
    `{"key", "id", "output", "tokens", "hit_limit"}`.
    A last line cut short by a kill is dropped (its example is generated again); any other unreadable line is an
    error naming it. `keys` are the run's prompt keys: lines of other keys are dropped when the data changed.
    """

    def __init__(self, path: str | Path, record: RunRecord, keys: Sequence[str] = ()):
        self.path = Path(path)
        self.record = record
        self.records: dict[str, dict] = {}
        lines = self._complete_lines() if self.path.exists() else []
        if lines:
            self._read(lines, set(keys))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append(self._header())

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def add(self, generations: Sequence[tuple]) -> None:
        """Append (key, id, Generation) triples in one write and force them to disk (a served model's prompt
        tokens and finish reason too)."""
        records = []
        for key, example_id, g in generations:
            record = {"key": key, "id": example_id, "output": g.text, "tokens": g.tokens, "hit_limit": g.hit_limit}
            if g.prompt_tokens is not None:
                record["prompt_tokens"] = g.prompt_tokens
            if g.finish_reason is not None:
                record["finish_reason"] = g.finish_reason
            records.append(record)
        self.add_records(records)

    def add_records(self, records: Sequence[dict]) -> None:
        """Append records as read from another progress file of the same run."""
        if not records:
            return
        self._append("".join(json_line(r, name=str(self.path)) for r in records))
        self.records.update((r["key"], r) for r in records)

    def _header(self) -> str:
        return json_line({"settings": self.record.to_dict()}, name=str(self.path))

    def _append(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def _complete_lines(self) -> list[str]:
        """The file's whole lines; a partial last line (killed mid-write) is cut off so appends start clean."""
        lines, size = _whole_lines(self.path)
        if size < self.path.stat().st_size:
            with open(self.path, "r+b") as handle:
                handle.truncate(size)
        return lines

    def _read(self, lines: list[str], keys: set[str]) -> None:
        recorded = _check_header(self.path, lines[0], self.record)
        self.records.update(_records(self.path, lines))
        changed = differences(recorded, self.record)
        if changed:  # only the data can differ here
            kept = {key: record for key, record in self.records.items() if key in keys}
            logger.warning("%s: the data changed (%s); %d of %d finished examples have the same prompt and are kept, "
                           "the others are generated again", self.path, describe_differences(changed), len(kept),
                           len(self.records))
            self.records = kept
            self._rewrite()

    def _rewrite(self) -> None:
        """The header and the kept records, through a temporary file and a rename."""
        write_text_atomic(self.path, self._header() + "".join(json_line(r, name=str(self.path))
                                                              for r in self.records.values()))


def read_progress(path: str | Path, record: RunRecord, keys: Sequence[str]) -> dict[str, dict]:
    """The records of `keys` in another process's progress file of the same run, read without changing it (a
    partial last line is that process still writing). Refused like a resume when its settings differ."""
    lines, _ = _whole_lines(Path(path))
    if not lines:
        return {}
    _check_header(Path(path), lines[0], record)
    wanted = set(keys)
    return {key: record for key, record in _records(Path(path), lines).items() if key in wanted}


def _whole_lines(path: Path) -> tuple[list[str], int]:
    """The file's complete lines and their size in bytes."""
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    # Only "\n" ends a record: JSON escapes it in strings, but not U+2028 or U+0085, where splitlines() cuts.
    return complete.decode("utf-8").split("\n")[:-1], len(complete)


def _check_header(path: Path, line: str, record: RunRecord) -> RunRecord:
    """The record a progress file starts with (read through longlamp_runs: checked, an unversioned one migrated);
    RunFolderError when it differs from `record` (the data aside, see the module's docstring)."""
    header = _parse_line(path, 1, line)
    recorded = RunRecord.from_dict(header.get("settings") or {}, f"{path}, line 1")
    changed = differences(recorded, record, ignore=(DATA_SETTINGS,))
    if changed:
        raise RunFolderError(
            f"{path} holds predictions made with other settings than this run "
            f"({describe_differences(changed)}); use another --output_dir, or delete the file to start over"
        )
    return recorded


def _records(path: Path, lines: list[str]) -> dict[str, dict]:
    records = {}
    for number, line in enumerate(lines[1:], start=2):
        record = _parse_line(path, number, line)
        if not isinstance(record.get("key"), str) or not isinstance(record.get("output"), str):
            raise ValueError(f'{path}, line {number}: expected {{"key": str, "id": str, "output": str, ...}} '
                             f"(a file from an older version: delete it to start over), got {line[:200]}")
        records[record["key"]] = record
    return records


def _parse_line(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}, line {number}: not valid JSON ({error}): {line[:200]}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}, line {number}: expected a JSON object, got {line[:200]}")
    return record

