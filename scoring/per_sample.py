"""Per-sample score files: one JSON line per example, the input of compare.py and leaderboard.py.

Format (JSON Lines, UTF-8, chosen over parquet/CSV because it needs no extra package, streams, keeps the ids'
exact strings, and pandas reads it with `pd.read_json(path, lines=True)`):

    {"id": "...", "user": "..." | null, "prediction_words": 87, "rouge1": 0.41, ..., "meteor": 0.29}

in the order of the gold file. `prediction_words` is the prediction's length in whitespace-separated words
(`len(text.split())`); every per-sample metric that was scored has a column (corpus-level metrics such as
sacrebleu have none). Floats are written with `repr`, so reading the file gives back the exact scores. Every value
is a finite number and every id appears once: a file with a NaN or a repeated id is refused where it is written
and where it is read (`read`), and `read_checked` also refuses one that is not the run's beside it (another row
count than its scores, ids other than its golds).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from longlamp_errors import DataError
from longlamp_io import write_json_lines
from longlamp_runs import Scores, Variant, per_sample_problem

FIXED_FIELDS = ("id", "user", "prediction_words")


def rows(ids: Sequence[str], predictions: Sequence[str], scores: Mapping[str, np.ndarray],
         users: Sequence[str] | None = None) -> list[dict]:
    """One dict per example: id, user (None when unknown), prediction length in words, each metric's score."""
    if len(predictions) != len(ids) or any(len(values) != len(ids) for values in scores.values()):
        raise ValueError(f"per-sample rows: {len(ids)} ids, {len(predictions)} predictions, "
                         f"score lengths {[len(v) for v in scores.values()]}")
    columns = {name: np.asarray(values, dtype=np.float64).tolist() for name, values in scores.items()}
    return [
        {"id": example_id, "user": users[i] if users is not None else None,
         "prediction_words": len(predictions[i].split()), **{name: values[i] for name, values in columns.items()}}
        for i, example_id in enumerate(ids)
    ]


def write(path: str | os.PathLike, records: Sequence[dict]) -> None:
    """Write the rows atomically: the file is whole or absent (ValueError naming the line and key of a NaN)."""
    write_json_lines(path, records)


def _records(path: str | os.PathLike) -> list:
    """The file's lines parsed as JSON: in one call when the file is valid, else line by line to name the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    lines = text.splitlines()
    try:
        return json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: invalid JSON ({error.msg})") from None
    raise DataError(f"{path}: not one JSON object per line")


def read(path: str | os.PathLike) -> tuple[list[str], list[str | None], dict[str, np.ndarray]]:
    """(ids, users, {metric: scores}) of a per-sample file; every line must have the same metric columns."""
    records = _records(path)
    if not records:
        raise DataError(f"{path}: no examples")
    names, seen = None, {}
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise DataError(f"{path}, line {number}: expected an object with a string \"id\"")
        if record["id"] in seen:
            raise DataError(f"{path}, line {number}: id {record['id']!r} again (first on line {seen[record['id']]}): "
                            "each example is scored once")
        seen[record["id"]] = number
        metrics = [key for key in record if key not in FIXED_FIELDS]
        if names is None:
            names = metrics
        elif metrics != names:
            raise DataError(f"{path}, line {number}: metrics {metrics}, but line 1 has {names}")
        for name in names:
            value = record[name]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise DataError(f"{path}, line {number}: {name} is {value!r}, expected a finite number")
    columns = {name: np.array([record[name] for record in records], dtype=np.float64) for name in names}
    return [r["id"] for r in records], [r.get("user") for r in records], columns


def read_checked(path: str | os.PathLike, scores: Scores | None, scores_file: Path | None,
                 ids_file: Path | None) -> tuple[list[str], list[str | None], dict[str, np.ndarray]]:
    """`read`, and refused (DataError naming the file and the problem) unless it is the per-sample file of the
    run beside it: as many rows as `scores` are of, the ids of `ids_file` (golds.json or predictions.json)."""
    ids, users, columns = read(path)
    problem = per_sample_problem(Path(path), ids, scores, scores_file, ids_file)
    if problem:
        raise DataError(problem)
    return ids, users, columns


def read_variant(variant: Variant) -> tuple[list[str], list[str | None], dict[str, np.ndarray]]:
    """The per-sample file of a run variant (longlamp_runs.read_run's), checked against its scores and ids."""
    return read_checked(variant.per_sample_file, variant.scores, variant.summary_file, variant.ids_file)
