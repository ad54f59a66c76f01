"""The judge's earlier protocol, kept as `--protocol graded`: ExPerT-like, but not ExPerT (expert.py is).

For each (reference, prediction) pair (docs/evaluation.md, "The graded protocol"):

1. extraction: the judge lists each text's aspects, one "aspect: evidence" line each; at most `max_aspects` are
   kept, in the judge's order, and the prompt says so;
2. matching, both ways: each reference aspect is shown with the prediction's aspects (recall), and each
   prediction aspect with the reference's (precision); the judge rates content and style, each an integer from 0
   to the prompts file's `score_scale`, on the lines "content: N" and "style: N";
3. scores: a side's content (style) score is the mean of its aspects' ratings over `score_scale`; F1 is the
   harmonic mean of precision and recall; the run's numbers are the means over the scored examples.

No task input and no truncation. Answers are read strictly and asked again on ExPerT's schedule (protocol.py);
after the last try an example whose reference has no readable aspect line is left out of the means and counted,
a prediction's stops the run (`JudgeFailure`), and an unreadable rating counts 0 for both criteria, counted.
"""

from __future__ import annotations

import statistics
from typing import Sequence

from evaluation.judges.expert_parsing import GRADED_CRITERIA as CRITERIA
from evaluation.judges.expert_parsing import read_graded_aspects, read_graded_ratings
from evaluation.judges.protocol import Ask, Prompts, read_answers, read_extractions

DEFAULT_MAX_ASPECTS = 8
DEFAULT_MAX_NEW_TOKENS = 256
PARTS = ("precision", "recall", "f1")


def extraction(prompts: Prompts, text: str, max_aspects: int) -> str:
    return prompts.render("extract", text=text.strip(), max_aspects=max_aspects)


def matching(prompts: Prompts, aspect: str, candidates: Sequence[str]) -> str:
    listed = "\n".join(f"{number}. {candidate}" for number, candidate in enumerate(candidates, 1))
    return prompts.render("match", aspect=aspect, candidates=listed)


def side_scores(ratings: Sequence[dict | None], scale: int) -> dict[str, float]:
    """The mean rating of a side's aspects per criterion, over scale; an unreadable rating counts 0, and a side
    without aspects scores 0."""
    return {name: statistics.fmean([(r or {}).get(name, 0) / scale for r in ratings]) if ratings else 0.0
            for name in CRITERIA}


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def judge(references: Sequence[str], predictions: Sequence[str], ask: Ask, prompts: Prompts,
          max_aspects: int = DEFAULT_MAX_ASPECTS, format_retries: int = 100) -> list[dict]:
    """Each pair's record, in order ({"excluded": reason} when the reference's aspects could not be read). A
    blank prediction has no aspects without asking; an aspect facing no aspects scores 0 without asking."""
    def read_extraction(message: str, answer: str):
        return read_graded_aspects(answer, max_aspects)

    def prediction(i: int) -> str | None:
        return extraction(prompts, predictions[i], max_aspects) if predictions[i].strip() else None

    found = read_extractions([extraction(prompts, text, max_aspects) for text in references], prediction,
                             read_extraction, ask, format_retries)
    sides = {i: found.sides(i) for i in found.kept}

    def questions(own: list, other: list) -> list[str]:
        return [matching(prompts, aspect, other) for aspect in own] if other else []

    asked = [q for ref, pred in sides.values() for q in questions(ref, pred) + questions(pred, ref)]
    rated, _ = read_answers(asked, lambda q, a: read_graded_ratings(a, prompts.score_scale), ask,
                            "matching aspects", format_retries)

    def ratings(own: list, other: list) -> list:  # nothing to match against: 0, without asking
        if not other:
            return [dict.fromkeys(CRITERIA, 0) for _ in own]
        return [rated.get(q) for q in questions(own, other)]

    records = []
    for i in range(len(references)):
        if i not in sides:
            records.append({"excluded": f"the judge's aspects of the reference could not be read in "
                                        f"{found.reference_tries[found.references[i]]} tries"})
            continue
        ref, pred = sides[i]
        recall, precision = ratings(ref, pred), ratings(pred, ref)
        p, r = side_scores(precision, prompts.score_scale), side_scores(recall, prompts.score_scale)
        records.append({
            "reference_aspects": ref, "prediction_aspects": pred, "recall_ratings": recall,
            "precision_ratings": precision,
            **{name: {"precision": p[name], "recall": r[name], "f1": f1(p[name], r[name])} for name in CRITERIA},
            "unreadable": {"ratings": sum(rating is None for rating in recall + precision)}})
    return records


def summary(records: Sequence[dict]) -> dict:
    """The run's means per criterion over the scored examples (None when none is), and what was left out or
    unreadable. Records carry their example's "id"."""
    scored = [r for r in records if "excluded" not in r]
    means = {name: {part: statistics.fmean(r[name][part] for r in scored) for part in PARTS} if scored else None
             for name in CRITERIA}
    excluded = [r["id"] for r in records if "excluded" in r]
    return {**means, "examples": len(records), "scored_examples": len(scored),
            "unreadable_references": {"count": len(excluded), "ids": excluded},
            "unreadable": {"ratings": sum(r["unreadable"]["ratings"] for r in scored)},
            "aspects": {"reference": sum(len(r["reference_aspects"]) for r in scored),
                        "prediction": sum(len(r["prediction_aspects"]) for r in scored),
                        "rated": sum(len(r["recall_ratings"]) + len(r["precision_ratings"]) for r in scored)}}


def report_lines(scores: dict) -> list[str]:
    """What judge.py prints."""
    lines = []
    for name in CRITERIA:
        values = scores[name]
        lines.append(f"{name}: " + ("no example scored" if values is None else
                                    "  ".join(f"{part} {values[part]:.4f}" for part in PARTS)))
    left = scores["unreadable_references"]["count"]
    lines.append(f"examples scored: {scores['scored_examples']} of {scores['examples']} ({left} left out: the "
                 f"judge's aspects of their reference could not be read)")
    lines.append(f"unreadable ratings after every retry: {scores['unreadable']['ratings']} (scored 0)")
    return lines
