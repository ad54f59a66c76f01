"""Each judged example's task input, the user's prompt that ExPerT shows its judge beside the text.

Three sources, by gold id: the gold file itself, when every entry carries an "input" string; the data, read as
evaluate_llm.py reads it (`--validation_data`, `--task`, `--split`, `--data_dir`, ...), whose rows hold `input`;
or a zero-shot run's prompts.json, for the examples whose prompt is the bare task input (a run without profile
items and without a chat template written into the prompt: the prompt then begins as the task's input does).
A source that lacks an example, or whose rows disagree with the golds, is refused naming the file and id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from longlamp_errors import DataError
from longlamp_tasks import Task
from scoring.files import load_json

EXAMPLES_SHOWN = 3


def _shown(ids: Sequence[str]) -> str:
    return ", ".join(map(repr, ids[:EXAMPLES_SHOWN])) + (", ..." if len(ids) > EXAMPLES_SHOWN else "")


def from_golds(path: str, ids: Sequence[str]) -> list[str] | None:
    """The gold entries' "input" strings, in `ids` order, or None when no entry has one."""
    entries = {entry["id"]: entry for entry in load_json(path)["golds"]}
    with_input = [i for i in ids if "input" in entries[i]]
    if not with_input:
        return None
    bad = [i for i in ids if not isinstance(entries[i].get("input"), str) or not entries[i]["input"].strip()]
    if bad:
        raise DataError(f"{path}: {len(bad)} of {len(ids)} gold entries carry no task input ('input' missing, "
                             f"empty or not a string), e.g. {_shown(bad)}; every entry needs one, or none")
    return [entries[i]["input"] for i in ids]


def from_rows(rows, ids: Sequence[str], golds: Sequence[str], where: str) -> list[str]:
    """The rows' inputs for `ids`; refused when a gold id is not a row or a row's output is not the gold's (other
    data than the golds came from, compared with white space normalised)."""
    position = {example_id: index for index, example_id in enumerate(rows["id"])}
    missing = [i for i in ids if i not in position]
    if missing:
        raise DataError(f"{where}: {len(missing)} of {len(ids)} gold ids are not in the data, e.g. "
                             f"{_shown(missing)}; give the data the golds come from")
    outputs = rows["output"] if "output" in rows.column_names else [None] * len(rows)
    differ = [i for i, gold in zip(ids, golds) if outputs[position[i]] is not None
              and " ".join(outputs[position[i]].split()) != " ".join(gold.split())]
    if differ:
        raise DataError(f"{where}: the output of {len(differ)} rows differs from the gold of the same id, e.g. "
                             f"{_shown(differ)}; give the data the golds come from")
    inputs = rows["input"]
    return [inputs[position[i]] for i in ids]


def from_prompts_file(path: str | Path, ids: Sequence[str], task: Task) -> list[str]:
    """The prompts of a zero-shot run's prompts.json as task inputs, when each is the bare task input."""
    records = load_json(path)
    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str)
                                                and isinstance(r.get("prompt"), str) for r in records):
        raise DataError(f"{path}: expected a zero-shot run's prompts.json, a list of {{\"id\", \"prompt\", ...}}")
    by_id = {record["id"]: record for record in records}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(f"{path}: {len(missing)} of {len(ids)} gold ids have no prompt, e.g. {_shown(missing)}")
    start = task.input_template.split("{")[0]
    with_profile = [i for i in ids if by_id[i].get("profile_items") != 0]
    if with_profile:
        raise DataError(f"{path}: the prompts of {len(with_profile)} examples hold profile items (or do not "
                             f"say how many), e.g. {_shown(with_profile)}: the task input cannot be told from them; "
                             "give the no-profile run's prompts.json or --validation_data")
    templated = [i for i in ids if not by_id[i]["prompt"].startswith(start)]
    if templated:
        raise DataError(f"{path}: {len(templated)} prompts do not begin as a {task.name} task input "
                             f"({start!r}), e.g. {_shown(templated)}: a chat template was written into them; give "
                             "--validation_data instead")
    return [by_id[i]["prompt"] for i in ids]
