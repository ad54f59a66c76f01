"""Users of a split, and a user's profile turned into task examples (what a per-user adapter learns from).

A profile item becomes one example of the task: its output field (an abstract, a review, a post, an email body)
is the target, and the input is the task's own input template filled from the item's other fields, so the
adapter learns the mapping the task asks for, in this user's voice. Template fields that a profile item lacks
(the abstract task's keyword list, the email task's opening words, which are part of the target) are left
empty rather than invented. The example's profile is the user's other items, for prompts with retrieval.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from longlamp_tasks import Task, field_text

# Template placeholders whose value a profile item holds under another name (the email task's subject).
ITEM_FIELD_OF_PLACEHOLDER = {"subject": "title"}


@dataclass
class User:
    """One user of a split: its rows (the examples to predict for) and its profile, each item once."""

    user_id: str
    rows: list[dict] = field(default_factory=list)
    profile: list[dict] = field(default_factory=list)


def group_users(rows: Iterable[Mapping], task: Task, source: str = "the data") -> list[User]:
    """The split's users, sorted by id (so every process and every restart sees the same order). A temporal
    user's rows carry overlapping profiles: the union is kept, in first-seen order."""
    users: dict[str, User] = {}
    seen: dict[str, set] = {}
    for index, row in enumerate(rows):
        user_id = row.get(task.user_column)
        if user_id is None or user_id == "":
            raise ValueError(f"{source}: row {row.get('id', index)!r} has no {task.user_column!r} (the user column "
                             f"of {task.name}); per-user methods need to know whose row it is")
        user = users.setdefault(str(user_id), User(str(user_id)))
        user.rows.append(dict(row))
        keys = seen.setdefault(user.user_id, set())
        for item in row.get("profile") or []:
            key = tuple(sorted((k, field_text(v)) for k, v in item.items()))
            if key not in keys:
                keys.add(key)
                user.profile.append(dict(item))
    return [users[name] for name in sorted(users)]


def item_input(task: Task, item: Mapping) -> str:
    """The task input a profile item would have had: the input template filled from the item's fields."""
    values = {}
    for _, name, _, _ in string.Formatter().parse(task.input_template):
        if name is None:
            continue
        source = ITEM_FIELD_OF_PLACEHOLDER.get(name, name)
        own = source in task.profile_fields and source != task.output_field
        values[name] = field_text(item.get(source)) if own else ""
    return task.input_template.format(**values)


def profile_examples(task: Task, user: User) -> list[dict]:
    """One task example per profile item that has a target text; its profile is the user's other items."""
    examples = []
    for index, item in enumerate(user.profile):
        target = field_text(item.get(task.output_field)).strip()
        if not target:
            continue
        others = user.profile[:index] + user.profile[index + 1:]
        examples.append({"id": f"{user.user_id}-profile-{index}", "input": item_input(task, item), "output": target,
                         "profile": others})
    return examples


def user_folder_name(user_id: str) -> str:
    """A file-system-safe, collision-free folder name for a user id (readable prefix, digest of the whole id)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", user_id)[:60].lstrip(".") or "user"
    return f"{readable}-{hashlib.sha256(user_id.encode()).hexdigest()[:10]}"
