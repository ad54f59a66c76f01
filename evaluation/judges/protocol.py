"""What the LLM judge's two protocols share: the prompts file, ExPerT's retry schedule and the loop that asks
until an answer can be read.

A protocol (`expert`, ExPerT's, the default; `graded`, this toolkit's earlier one) builds its prompts from one
section of the prompts file, sends them through `ask` and reads every answer with a strict reader
(`expert_parsing`). An answer that cannot be read is asked again as ExPerT asks again: try 0 greedy, then
sampled with top_p 0.95 at a temperature 0.1 higher each try, up to 1.1, for `format_retries` retries (ExPerT's
`max_retries`, 100). What a protocol does with what is still unread after the last try is its own (expert.py).
"""

from __future__ import annotations

import hashlib
import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

logger = logging.getLogger(__name__)

DEFAULT_PROMPTS = Path(__file__).with_name("prompts.yaml")
DEFAULT_FORMAT_RETRIES = 100  # ExPerT's max_retries: 101 tries in all
RETRY_TOP_P = 0.95
LAST_TEMPERATURE_STEP = 11  # ExPerT's temperatures: 0.0, 0.1, ..., 1.0, then 1.1 for every later try
# Each protocol's prompts (a section of the prompts file) and the fields each must use.
PROMPT_FIELDS = {
    "expert": {"extract": ("input", "text"), "match": ("title", "description", "candidates"),
               "content": ("title", "description", "evidence_1", "evidence_2"), "style": ("evidence_1", "evidence_2")},
    "graded": {"extract": ("text", "max_aspects"), "match": ("aspect", "candidates")},
}
PROTOCOLS = tuple(PROMPT_FIELDS)

T = TypeVar("T")


class JudgeFailure(ValueError):
    """The judge could not give a readable answer where the protocol stops the run (as ExPerT stops)."""


@dataclass(frozen=True)
class Attempt:
    """One try of a question: its number (0 the first) and the decoding ExPerT uses for it (temperature 0:
    greedy; top_p applies when sampling)."""

    number: int
    temperature: float
    top_p: float


def attempt(number: int) -> Attempt:
    """Try `number` of ExPerT's schedule. ExPerT adds 0.1 to the temperature after each round while it is below
    1.0; its float sum reaches 1.0 as 0.9999999999999999, so it steps once more, to 1.0999999999999999, and stays.
    Here the same steps are exact tenths: 0.0, 0.1, ..., 1.0, 1.1, 1.1, ..."""
    return Attempt(number, min(number, LAST_TEMPERATURE_STEP) / 10, RETRY_TOP_P)


# ask(messages, what, attempt, readable) -> one answer per message. `readable(message, answer)` says whether the
# protocol can read an answer: the judge's cache keeps only those (an unread answer is asked again next run).
Ask = Callable[[Sequence[str], str, Attempt, Callable[[str, str], bool]], list[str]]


def read_answers(messages: Sequence[str], read: Callable[[str, str], T | None], ask: Ask, what: str,
                 format_retries: int) -> tuple[dict[str, T], dict[str, int]]:
    """Each distinct message's reading, asked until `read(message, answer)` is not None or format_retries + 1
    tries are spent; a message never read is absent from the first dict. The second gives each message's tries."""
    readings: dict[str, T] = {}
    tries: dict[str, int] = {}
    pending = list(dict.fromkeys(messages))
    for number in range(format_retries + 1):
        if not pending:
            break
        current = attempt(number)
        answers = ask(pending, what, current, lambda message, answer: read(message, answer) is not None)
        unread = []
        for message, answer in zip(pending, answers):
            tries[message] = number + 1
            value = read(message, answer)
            if value is None:
                unread.append(message)
            else:
                readings[message] = value
        if unread:
            logger.info("%s: %d of %d answers unreadable at try %d (temperature %g)", what, len(unread),
                        len(pending), number + 1, current.temperature)
        pending = unread
    return readings, tries


@dataclass
class Extractions:
    """Both sides' extraction readings: by question, which examples are kept (their reference was read), each
    kept example's prediction question (none for a blank prediction) and the tries each reference took."""

    readings: dict
    kept: list[int]
    references: list[str]
    predictions: dict[int, str]
    reference_tries: dict[str, int]

    def sides(self, i: int) -> tuple:
        """Example i's (reference, prediction) readings; a blank prediction's is []."""
        question = self.predictions.get(i)
        return self.readings[self.references[i]], self.readings[question] if question is not None else []


def read_extractions(references: Sequence[str], prediction: Callable[[int], str | None],
                     read: Callable[[str, str], T | None], ask: Ask, format_retries: int) -> Extractions:
    """The references' extraction questions read first; then, for the examples whose reference was read, the
    question `prediction(i)` (None: nothing to ask). A prediction never read stops the run (as ExPerT stops)."""
    readings, tries = read_answers(references, read, ask, "extracting the references' aspects", format_retries)
    kept = [i for i, question in enumerate(references) if question in readings]
    predictions = {i: question for i in kept if (question := prediction(i)) is not None}
    found, _ = read_answers([q for q in predictions.values() if q not in readings], read, ask,
                            "extracting the predictions' aspects", format_retries)
    readings.update(found)
    failed = [i for i, question in predictions.items() if question not in readings]
    if failed:
        raise JudgeFailure(f"the judge's aspects of {len(failed)} prediction(s) could not be read in "
                           f"{format_retries + 1} tries (examples at positions {failed[:5]}); the run stops, as "
                           "ExPerT's does, and the answers read so far are cached")
    return Extractions(readings, kept, list(references), predictions, tries)


@dataclass(frozen=True)
class Prompts:
    """One protocol's prompts as read from the prompts file, with the whole file's sha256 for the record."""

    protocol: str
    templates: dict
    score_scale: int | None
    path: str
    sha256: str

    def render(self, name: str, **fields) -> str:
        return self.templates[name].format(**fields)


def load_prompts(path: str | Path | None = None, protocol: str = "expert") -> Prompts:
    """The `protocol` section of a prompts file (default: the packaged prompts.yaml); ValueError naming the file
    and key otherwise. Each prompt must use each of its fields (the `expert` extraction its {input} and {text})."""
    import yaml

    if protocol not in PROMPT_FIELDS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    path = Path(path or DEFAULT_PROMPTS)
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw.decode("utf-8"))
    except OSError as error:
        raise ValueError(f"--prompts_file {path}: cannot read the file ({error.strerror})") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"--prompts_file {path}: not a readable YAML file ({error})") from None
    fields_of = PROMPT_FIELDS[protocol]
    section = data.get(protocol) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ValueError(f"--prompts_file {path}: expected a mapping '{protocol}' with the keys "
                         f"{', '.join(fields_of)}{', score_scale' if protocol == 'graded' else ''}")
    templates = {}
    for key, fields in fields_of.items():
        where = f"--prompts_file {path}: '{protocol}.{key}'"
        template = section.get(key)
        if not isinstance(template, str) or not template.strip():
            raise ValueError(f"{where} must be a non-empty string")
        wanted = ", ".join("{" + name + "}" for name in fields)
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
            template.format(**{name: "" for name in fields})
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"{where} may use only the fields {wanted} ({error!r}); write a literal brace as "
                             "{{ or }}") from None
        if used != set(fields):
            raise ValueError(f"{where} must use each of the fields {wanted}, and only those; it uses "
                             f"{', '.join('{' + name + '}' for name in sorted(used)) or 'none'}")
        templates[key] = template
    scale = section.get("score_scale")
    if protocol == "graded" and (not isinstance(scale, int) or isinstance(scale, bool) or scale < 1):
        raise ValueError(f"--prompts_file {path}: 'graded.score_scale' must be an integer of at least 1, "
                         f"got {scale!r}")
    return Prompts(protocol, templates, scale if protocol == "graded" else None, str(path),
                   hashlib.sha256(raw).hexdigest())
