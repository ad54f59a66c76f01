"""ExPerT (Salemi, Killingback and Zamani, arXiv 2501.14956; github.com/alirezasalemi7/ExPerT), the LLM judge's
default protocol, reproduced from its source: `expert_score/aspects/extraction.py`, `matching/match.py`,
`matching/utils.py` and `utils/json_parsing.py`. For each example (the user's prompt, the reference, the
prediction):

1. extraction: each text is cut to `max_text_tokens` (512) of the judge's tokenizer, its double quotes turned to
   spaces, and shown with the user's prompt; the judge lists its atomic aspects as JSON, each a title, a
   description and evidence sentences from the text;
2. matching, both ways: each reference aspect is shown (title and description) with the prediction's aspects
   (recall), each prediction aspect with the reference's (precision); the judge says whether one matches and
   which (its title);
3. verdicts: for each matched pair, one question on the two aspects' evidence for content (with the asking
   aspect's title and description) and one for style, each true or false;
4. scores: per side, each variant is the share of that side's aspects (distinct titles) that are matched and
   pass it: content_only (content true), style_only (style true), content_and_style, content_or_style, and
   content_style_average (half a point for each); F1 is their harmonic mean (0 when both are 0); the run's
   numbers are the plain means of the examples' values, summed as ExPerT sums them.

Every answer is read strictly (`expert_parsing`) and asked again on ExPerT's schedule until read
(`protocol.read_answers`). What stays unread after the last try is handled as ExPerT handles it, except the
reference: an example whose reference's aspects cannot be read is left out of the means and counted (ExPerT
stops the run); a prediction's unreadable aspects stop the run with `JudgeFailure` (as in ExPerT); an unreadable
match counts as no match, an unreadable verdict as false, and both are counted (ExPerT's `ignore_on_fail`).
docs/evaluation.md, "Differences from ExPerT", lists every difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from evaluation.judges.expert_parsing import Aspect, Match, read_aspects, read_match, read_verdict
from evaluation.judges.protocol import Ask, Prompts, read_answers, read_extractions

DEFAULT_MAX_TEXT_TOKENS = 512  # ExPerT's max_generated_output_length
DEFAULT_MAX_NEW_TOKENS = 2048  # per answer; ExPerT allows 8096 (its max_evaluator_length)
VARIANTS = ("content_only", "style_only", "content_and_style", "content_or_style", "content_style_average")
PARTS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class Shown:
    """A text as the judge is shown it, and whether the cut shortened it."""

    text: str
    truncated: bool


def truncate(text: str, tokenizer, max_tokens: int) -> Shown:
    """ExPerT's cut: the first `max_tokens` ids of `tokenizer(text)` (special tokens counted, as ExPerT's call
    adds them), decoded with special tokens skipped; with no tokenizer (ExPerT's fallback, used here for a
    served judge without --tokenizer) the first `max_tokens` words joined by single spaces. Then each double
    quote becomes a space. ExPerT decodes even a text shorter than the limit, and so does this."""
    if tokenizer is None:
        words = text.split()
        kept, truncated = " ".join(words[:max_tokens]), len(words) > max_tokens
    else:
        ids = tokenizer(text)["input_ids"]
        kept, truncated = tokenizer.decode(ids[:max_tokens], skip_special_tokens=True), len(ids) > max_tokens
    return Shown(kept.replace('"', " "), truncated)


def candidates(aspects: Sequence[Aspect]) -> str:
    """The other side's aspects as the matching prompt lists them (every one, a repeated title too)."""
    return "\n\n".join(f"aspect title: {a.title}\naspect detail: {a.description}" for a in aspects)


def by_title(aspects: Sequence[Aspect]) -> dict[str, Aspect]:
    """A side's aspects by title: ExPerT keys them so, so a title listed twice counts once, as its last entry."""
    return {aspect.title: aspect for aspect in aspects}


def evidence(aspect: Aspect) -> str:
    return "\n".join(aspect.evidence)


def side_scores(entries: Sequence[dict]) -> dict[str, float]:
    """One side's five variants from its entries ({"matched", "content", "style"} per distinct title), summed in
    steps of 1/n (0.5/n for the average) as ExPerT sums them, so the floats are ExPerT's to the last bit."""
    n = len(entries)
    sums = dict.fromkeys(VARIANTS, 0.0)
    for entry in entries:
        if not entry["matched"]:
            continue
        content, style = entry["content"], entry["style"]
        if content:
            sums["content_only"] += 1 / n
            sums["content_style_average"] += 0.5 / n
        if style:
            sums["style_only"] += 1 / n
            sums["content_style_average"] += 0.5 / n
        if content and style:
            sums["content_and_style"] += 1 / n
        if content or style:
            sums["content_or_style"] += 1 / n
    return sums


def f1(precision: float, recall: float) -> float:
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def example_scores(recall: Sequence[dict], precision: Sequence[dict]) -> dict[str, dict[str, float]]:
    r, p = side_scores(recall), side_scores(precision)
    return {name: {"precision": p[name], "recall": r[name], "f1": f1(p[name], r[name])} for name in VARIANTS}


def judge(inputs: Sequence[str], references: Sequence[str], predictions: Sequence[str], ask: Ask, prompts: Prompts,
          tokenizer=None, max_text_tokens: int = DEFAULT_MAX_TEXT_TOKENS, format_retries: int = 100) -> list[dict]:
    """Each example's record, in order: {"excluded": reason} when its reference's aspects could not be read,
    else its aspects, matches, verdicts, scores and what stayed unreadable. A blank prediction has no aspects
    without a call; a side facing no aspects has no match without a call."""
    shown_refs = [truncate(text, tokenizer, max_text_tokens) for text in references]
    shown_preds = [truncate(text, tokenizer, max_text_tokens) if text.strip() else None for text in predictions]

    def extraction(task_input: str, shown: Shown) -> str:
        return prompts.render("extract", input=task_input, text=shown.text)

    def read_extraction(message: str, answer: str):
        return read_aspects(answer)

    def prediction(i: int) -> str | None:
        return extraction(inputs[i], shown_preds[i]) if shown_preds[i] is not None else None

    found = read_extractions([extraction(i, s) for i, s in zip(inputs, shown_refs)], prediction, read_extraction,
                             ask, format_retries)

    # matching, both ways: (example, side, title) -> the question, or None when the other side has no aspects
    sides = {}
    for i in found.kept:
        ref, pred = found.sides(i)
        sides[i] = {"recall": (ref, pred), "precision": (pred, ref)}
    titles_of: dict[str, set[str]] = {}
    questions = {}
    for i, pair in sides.items():
        for side, (own, other) in pair.items():
            for title, aspect in by_title(own).items():
                question = None
                if other:
                    question = prompts.render("match", title=aspect.title, description=aspect.description,
                                              candidates=candidates(other))
                    titles_of.setdefault(question, {a.title for a in other})
                questions[i, side, title] = question
    matches, _ = read_answers([q for q in questions.values() if q], lambda q, a: read_match(a, titles_of[q]), ask,
                              "matching aspects", format_retries)

    # verdicts on each matched pair's evidence: content and style
    verdict_questions = {}
    for (i, side, title), question in questions.items():
        match: Match | None = matches.get(question) if question else None
        if match is not None and match.is_matched:
            own, other = sides[i][side]
            mine, theirs = by_title(own)[title], by_title(other)[match.matched_aspect]
            verdict_questions[i, side, title] = (
                prompts.render("content", title=mine.title, description=mine.description,
                               evidence_1=evidence(mine), evidence_2=evidence(theirs)),
                prompts.render("style", evidence_1=evidence(mine), evidence_2=evidence(theirs)))
    verdicts, _ = read_answers([q for pair in verdict_questions.values() for q in pair],
                               lambda q, a: read_verdict(a), ask, "content and style verdicts", format_retries)

    records = []
    for i in range(len(references)):
        if i not in sides:
            records.append({"excluded": f"the judge's aspects of the reference could not be read in "
                                        f"{found.reference_tries[found.references[i]]} tries",
                            "truncated": {"reference": shown_refs[i].truncated}})
            continue
        entries, unreadable = {"recall": [], "precision": []}, {"matching": 0, "verdicts": 0}
        for side in ("recall", "precision"):
            for title in by_title(sides[i][side][0]):
                question = questions[i, side, title]
                match = matches.get(question) if question else Match(False, None, None)
                entry = {"aspect": title, "matched": False, "matched_aspect": None, "content": None, "style": None}
                if match is None:
                    unreadable["matching"] += 1
                    entry["unreadable"] = "matching"
                elif match.is_matched:
                    content, style = (verdicts.get(q) for q in verdict_questions[i, side, title])
                    unreadable["verdicts"] += (content is None) + (style is None)
                    entry.update(matched=True, matched_aspect=match.matched_aspect,
                                 content=bool(content and content.is_matched), style=bool(style and style.is_matched),
                                 reasons={"match": match.reason, "content": content and content.reason,
                                          "style": style and style.reason})
                    if content is None or style is None:
                        entry["unreadable"] = [name for name, v in (("content", content), ("style", style))
                                               if v is None]
                else:
                    entry["reasons"] = {"match": match.reason}
                entries[side].append(entry)
        ref, pred = sides[i]["recall"]
        records.append({
            "reference_aspects": [a.record() for a in ref], "prediction_aspects": [a.record() for a in pred],
            **entries, "scores": example_scores(entries["recall"], entries["precision"]), "unreadable": unreadable,
            "truncated": {"reference": shown_refs[i].truncated,
                          "prediction": bool(shown_preds[i] and shown_preds[i].truncated)}})
    return records


def mean(values: Sequence[float]) -> float:
    """ExPerT's average: a running sum in example order, divided by the count."""
    total = 0
    for value in values:
        total += value
    return total / len(values)


def summary(records: Sequence[dict]) -> dict:
    """The run's numbers: each variant's precision, recall and F1 over the scored examples (None when none is),
    and what was left out or unreadable. Records carry their example's "id"."""
    scored = [r for r in records if "excluded" not in r]
    variants = {name: {part: mean([r["scores"][name][part] for r in scored]) for part in PARTS}
                for name in VARIANTS} if scored else None
    excluded = [r["id"] for r in records if "excluded" in r]
    return {
        "variants": variants, "examples": len(records), "scored_examples": len(scored),
        "unreadable_references": {"count": len(excluded), "ids": excluded},
        "references_without_aspects": sum(not r["reference_aspects"] for r in scored),
        "unreadable": {key: sum(r["unreadable"][key] for r in scored) for key in ("matching", "verdicts")},
        "aspects": {"reference": sum(len(r["recall"]) for r in scored),
                    "prediction": sum(len(r["precision"]) for r in scored),
                    "matched_recall": sum(e["matched"] for r in scored for e in r["recall"]),
                    "matched_precision": sum(e["matched"] for r in scored for e in r["precision"])},
        "truncated": {"references": sum(r["truncated"]["reference"] for r in records),
                      "predictions": sum(r["truncated"].get("prediction", False) for r in scored)},
    }


def report_lines(scores: dict) -> list[str]:
    """What judge.py prints."""
    lines = []
    for name in VARIANTS:
        values = (scores["variants"] or {}).get(name)
        lines.append(f"{name}: " + ("no example scored" if values is None else
                                    "  ".join(f"{part} {values[part]:.4f}" for part in PARTS)))
    left = scores["unreadable_references"]["count"]
    lines.append(f"examples scored: {scores['scored_examples']} of {scores['examples']} ({left} left out: the "
                 f"judge's aspects of their reference could not be read)")
    lines.append(f"unreadable judge answers after every retry: {scores['unreadable']['matching']} matches (no "
                 f"match), {scores['unreadable']['verdicts']} verdicts (false)")
    return lines
