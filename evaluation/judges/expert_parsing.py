"""Strict readers of the LLM judge's answers: a value is read only from the form its prompt asks for.

Every reader returns the value or None, and None means *unreadable*: the protocol asks again (see
`protocol.read_answers`), never reads it as 0, false or "no aspects". What is accepted, exactly
(docs/evaluation.md, "What an answer must look like"):

- **JSON answers** (the `expert` protocol). Its prompts end by opening a ```json block, as ExPerT's do. An answer
  is: optional white space; optionally the block opened again (```` ``` ```` or ```` ```json ````, as a chat model
  writes it); one JSON value; optional white space; then the end of the answer or a closing ```` ``` ````, after
  which nothing is read (ExPerT generates with the stop string ```` ``` ````, so it never sees what follows).
  The JSON is RFC 8259 as Python's `json` reads it with `strict=False` (a raw line break inside a string is
  kept, as ExPerT reads it), except that NaN and Infinity and an object with a repeated key are refused. Text
  before the value (a preamble) or after it other than the closing fence, a second value, another fence
  language, JSON5 (single quotes, trailing commas, comments) and Python's `True`/`None` are unreadable.
- **Aspects** (`read_aspects`): a JSON list (empty allowed) of objects, each with "aspect" (a string that is not
  blank), "description" (a string) and "evidence" (a list of at least one string, none blank); other keys are
  ignored.
- **A match** (`read_match`): a JSON object whose "is_matched" is `true` or `false`; when `true`,
  "matched_aspect" must be one of the listed titles, character for character (ExPerT looks it up so and asks
  again otherwise). "reason" is kept when it is a string.
- **A verdict** (`read_verdict`): a JSON object with "is_matched" `true` or `false` and a "reason" key (ExPerT
  reads both). `null`, strings such as "true" or "yes", and numbers are unreadable.
- **Graded ratings** (`read_graded_ratings`): a line that is, once its surrounding spaces are removed, exactly
  `content: N` and one that is exactly `style: N` (either word in any case, spaces around the colon allowed), N
  written in ASCII digits and at most the scale; each line once. Other lines are ignored. So `Content (0-2): 2`,
  `content: <0, 1 or 2> 2`, `**content**: 2`, `content: 1.5`, `content: -1` and `content: 2/2` are not rating
  lines, and an answer without one valid line per criterion, or with two for one criterion, is unreadable.
- **Graded aspects** (`read_graded_aspects`): the lines of the form `aspect: evidence` (a bullet, a number or
  `**bold**` around the aspect tolerated); other lines are not aspects. None when there is no such line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Collection

_OPENED = re.compile(r"```(?:json)?")  # the block opened again, right at the start
_CLOSING = "```"
_GRADED_ASPECT = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])?\s*\**([^:\n*]{1,80}?)\**\s*:\s*(\S.*?)\s*$")
_RATING_LINE = re.compile(r"(content|style)\s*:\s*([0-9]+)", re.IGNORECASE)
GRADED_CRITERIA = ("content", "style")


class _Unreadable(ValueError):
    pass


def _no_repeated_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Unreadable("a key repeated in one object")
    return dict(pairs)


def _no_constants(name: str):
    raise _Unreadable(f"{name} is not JSON")


_DECODER = json.JSONDecoder(strict=False, object_pairs_hook=_no_repeated_keys, parse_constant=_no_constants)


def json_answer(answer: str) -> tuple[bool, object]:
    """(True, the value) of an answer holding one JSON value in the form the module docstring states, else
    (False, None): a JSON `null` is a readable value, so readability is returned apart."""
    text = answer.lstrip()
    opened = _OPENED.match(text)
    if opened:
        text = text[opened.end():].lstrip()
    try:
        value, end = _DECODER.raw_decode(text)
    except ValueError:  # json.JSONDecodeError and _Unreadable
        return False, None
    rest = text[end:].lstrip()
    if rest and not rest.startswith(_CLOSING):
        return False, None
    return True, value


@dataclass(frozen=True)
class Aspect:
    """One atomic aspect of a text, as the judge extracted it: a title, a description, evidence sentences."""

    title: str
    description: str
    evidence: tuple[str, ...]

    def record(self) -> dict:
        return {"aspect": self.title, "description": self.description, "evidence": list(self.evidence)}


@dataclass(frozen=True)
class Match:
    """A matching answer: whether the aspect has a match in the list, which one (its title), and why."""

    is_matched: bool
    matched_aspect: str | None
    reason: str | None


@dataclass(frozen=True)
class Verdict:
    """A content or style answer on a matched pair's evidence."""

    is_matched: bool
    reason: object


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def read_aspects(answer: str) -> list[Aspect] | None:
    """The aspects of an extraction answer (possibly none), or None when unreadable."""
    ok, value = json_answer(answer)
    if not ok or not isinstance(value, list):
        return None
    aspects = []
    for item in value:
        if not isinstance(item, dict):
            return None
        title, description, evidence = item.get("aspect"), item.get("description"), item.get("evidence")
        if not _text(title) or not isinstance(description, str):
            return None
        if not isinstance(evidence, list) or not evidence or not all(_text(sentence) for sentence in evidence):
            return None
        aspects.append(Aspect(title, description, tuple(evidence)))
    return aspects


def read_match(answer: str, titles: Collection[str]) -> Match | None:
    """A matching answer against the candidates' `titles`, or None when unreadable."""
    ok, value = json_answer(answer)
    if not ok or not isinstance(value, dict) or not isinstance(value.get("is_matched"), bool):
        return None
    reason = value.get("reason") if isinstance(value.get("reason"), str) else None
    if not value["is_matched"]:
        return Match(False, None, reason)
    matched = value.get("matched_aspect")
    if not isinstance(matched, str) or matched not in titles:
        return None
    return Match(True, matched, reason)


def read_verdict(answer: str) -> Verdict | None:
    """A content or style answer, or None when unreadable."""
    ok, value = json_answer(answer)
    if not ok or not isinstance(value, dict) or not isinstance(value.get("is_matched"), bool):
        return None
    if "reason" not in value:
        return None
    return Verdict(value["is_matched"], value["reason"])


def read_graded_ratings(answer: str, scale: int) -> dict[str, int] | None:
    """{"content": n, "style": n} from the answer's whole rating lines, or None when unreadable."""
    ratings: dict[str, int] = {}
    for line in answer.splitlines():
        found = _RATING_LINE.fullmatch(line.strip())
        if not found:
            continue
        name = found.group(1).lower()
        if name in ratings:
            return None
        ratings[name] = int(found.group(2))
    if set(ratings) != set(GRADED_CRITERIA) or any(value > scale for value in ratings.values()):
        return None
    return {name: ratings[name] for name in GRADED_CRITERIA}


def read_graded_aspects(answer: str, max_aspects: int) -> list[str] | None:
    """The "aspect: evidence" lines of a graded extraction answer (the first max_aspects, each once), or None
    when there is not one."""
    aspects: list[str] = []
    for line in answer.splitlines():
        found = _GRADED_ASPECT.match(line)
        if found:
            aspect = f"{found.group(1).strip()}: {found.group(2)}"
            if aspect not in aspects:
                aspects.append(aspect)
    return aspects[:max_aspects] or None
