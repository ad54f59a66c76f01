"""Scorer task names: one per LongLaMP task and setting, e.g. "LongLaMP_product_review_user".

The canonical names come from `longlamp_tasks.scorer_task_name`. Aliases are accepted wherever a task name is
read (the --task_name flag, the "task" field of gold and prediction files): any case, "-" or spaces for "_",
with or without the "LongLaMP_" prefix, the dataset's config names ("product_review_temporal"), and a bare task
("product_review"), which means the user setting as on the benchmark's site.
"""

from __future__ import annotations

import re

from longlamp_tasks import SETTINGS, TASKS, parse_config_name, scorer_task_name

_PREFIX = re.compile(r"^longlamp[_/]", re.IGNORECASE)


def task_names() -> list[str]:
    """Every canonical scorer task name."""
    return [scorer_task_name(task, setting) for task in TASKS.values() for setting in SETTINGS]


def canonical_task_name(name: str) -> str:
    """The canonical scorer name for `name` or one of its aliases; ValueError listing the names otherwise."""
    config = _PREFIX.sub("", re.sub(r"[\s-]+", "_", name.strip())).lower()
    try:
        task, setting = parse_config_name(config)
    except ValueError:
        raise ValueError(f"unknown LongLaMP task name {name!r}; expected one of: {', '.join(task_names())}") from None
    return scorer_task_name(task, setting)
