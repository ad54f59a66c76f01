"""Users of a split, and a user's profile turned into task examples (what a per-user adapter learns from).

A profile item becomes one example of the task: its output field (an abstract, a review, a post, an email body)
is the target, and the input is the task's own input template filled from the item's other fields, so the
adapter learns the mapping the task asks for, in this user's voice. Template fields that a profile item lacks
(the abstract task's keyword list, the email task's opening words, which are part of the target) are left
empty rather than invented. The example's profile is the user's earlier items (OPPU's +RAG retrieves from the
history before the item, never after it), for prompts with retrieval.

A user's profile never holds a split row's answer: `leak_free` is the one filter every per-user method reads its
profile through (adapters, style vectors, profile summaries, style similarity's author vectors). A temporal split's
later rows carry profiles that can hold an earlier row's target; trained or summarised on, that gold would leak
into the evaluation. OPPU likewise trains on the history before all of a user's queries.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from longlamp_tasks import Task, field_text

# Template placeholders whose value a profile item holds under another name (the email task's subject).
ITEM_FIELD_OF_PLACEHOLDER = {"subject": "title"}


@dataclass
class User:
    """One user of a split: its rows (the examples to predict for), its profile (each item once, none of them a
    row's answer or dated at or after the user's first query) and how many items were left out for that."""

    user_id: str
    rows: list[dict] = field(default_factory=list)
    profile: list[dict] = field(default_factory=list)
    left_out: int = 0


def _same_text(text: str) -> str:
    return " ".join(text.split())


def gold_texts(rows: Iterable[Mapping]) -> frozenset[str]:
    """The answers of the evaluated rows (whitespace-normalised), which no profile item may equal."""
    return frozenset(_same_text(row["output"]) for row in rows
                     if isinstance(row.get("output"), str) and row["output"].strip())


def _date(value):
    """A comparable date: a number (a year) or an ISO-like string; None when there is none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    return float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else text


def first_query_date(task: Task, rows: Iterable[Mapping]):
    """The earliest date among `rows`, when the task has a date field and the rows carry it (None otherwise)."""
    dates = [_date(row.get(task.date_field)) for row in rows] if task.date_field else []
    dates = [d for d in dates if d is not None]
    return min(dates, key=lambda d: (isinstance(d, str), d)) if dates else None


def leak_free(task: Task, items: Iterable[Mapping], golds: frozenset[str], own: Iterable[str] = (),
              before=None) -> tuple[list[dict], int]:
    """(the items a per-user method may read, how many were left out): an item whose output-field text equals an
    evaluated row's answer (`gold_texts`) or contains one of the user's own rows' answers (`own`: an email's gold
    is the rest of a body that a later profile holds whole), or dated at or after `before` (where both carry a date
    of one kind), is left out."""
    own = [gold for gold in own if gold]
    kept, left_out = [], 0
    for item in items:
        text = _same_text(field_text(item.get(task.output_field)))
        date = _date(item.get(task.date_field)) if task.date_field and before is not None else None
        late = date is not None and isinstance(date, str) == isinstance(before, str) and date >= before
        if (text and (text in golds or any(gold in text for gold in own))) or late:
            left_out += 1
        else:
            kept.append(dict(item))
    return kept, left_out


def group_users(rows: Iterable[Mapping], task: Task, source: str = "the data") -> list[User]:
    """The split's users, sorted by id (so every process and every restart sees the same order). A temporal
    user's rows carry overlapping profiles: the union is kept, in first-seen order, less what `leak_free` leaves
    out (any row's answer, anything dated at or after the user's first query)."""
    rows = list(rows)
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
    golds = gold_texts(rows)
    for user in users.values():
        user.profile, user.left_out = leak_free(task, user.profile, golds, gold_texts(user.rows),
                                                first_query_date(task, user.rows))
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


def time_order(task: Task, items: Sequence[Mapping]) -> list[int]:
    """Positions of `items` from oldest to newest: by the task's date field when every item has one, otherwise in
    profile order (which is time order in LongLaMP's data)."""
    dates = [_date(item.get(task.date_field)) for item in items] if task.date_field else []
    if dates and all(d is not None for d in dates) and len({isinstance(d, str) for d in dates}) == 1:
        return sorted(range(len(items)), key=lambda i: dates[i])
    return list(range(len(items)))


def first_words(item: Mapping, limit: int) -> dict:
    """The item with each text field longer than `limit` whitespace-separated words cut after its `limit`-th word
    (OPPU cuts every field of a profile item to 768 words); the whitespace it keeps is the text's own."""
    def cut(value):
        if not isinstance(value, str):
            return value
        found = re.match(rf"\s*(?:\S+\s+){{{limit - 1}}}\S+", value)
        return value[:found.end()] if found and value[found.end():].strip() else value

    return {key: cut(value) for key, value in item.items()}


def profile_examples(task: Task, user: User, max_words: int | None = None) -> list[dict]:
    """One task example per profile item that has a target text; its profile is the user's items before it in time
    (OPPU's +RAG retrieves from the earlier history only). `max_words`: every field cut to that many words first."""
    profile = [first_words(item, max_words) for item in user.profile] if max_words else user.profile
    order = time_order(task, profile)
    earlier = {position: [profile[i] for i in order[:rank]] for rank, position in enumerate(order)}
    examples = []
    for index, item in enumerate(profile):
        target = field_text(item.get(task.output_field)).strip()
        if not target:
            continue
        examples.append({"id": f"{user.user_id}-profile-{index}", "input": item_input(task, item), "output": target,
                         "profile": earlier[index]})
    return examples


def user_folder_name(user_id: str) -> str:
    """A file-system-safe, collision-free folder name for a user id (readable prefix, digest of the whole id)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", user_id)[:60].lstrip(".") or "user"
    return f"{readable}-{hashlib.sha256(user_id.encode()).hexdigest()[:10]}"
