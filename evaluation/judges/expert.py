"""An ExPerT-style LLM judge (Salemi et al., arXiv 2501.14956), optional and apart from the benchmark's metrics.

The protocol, for each (reference, prediction) pair (docs/evaluation.md, "LLM judge (ExPerT-style)"):

1. extraction: the judge lists each text's atomic aspects, one "aspect: evidence" line each (at most
   `max_aspects` are kept, in the judge's order);
2. matching, both ways: each reference aspect is shown with the prediction's aspects (recall), and each
   prediction aspect with the reference's (precision); the judge rates content and style, each an integer from 0
   to the prompts file's `score_scale`;
3. scores: a side's content (style) score is the mean of its aspects' ratings over `score_scale`; F1 is the
   harmonic mean of precision and recall; the run's numbers are the means over the examples.

An answer that cannot be read (a tiny or random model's garbage) never stops the run: an unreadable extraction is
"no aspects", an unreadable rating is 0 for both criteria, and both are counted and reported. The judge is reached
through `ask(messages, what) -> answers`, so this module is the protocol alone: prompts in, parsed answers, scores.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

DEFAULT_PROMPTS = Path(__file__).with_name("prompts.yaml")
DEFAULT_MAX_ASPECTS = 8
CRITERIA = ("content", "style")
PLACEHOLDERS = {"extract": ("text",), "match": ("aspect", "candidates")}
# "aspect: evidence", optionally bulleted or numbered; the aspect a short phrase without a colon.
_ASPECT = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])?\s*\**([^:\n*]{1,80}?)\**\s*:\s*(\S.*?)\s*$")
_RATING = {name: re.compile(rf"\b{name}\b\W{{0,5}}(\d+)", re.IGNORECASE) for name in CRITERIA}

Ask = Callable[[Sequence[str], str], list[str]]


@dataclass(frozen=True)
class Prompts:
    """The judge's prompts as read from one file, with the file's sha256 for the record."""

    extract: str
    match: str
    score_scale: int
    path: str
    sha256: str

    def extraction(self, text: str) -> str:
        return self.extract.format(text=text.strip())

    def matching(self, aspect: str, candidates: Sequence[str]) -> str:
        listed = "\n".join(f"{number}. {candidate}" for number, candidate in enumerate(candidates, 1))
        return self.match.format(aspect=aspect, candidates=listed)


def load_prompts(path: str | Path | None = None) -> Prompts:
    """Read a prompts file (default: the packaged prompts.yaml); ValueError naming the file and key otherwise."""
    import yaml

    path = Path(path or DEFAULT_PROMPTS)
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw.decode("utf-8"))
    except OSError as error:
        raise ValueError(f"--prompts_file {path}: cannot read the file ({error.strerror})") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"--prompts_file {path}: not a readable YAML file ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--prompts_file {path}: expected a mapping with keys extract, match and score_scale")
    for key, fields in PLACEHOLDERS.items():
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ValueError(f"--prompts_file {path}: '{key}' must be a non-empty string")
        try:
            data[key].format(**{name: "" for name in fields})
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"--prompts_file {path}: '{key}' may use only the fields "
                             f"{', '.join('{' + name + '}' for name in fields)} ({error!r}); write a literal brace "
                             "as {{ or }}") from None
    scale = data.get("score_scale")
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"--prompts_file {path}: 'score_scale' must be an integer of at least 1, got {scale!r}")
    return Prompts(data["extract"], data["match"], scale, str(path), hashlib.sha256(raw).hexdigest())


def parse_aspects(answer: str, max_aspects: int) -> list[str] | None:
    """The "aspect: evidence" lines of an extraction answer (the first max_aspects, each once), or None when
    there is not one: an unreadable answer."""
    aspects = []
    for line in answer.splitlines():
        found = _ASPECT.match(line)
        if found:
            aspect = f"{found.group(1).strip()}: {found.group(2)}"
            if aspect not in aspects:
                aspects.append(aspect)
    return aspects[:max_aspects] or None


def parse_ratings(answer: str, scale: int) -> dict[str, int] | None:
    """{"content": n, "style": n} from a matching answer (the first number after each word), or None when either
    is missing or outside 0..scale."""
    ratings = {}
    for name, pattern in _RATING.items():
        found = pattern.search(answer)
        if not found or int(found.group(1)) > scale:
            return None
        ratings[name] = int(found.group(1))
    return ratings


def side_scores(ratings: Sequence[dict | None], scale: int) -> dict[str, float]:
    """The mean rating of a side's aspects per criterion, over scale; an unreadable rating counts 0, and a side
    without aspects scores 0."""
    return {name: statistics.fmean([(r or {}).get(name, 0) / scale for r in ratings]) if ratings else 0.0
            for name in CRITERIA}


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def example_record(reference: dict, prediction: dict, recall: list, precision: list, scale: int) -> dict:
    """One example's aspects, ratings and scores (reference/prediction: {"aspects", "unreadable"})."""
    p, r = side_scores(precision, scale), side_scores(recall, scale)
    return {
        "reference_aspects": reference["aspects"], "prediction_aspects": prediction["aspects"],
        "recall_ratings": recall, "precision_ratings": precision,
        **{name: {"precision": p[name], "recall": r[name], "f1": f1(p[name], r[name])} for name in CRITERIA},
        "unreadable": {"reference_aspects": reference["unreadable"], "prediction_aspects": prediction["unreadable"],
                       "ratings": sum(rating is None for rating in recall + precision)},
    }


def judge(references: Sequence[str], predictions: Sequence[str], ask: Ask, prompts: Prompts,
          max_aspects: int = DEFAULT_MAX_ASPECTS) -> list[dict]:
    """Each pair's record (see `example_record`), in order. A blank prediction has no aspects without asking."""
    texts = list(dict.fromkeys(t for t in [*references, *predictions] if t.strip()))
    answers = ask([prompts.extraction(text) for text in texts], "extracting aspects")
    extracted = {}
    for text, answer in zip(texts, answers):
        aspects = parse_aspects(answer, max_aspects)
        extracted[text] = {"aspects": aspects or [], "unreadable": aspects is None}
    nothing = {"aspects": [], "unreadable": False}
    sides = [(extracted[ref], extracted.get(pred, nothing)) for ref, pred in zip(references, predictions)]

    def questions(own: dict, other: dict) -> list[str]:
        return [prompts.matching(aspect, other["aspects"]) for aspect in own["aspects"]] if other["aspects"] else []

    asked = list(dict.fromkeys(q for ref, pred in sides for q in questions(ref, pred) + questions(pred, ref)))
    rated = {q: parse_ratings(a, prompts.score_scale) for q, a in zip(asked, ask(asked, "matching aspects"))}

    def ratings(own: dict, other: dict) -> list:  # nothing to match against: 0, without asking
        if not other["aspects"]:
            return [dict.fromkeys(CRITERIA, 0) for _ in own["aspects"]]
        return [rated[q] for q in questions(own, other)]

    return [example_record(ref, pred, ratings(ref, pred), ratings(pred, ref), prompts.score_scale)
            for ref, pred in sides]


def summary(records: Sequence[dict]) -> dict:
    """The run's means per criterion and what could not be read, over all examples."""
    means = {name: {part: statistics.fmean(r[name][part] for r in records) for part in ("precision", "recall", "f1")}
             for name in CRITERIA}
    unreadable = {key: sum(r["unreadable"][key] for r in records)
                  for key in ("reference_aspects", "prediction_aspects", "ratings")}
    rated = sum(len(r["recall_ratings"]) + len(r["precision_ratings"]) for r in records)
    return {**means, "unreadable": unreadable, "aspects": {
        "reference": sum(len(r["reference_aspects"]) for r in records),
        "prediction": sum(len(r["prediction_aspects"]) for r in records), "rated": rated}}
