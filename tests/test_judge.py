"""The LLM judge (evaluation/judge.py, evaluation/judges/): ExPerT's protocol and the graded one.

- the strict readers on adversarial answers (code fences, preambles, JSON with extra text, null and string
  booleans, echoed templates, `Content (0-2): 2`, 1.5, -1);
- hand-computed scores of ExPerT's five variants from fixed judge answers, ExPerT's float sums, the retry
  schedule's temperatures, unreadable references left out of the means and counted;
- the cache: only readable answers are stored, a batch is regenerated whole, sampled retries are keyed apart;
- through the command: a fake served judge (fixed answers over HTTP) for retries, exclusions and a re-score with
  no call; a tiny random judge for garbage (never cached, never fatal) and a served judge answering as the local
  one; and the real SmolLM2-135M-Instruct where the demo has prepared it.
Bad files, a killed run, two instances and faulty servers: tests/test_adversarial_judge.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.judge import (
    GOLDS,
    INPUT,
    PREDICTIONS,
    TASK,
    aspect,
    cache_rows,
    fake_server,
    judge_task_files,
    many_examples,
    outputs,
    rule_judge,
    run,
    scores_of,
    served_flags,
    write_task,
)
from support.openai_server import served

from benchmark_runner.local_models import DEFAULT_OUTPUT as SMOLLM  # where set-up prepares the demo model
from evaluation import judge as judge_command
from evaluation.judges import expert, graded
from evaluation.judges.expert_parsing import (
    Match,
    Verdict,
    json_answer,
    read_aspects,
    read_graded_aspects,
    read_graded_ratings,
    read_match,
    read_verdict,
)
from evaluation.judges.protocol import attempt, load_prompts, read_answers
from generation.base import Generation, Generator
from generation.cache import CachedGenerator, GenerationCache
from generation.decoding import GenerationSettings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def task_files(tmp_path) -> tuple[Path, Path]:
    return judge_task_files(tmp_path)


# --- the readers on adversarial answers -----------------------------------------------------------------------------

@pytest.mark.parametrize("answer, expected", [
    ("content: 2\nstyle: 0", {"content": 2, "style": 0}),
    ("Content: 2\nStyle: 1", {"content": 2, "style": 1}),
    ("  content :1  \n\tSTYLE:2", {"content": 1, "style": 2}),
    ("The ratings:\ncontent: 2\nstyle: 1\nThe wording differs a little.", {"content": 2, "style": 1}),
    ("Content (0-2): 2\nStyle (0-2): 2", None),  # was read as content 0 and style 0
    ("content: <0, 1 or 2> 2\nstyle: <0, 1 or 2> 1", None),  # the template echoed: was read as 0
    ("content: 1.5\nstyle: 1", None),  # was read as 1
    ("content: -1\nstyle: 1", None),  # was read as 1
    ("content: 2/2\nstyle: 1", None),
    ("**Content** - 1, **Style**: 2.", None),
    ("**content**: 2\n**style**: 1", None),
    ("- content: 2\n- style: 1", None),
    ("content: 2, style: 1", None),
    ("content: 3\nstyle: 1", None),  # above the scale
    ("content: 1", None),
    ("content: 1\ncontent: 2\nstyle: 1", None),  # twice: which one?
    ("content: 1\ncontent: 1\nstyle: 1", None),
    ("content: \u0662\nstyle: 1", None),  # an Arabic-Indic two
    ("content: null\nstyle: null", None),
    ("yes", None),
    ("", None),
])
def test_graded_ratings_are_read_only_from_whole_lines(answer, expected):
    assert read_graded_ratings(answer, 2) == expected


VERDICT = '{"reason": "both praise the speed", "is_matched": true}'


@pytest.mark.parametrize("answer, expected", [
    (VERDICT, Verdict(True, "both praise the speed")),
    (' \n' + VERDICT + '\n', Verdict(True, "both praise the speed")),
    ('```json\n{"reason": "r", "is_matched": false}\n```', Verdict(False, "r")),  # a chat model's own block
    ('```\n{"reason": "r", "is_matched": false}```', Verdict(False, "r")),
    ('{"reason": "r", "is_matched": true}\n```\nAnything after the block is never read.', Verdict(True, "r")),
    ('```json\n{"reason": "r", "is_matched": true}\n```\nI hope this helps!', Verdict(True, "r")),
    ('{"reason": "a raw\nline break", "is_matched": false}', Verdict(False, "a raw\nline break")),
    ('{"reason": null, "is_matched": false}', Verdict(False, None)),  # ExPerT reads the reason as it is
    ('{"reason": "r", "is_matched": false, "confidence": 0.9}', Verdict(False, "r")),
    ('Here is my answer:\n```json\n' + VERDICT + '\n```', None),  # a preamble
    ('Sure! ' + VERDICT, None),
    (VERDICT + ' I am quite sure.', None),  # text after the JSON
    (VERDICT + '\n' + VERDICT, None),  # two values
    (VERDICT + '``', None),
    ('```python\n' + VERDICT + '\n```', None),
    ('{"reason": "r", "is_matched": "true"}', None),  # a string is not a boolean
    ('{"reason": "r", "is_matched": "false"}', None),  # (ExPerT's truthiness would read it as a match)
    ('{"reason": "r", "is_matched": null}', None),
    ('{"reason": "r", "is_matched": 1}', None),
    ('{"reason": "r", "is_matched": True}', None),  # Python, not JSON
    ("{'reason': 'r', 'is_matched': true}", None),  # JSON5
    ('{"reason": "r", "is_matched": true,}', None),
    ('{"reason": "r", "is_matched": true, "is_matched": false}', None),  # a repeated key
    ('{"is_matched": true}', None),  # no reason: ExPerT asks again too
    ('[' + VERDICT + ']', None),
    ('{"reason": "r", "is_matched": true', None),  # cut at the token limit
    ('null', None),
    ('', None),
    ('```json\n```', None),
])
def test_verdicts_are_read_only_from_the_json_asked_for(answer, expected):
    assert read_verdict(answer) == expected


def test_json_constants_that_are_not_json_are_unreadable():
    assert json_answer('{"a": 1}') == (True, {"a": 1}) and json_answer("null") == (True, None)
    assert json_answer('{"a": NaN}') == (False, None) and json_answer('[Infinity]') == (False, None)


@pytest.mark.parametrize("answer, expected", [
    ('{"reason": "same concept", "is_matched": true, "matched_aspect": "Power"}', Match(True, "Power", "same concept")),
    ('{"is_matched": false, "matched_aspect": ""}', Match(False, None, None)),
    ('{"is_matched": false, "matched_aspect": "Power"}', Match(False, None, None)),  # ExPerT ignores it too
    ('{"reason": "r", "is_matched": true, "matched_aspect": "power"}', None),  # not a listed title
    ('{"reason": "r", "is_matched": true, "matched_aspect": "Power "}', None),
    ('{"reason": "r", "is_matched": true, "matched_aspect": null}', None),
    ('{"reason": "r", "is_matched": true}', None),
    ('{"reason": "r", "is_matched": "no", "matched_aspect": ""}', None),
    ('The best match is Power.\n{"is_matched": true, "matched_aspect": "Power"}', None),
])
def test_a_match_must_name_a_listed_title(answer, expected):
    assert read_match(answer, {"Power", "Noise"}) == expected


ASPECT = {"aspect": "Power", "description": "how strong it is", "evidence": ["It crushes ice."]}


@pytest.mark.parametrize("answer, expected", [
    (json.dumps([ASPECT]), [("Power", "how strong it is", ("It crushes ice.",))]),
    ("[]", []),
    ("```json\n" + json.dumps([ASPECT, {**ASPECT, "aspect": "Noise", "extra": 1}]) + "\n```\nThese are all.",
     [("Power", "how strong it is", ("It crushes ice.",)), ("Noise", "how strong it is", ("It crushes ice.",))]),
    ("Here are the aspects:\n" + json.dumps([ASPECT]), None),
    (json.dumps([ASPECT]) + "\nThat is all.", None),
    (json.dumps({"aspects": [ASPECT]}), None),  # an object, not the list asked for
    (json.dumps([{**ASPECT, "evidence": []}]), None),
    (json.dumps([{**ASPECT, "evidence": "It crushes ice."}]), None),  # a string, not a list
    (json.dumps([{**ASPECT, "evidence": None}]), None),
    (json.dumps([{**ASPECT, "evidence": ["", "It crushes ice."]}]), None),
    (json.dumps([{**ASPECT, "evidence": [3]}]), None),
    (json.dumps([{k: v for k, v in ASPECT.items() if k != "description"}]), None),
    (json.dumps([{**ASPECT, "description": None}]), None),
    (json.dumps([{**ASPECT, "aspect": " "}]), None),
    (json.dumps([ASPECT, "Noise"]), None),
    (json.dumps([ASPECT])[:-5], None),  # cut at the token limit
    ("topic: a blender\ntone: happy", None),  # the graded form is not the JSON asked for
])
def test_aspects_are_read_only_from_the_json_list_asked_for(answer, expected):
    found = read_aspects(answer)
    assert (found if found is None else [(a.title, a.description, a.evidence) for a in found]) == expected


@pytest.mark.parametrize("answer, expected", [
    ("tone: warm\n* topic: ice, smoothies\n3) length: short sentences", ["tone: warm", "topic: ice, smoothies",
                                                                         "length: short sentences"]),
    ("tone: warm\ntone: warm\n", ["tone: warm"]),
    ("ĠĠ the the blender Ã§ 123", None),
    ("", None),
    (":\n: evidence without an aspect", None),
])
def test_graded_aspect_lines_are_read_and_garbage_is_unreadable(answer, expected):
    assert read_graded_aspects(answer, 8) == expected


def test_at_most_max_aspects_are_kept_and_the_graded_prompt_says_the_real_number():
    assert read_graded_aspects("\n".join(f"a{i}: e{i}" for i in range(10)), 3) == ["a0: e0", "a1: e1", "a2: e2"]
    prompts = load_prompts(protocol="graded")
    assert "at most 3 lines" in graded.extraction(prompts, "A text.", 3)
    assert "at most 8 lines" not in graded.extraction(prompts, "A text.", 3)


def test_a_bad_prompts_file_is_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text("graded:\n  score_scale: 2\n  extract: 'Text: {text} {max_aspects} {other}'\n"
                    "  match: '{aspect} {candidates}'\n")
    with pytest.raises(ValueError, match=r"prompts\.yaml: 'graded\.extract' may use only the fields \{text\}"):
        load_prompts(path, "graded")
    path.write_text("graded:\n  score_scale: 0\n  extract: '{text} {max_aspects}'\n  match: '{aspect} {candidates}'\n")
    with pytest.raises(ValueError, match="'graded.score_scale' must be an integer of at least 1, got 0"):
        load_prompts(path, "graded")
    with pytest.raises(ValueError, match="expected a mapping 'expert' with the keys extract, match, content, style"):
        load_prompts(path, "expert")
    text = expert_prompts_text().replace("Prompt: {input}\n", "")  # the task input dropped: not ExPerT's protocol
    path.write_text(text)
    with pytest.raises(ValueError, match=r"'expert\.extract' must use each of the fields \{input\}, \{text\}"):
        load_prompts(path, "expert")


def expert_prompts_text() -> str:
    return (REPO / "evaluation" / "judges" / "prompts.yaml").read_text(encoding="utf-8")


# --- ExPerT's protocol on fixed answers -----------------------------------------------------------------------------

def fake_ask(answers: dict, log: list):
    """The protocols' `ask` answering from `answers` (message -> answer, or a list: the answer of try n is the
    n-th, the last one for any later try); every (message, attempt) asked is logged."""
    def ask(messages, what, attempt_, readable):
        replies = []
        for message in messages:
            log.append((message, attempt_))
            answer = answers[message]
            replies.append(answer[min(attempt_.number, len(answer) - 1)] if isinstance(answer, list) else answer)
        return replies
    return ask


class Scenario:
    """Four examples with every judge answer fixed, built with the protocol's own prompts."""

    def __init__(self):
        self.prompts = load_prompts()
        p = self.prompts
        self.inputs = [INPUT.format(n) for n in ("5.0", "3.0", "2.0", "4.0")]
        self.references = ["Great blender, it crushes ice in seconds. It is loud. Worth the price.",
                           "A reference the judge cannot read.", "A calm evening.", "It tastes of lemon."]
        self.predictions = ["This blender is powerful and crushes ice quickly. I love the red colour.",
                            "Whatever.", "   ", "A lemony flavour."]
        power_a = aspect("Power", "first words on power", "Great blender, it crushes ice in seconds.")
        power = aspect("Power", "how strong the blender is", "Great blender, it crushes ice in seconds.")
        noise, price = aspect("Noise", "how loud it is", "It is loud."), aspect("Price", "value", "Worth the price.")
        strength = aspect("Strength", "how powerful it is", "This blender is powerful and crushes ice quickly.")
        colour = aspect("Colour", "its colour", "I love the red colour.")
        taste = aspect("Taste", "its taste", "It tastes of lemon.")
        flavour = aspect("Flavour", "lemon", "A lemony flavour.")
        mood = aspect("Mood", "the mood", "A calm evening.")
        self.reference_aspects = [power_a, noise, power, price]  # "Power" twice: counted once, as its last entry
        self.prediction_aspects = [strength, colour]

        def extract(i, text):
            return p.render("extract", input=self.inputs[i], text=text)

        def match(own, other):
            return p.render("match", title=own["aspect"], description=own["description"],
                            candidates="\n\n".join(f"aspect title: {a['aspect']}\naspect detail: {a['description']}"
                                                   for a in other))

        def content(own, other):
            return p.render("content", title=own["aspect"], description=own["description"],
                            evidence_1="\n".join(own["evidence"]), evidence_2="\n".join(other["evidence"]))

        def style(own, other):
            return p.render("style", evidence_1="\n".join(own["evidence"]), evidence_2="\n".join(other["evidence"]))

        def yes(title=None):
            return json.dumps({"reason": "r", "is_matched": True, **({"matched_aspect": title} if title else {})})

        no = json.dumps({"reason": "r", "is_matched": False, "matched_aspect": ""})
        refs, preds = self.reference_aspects, self.prediction_aspects
        self.answers = {
            # a chat model's own block, with words after it: read up to the closing fence
            extract(0, self.references[0]): "```json\n" + json.dumps(refs) + "\n```\nThose are all the aspects.",
            extract(0, self.predictions[0]): json.dumps(preds) + "\n```",
            extract(1, self.references[1]): ["Here are the aspects: " + json.dumps([mood]),
                                             "Content (0-2): 2", "[{\"aspect\": \"Mood\"}]"],  # never readable
            extract(2, self.references[2]): json.dumps([mood]),
            extract(3, self.references[3]): json.dumps([taste]),
            extract(3, self.predictions[3]): json.dumps([flavour]),
            # recall: Power -> Strength (after an unreadable first try), Noise never readable, Price -> Colour
            match(power, preds): ["The answer is:\n" + yes("Strength"), yes("Strength")],
            match(noise, preds): 'is_matched: false',
            match(price, preds): yes("Colour"),
            # precision: Strength -> Power, Colour -> none (a title not in the list first: asked again)
            match(strength, refs): yes("Power"),
            match(colour, refs): [yes("Red"), no],
            content(power, strength): yes(), style(power, strength): json.dumps({"reason": "r", "is_matched": False}),
            content(price, colour): yes(), style(price, colour): ['{"reason": "r", "is_matched": "true"}', yes()],
            content(strength, power): yes(), style(strength, power): yes(),
            # example 3: Taste <-> Flavour, its recall content verdict never readable (false)
            match(taste, [flavour]): yes("Flavour"), match(flavour, [taste]): yes("Taste"),
            content(taste, flavour): '{"reason": "r", "is_matched": maybe}', style(taste, flavour): yes(),
            content(flavour, taste): yes(), style(flavour, taste): yes(),
        }
        self.unreachable = {match(power_a, preds)}  # the first "Power" is never asked: its title's last entry is

    def judge(self, log: list, format_retries: int = 3) -> list[dict]:
        records = expert.judge(self.inputs, self.references, self.predictions, fake_ask(self.answers, log),
                               self.prompts, None, 512, format_retries)
        return [{"id": f"ex{i}", **record} for i, record in enumerate(records)]


def test_expert_scores_from_fixed_judge_answers_are_the_hand_computed_ones():
    scenario, log = Scenario(), []
    records = scenario.judge(log)
    first, excluded, blank, last = records
    # recall over the 3 distinct reference titles: Power (content yes, style no), Noise (no match: unreadable),
    # Price (content yes, style yes); precision over Strength (content yes, style yes) and Colour (no match)
    assert [e["aspect"] for e in first["recall"]] == ["Power", "Noise", "Price"]
    assert [(e["matched"], e["content"], e["style"]) for e in first["recall"]] == [
        (True, True, False), (False, None, None), (True, True, True)]
    assert first["recall"][1]["unreadable"] == "matching" and first["unreadable"] == {"matching": 1, "verdicts": 0}
    expected = {  # precision, recall, F1
        "content_only": (1 / 2, 2 / 3, 4 / 7), "style_only": (1 / 2, 1 / 3, 2 / 5),
        "content_and_style": (1 / 2, 1 / 3, 2 / 5), "content_or_style": (1 / 2, 2 / 3, 4 / 7),
        "content_style_average": (1 / 2, 1 / 2, 1 / 2)}
    for name, (p, r, f) in expected.items():
        assert first["scores"][name] == pytest.approx({"precision": p, "recall": r, "f1": f}, rel=1e-12), name
    assert excluded == {"id": "ex1", "excluded": "the judge's aspects of the reference could not be read in 4 tries",
                        "truncated": {"reference": False}}
    # a blank prediction: no aspects and nothing asked; the reference's one aspect has no match
    assert blank["prediction_aspects"] == [] and blank["recall"][0]["matched"] is False
    assert all(value == 0 for scores in blank["scores"].values() for value in scores.values())
    # Taste: content unreadable at every try (false, counted), style yes; Flavour: both yes
    assert last["unreadable"] == {"matching": 0, "verdicts": 1} and last["recall"][0]["unreadable"] == ["content"]
    assert last["scores"]["style_only"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert last["scores"]["content_only"] == {"precision": 1.0, "recall": 0, "f1": 0}
    assert last["scores"]["content_style_average"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})

    summary = expert.summary(records)  # the mean over the three scored examples; ex1 is in no mean
    assert summary["variants"]["content_only"] == pytest.approx(
        {"precision": (1 / 2 + 0 + 1) / 3, "recall": (2 / 3 + 0 + 0) / 3, "f1": (4 / 7 + 0 + 0) / 3}, rel=1e-12)
    assert summary["variants"]["style_only"] == pytest.approx(
        {"precision": (1 / 2 + 0 + 1) / 3, "recall": (1 / 3 + 0 + 1) / 3, "f1": (2 / 5 + 0 + 1) / 3}, rel=1e-12)
    assert summary["variants"]["content_style_average"] == pytest.approx(
        {"precision": (1 / 2 + 0 + 1) / 3, "recall": (1 / 2 + 0 + 1 / 2) / 3, "f1": (1 / 2 + 0 + 2 / 3) / 3}, rel=1e-12)
    assert summary["examples"] == 4 and summary["scored_examples"] == 3
    assert summary["unreadable_references"] == {"count": 1, "ids": ["ex1"]}
    assert summary["unreadable"] == {"matching": 1, "verdicts": 1}
    assert summary["aspects"] == {"reference": 3 + 1 + 1, "prediction": 2 + 0 + 1, "matched_recall": 2 + 0 + 1,
                                  "matched_precision": 1 + 0 + 1}

    asked = [message for message, _ in log]
    assert not scenario.unreachable & set(asked)
    assert scenario.prompts.render("extract", input=scenario.inputs[1], text="Whatever.") not in asked  # left out
    assert scenario.prompts.render("extract", input=scenario.inputs[2], text="   ") not in asked  # blank


def test_expert_sums_shares_as_expert_does_to_the_last_bit():
    """ExPerT adds 1/n per passing aspect (0.5/n per criterion for the average): 3 of 10 is 0.1 + 0.1 + 0.1."""
    entries = [{"matched": i < 3, "content": True, "style": i < 1} for i in range(10)]
    sums = expert.side_scores(entries)
    assert sums["content_only"] == 0.30000000000000004 != 3 / 10
    average = 0.0
    for _ in range(4):  # three contents and one style
        average += 0.5 / 10
    assert sums["content_style_average"] == average
    total = 0
    for value in (0.1, 0.2, 0.7):
        total += value
    assert expert.mean([0.1, 0.2, 0.7]) == total / 3


def test_the_retry_schedule_is_experts():
    temperatures, value = [], 0.0
    for _ in range(14):  # ExPerT's own loop: add 0.1 after each round while below 1.0
        temperatures.append(value)
        if value < 1.0:
            value += 0.1
    assert [attempt(n).temperature for n in range(14)] == [round(t, 10) for t in temperatures] == [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.1, 1.1]
    assert {attempt(n).top_p for n in range(14)} == {0.95}

    log = []
    answers = {"never": "garbage", "third": ["garbage", "garbage", "ok"], "first": "ok"}
    readings, tries = read_answers(list(answers), lambda m, a: a if a == "ok" else None, fake_ask(answers, log),
                                   "testing", format_retries=4)
    assert readings == {"third": "ok", "first": "ok"} and tries == {"never": 5, "third": 3, "first": 1}
    assert [(m, a.temperature) for m, a in log if m == "never"] == [("never", t) for t in (0.0, 0.1, 0.2, 0.3, 0.4)]
    assert len(log) == 5 + 3 + 1


def test_graded_scores_from_fixed_judge_answers_are_the_hand_computed_ones():
    prompts = load_prompts(protocol="graded")
    reference, prediction = "REFERENCE TEXT", "PREDICTION TEXT"
    ref_aspects = ["tone: formal", "topic: a hiking trip"]
    pred_aspects = ["topic: a hike"]
    answers = {
        graded.extraction(prompts, reference, 8): "- tone: formal\n2. topic: a hiking trip\n",
        graded.extraction(prompts, prediction, 8): "Sure! Here they are:\n1. **topic**: a hike\nnot an aspect line",
        graded.matching(prompts, ref_aspects[0], pred_aspects): "content: 0\nstyle: 1",
        graded.matching(prompts, ref_aspects[1], pred_aspects): ["Content (0-2): 2\nStyle (0-2): 1",
                                                                 "Content: 2\nStyle: 1"],
        graded.matching(prompts, pred_aspects[0], ref_aspects): "the content is 2 and I like it",  # never readable
        graded.extraction(prompts, "ONLY REFERENCE", 8): "mood: calm",
        graded.extraction(prompts, "UNREADABLE", 8): "ĠĠ the the",
    }
    log = []
    records = graded.judge([reference, "ONLY REFERENCE", "UNREADABLE"], [prediction, " ", "anything"],
                           fake_ask(answers, log), prompts, format_retries=2)
    records = [{"id": f"ex{i}", **r} for i, r in enumerate(records)]
    first, second, third = records
    assert first["reference_aspects"] == ref_aspects and first["prediction_aspects"] == pred_aspects
    # recall: content (0 + 2) / 2 / 2 = 0.5, style (1 + 1) / 2 / 2 = 0.5; precision: unreadable, so 0 for both
    assert first["content"] == {"precision": 0.0, "recall": 0.5, "f1": 0.0}
    assert first["style"] == {"precision": 0.0, "recall": 0.5, "f1": 0.0}
    assert first["unreadable"] == {"ratings": 1}
    # a blank prediction: no aspects, nothing asked, every score 0, and not an unreadable answer
    assert second["prediction_aspects"] == [] and second["recall_ratings"] == [{"content": 0, "style": 0}]
    assert second["unreadable"] == {"ratings": 0}
    assert third == {"id": "ex2", "excluded": "the judge's aspects of the reference could not be read in 3 tries"}
    # 4 extractions (the third's prediction is not asked), 3 ratings; 1 + 2 + 2 retries
    assert len(log) == 4 + 3 + 1 + 2 + 2
    summary = graded.summary(records)
    assert summary["content"] == {"precision": 0.0, "recall": 0.25, "f1": 0.0}
    assert summary["unreadable"] == {"ratings": 1} and summary["unreadable_references"] == {"count": 1, "ids": ["ex2"]}

    answers[graded.matching(prompts, pred_aspects[0], ref_aspects)] = "content: 2\nstyle: 1"
    again = graded.judge([reference], [prediction], fake_ask(answers, []), prompts)[0]
    # precision content 1.0, style 0.5; F1 content 2 * 1 * 0.5 / 1.5 = 2/3, style 0.5
    assert again["content"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert again["style"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_an_unreadable_prediction_stops_the_run_as_in_expert():
    scenario = Scenario()
    prediction = scenario.prompts.render("extract", input=scenario.inputs[0], text=scenario.predictions[0])
    scenario.answers[prediction] = "I cannot list aspects."
    with pytest.raises(ValueError, match=r"aspects of 1 prediction\(s\) could not be read in 3 tries"):
        scenario.judge([], format_retries=2)


def test_texts_are_cut_to_512_judge_tokens_and_quotes_become_spaces(tiny_chat_llama):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_llama)
    long_text = 'He said "great" ' + " ".join(f"word{i}" for i in range(600))
    shown = expert.truncate(long_text, tokenizer, 512)
    ids = tokenizer(long_text)["input_ids"][:512]  # ExPerT: tokenizer(text), its special tokens counted
    assert shown.truncated and shown.text == tokenizer.decode(ids, skip_special_tokens=True).replace('"', " ")
    assert '"' not in shown.text and shown.text.startswith("He said  great  ")
    assert expert.truncate("Short.", tokenizer, 512) == expert.Shown("Short.", False)
    words = expert.truncate("  a  b\nc " + "d " * 600, None, 512)  # no tokenizer: words, as ExPerT
    assert words.truncated and words.text.split() == ["a", "b", "c"] + ["d"] * 509 and "  " not in words.text


# --- the cache ----------------------------------------------------------------------------------------------------

class BatchEcho(Generator):
    """A judge whose answer shows its batch (as a padded batch's can): 'prompt|batch size|temperature'."""

    name, default_batch_size, prompt_form, independent_requests = "echo", 2, "text", False
    calls: list = []

    def generations(self, prompts, seeds):
        type(self).calls.append(list(prompts))
        temperature = self.settings.temperature if self.settings.do_sample else 0
        return [Generation("" if p.startswith("empty") else f"{p}|{len(prompts)}|{temperature}|{seeds[0]}", 1, False)
                for p in prompts]


def echo_judge(path: Path) -> CachedGenerator:
    settings = GenerationSettings(max_new_tokens=8)
    return CachedGenerator(GenerationCache(path), {"model": "echo", **settings.record()}, lambda m: (m, m, len(m)),
                       lambda: BatchEcho(None, settings), batch_size=2)


def test_the_cache_keeps_only_readable_answers_and_keys_sampled_tries_apart(tmp_path):
    BatchEcho.calls = []
    judge, readable = echo_judge(tmp_path / "c.sqlite"), (lambda message, answer: message.startswith("good"))
    messages = ["good-a", "bad-b", "good-cc", "empty-d"]
    first = judge.ask(messages, "t", keep=readable)
    assert first == ["good-a|2|0|0", "bad-b|2|0|0", "good-cc|2|0|0", ""] and len(judge.cache) == 2
    judge.ask(messages, "t", keep=lambda m, a: True)  # an empty answer is never stored
    assert len(judge.cache) == 3 and judge.cache.answers([judge.cache.key(judge.identity, "empty-d")]) == {}
    warm = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=0.3, top_p=0.95, seed=7)
    assert judge.ask(["good-a"], "t", warm, readable) == ["good-a|1|0.3|7"]  # its own key, sampled as asked
    assert judge.ask(["good-a", "good-zz"], "t") == ["good-a|2|0|0", "good-zz|2|0|0"]  # greedy again
    judge.cache.close()

    again = echo_judge(tmp_path / "c.sqlite")  # a new run: the unreadable one is asked again, with its batch
    BatchEcho.calls = []
    assert again.ask(messages, "t", keep=readable) == first
    assert again.sent == 4 and again.cached == 2 and BatchEcho.calls == [["good-cc", "empty-d"], ["good-a", "bad-b"]]
    again.cache.close()


# --- through the command, with a fake served judge ------------------------------------------------------------------

def test_the_expert_protocol_end_to_end_with_retries_exclusions_and_a_cache_of_readable_answers(tmp_path, capsys):
    golds, preds = many_examples(tmp_path, 6, never=2)
    with fake_server(rule_judge) as (url, received):
        code, calls = run(golds, preds, "fake", tmp_path / "out", *served_flags(url), capsys=capsys)
        assert code == 0
        result = scores_of(tmp_path / "out")
        scores = result["scores"]
        assert scores["unreadable_references"] == {"count": 1, "ids": ["ex2"]} and scores["scored_examples"] == 5
        assert result["settings"]["protocol"] == "expert" and result["settings"]["max_text_tokens"] == 512
        assert result["settings"]["text_tokenizer"].startswith("none known") and "golds.json" in result[
            "settings"]["task_inputs"]
        for values in scores["variants"].values():
            assert all(0 <= value <= 1 for value in values.values())
        assert scores["variants"]["content_only"]["recall"] > 0
        # the never-readable reference: tried 4 times at ExPerT's temperatures, top_p 0.95 and a seed per try
        contents = [body["messages"][0]["content"] for body in received]
        tries = [body for body, message in zip(received, contents) if "NEVER readable" in message]
        assert [(b["temperature"], b.get("top_p"), b.get("seed")) for b in tries] == [
            (0.0, None, None), (0.1, 0.95, 1), (0.2, 0.95, 2), (0.3, 0.95, 3)]
        assert not any("item 2." in message for message in contents)  # its prediction: not asked
        preambled = {m for b, m in zip(received, contents) if b["temperature"] == 0.1 and "NEVER" not in m}
        assert preambled  # answers with a preamble at temperature 0 were asked again, and read
        readable = len(set(contents)) - 1  # every question but the never-readable one, once
        assert cache_rows(tmp_path / "out" / "judge_cache.sqlite") == readable  # no unreadable answer stored
        assert calls == {"sent": len(received), "cached": 0}
        first = outputs(tmp_path / "out")

        received.clear()
        code, calls = run(golds, preds, "fake", tmp_path / "out", *served_flags(url), capsys=capsys)
        # only the unreadable answers are asked again: the greedy tries that had a preamble (their retry is
        # cached), and the never-readable reference's four tries
        assert code == 0 and calls == {"sent": len(preambled) + 4, "cached": readable}
        assert len(received) == calls["sent"]
        assert outputs(tmp_path / "out") == first


def test_a_changed_prompt_is_asked_again(tmp_path, capsys):
    golds, preds = many_examples(tmp_path, 2)
    with fake_server(lambda message, temperature: rule_judge(message, temperature, preambles=False)) as (url, received):
        run(golds, preds, "fake", tmp_path / "out", *served_flags(url), capsys=capsys)
        content_questions = sum("# Aspect\n" in body["messages"][0]["content"] for body in received)
        changed = tmp_path / "prompts.yaml"
        changed.write_text(expert_prompts_text().replace("  content: |\n    You are",
                                                         "  content: |\n    Be careful. You are"))
        received.clear()
        code, calls = run(golds, preds, "fake", tmp_path / "out", *served_flags(url), "--prompts_file", str(changed),
                          capsys=capsys)
    asked = [body["messages"][0]["content"] for body in received]
    assert code == 0 and calls["sent"] == len(asked) == content_questions > 0  # the content verdicts alone
    assert all(message.startswith("Be careful.") for message in asked)


# --- task inputs --------------------------------------------------------------------------------------------------

def test_the_expert_protocol_refuses_to_run_without_task_inputs(tmp_path, capsys):
    golds, preds = write_task(tmp_path / "g.json", GOLDS), write_task(tmp_path / "p.json", PREDICTIONS)
    code, _ = run(golds, preds, tmp_path / "no-such-model", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--protocol expert shows the judge each example's task input" in err
    partly = json.loads(golds.read_text())
    partly["golds"][0]["input"] = "Only one."
    golds.write_text(json.dumps(partly))
    code, _ = run(golds, preds, tmp_path / "no-such-model", tmp_path / "out")
    assert code == 2 and "2 of 3 gold entries carry no task input" in capsys.readouterr().err


def test_task_inputs_come_from_the_data_or_a_no_profile_prompts_file(tmp_path, capsys, sample_dir, sample_cache):
    import longlamp

    rows = longlamp.load_split("product_review_user", "validation", data_dir=str(sample_dir), cache_dir=sample_cache)
    golds = {"task": TASK, "golds": [{"id": r["id"], "output": r["output"]} for r in rows][:3]}
    (tmp_path / "golds.json").write_text(json.dumps(golds))
    asked = []

    def respond(message, temperature):
        asked.append(message)
        return "[]"

    data = ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir", sample_cache]
    with fake_server(respond) as (url, _):
        gold = tmp_path / "golds.json"
        code, _ = run(gold, gold, "fake", tmp_path / "out", *served_flags(url), *data, capsys=capsys)
        assert code == 0 and len(asked) == 3
        assert all(any(f"Prompt: {r['input']}\n" in message for message in asked) for r in list(rows)[:3])
        assert scores_of(tmp_path / "out")["scores"]["references_without_aspects"] == 3

        prompts = [{"id": r["id"], "prompt": r["input"], "prompt_tokens": 9, "profile_items": 0} for r in rows]
        (tmp_path / "prompts.json").write_text(json.dumps(prompts))
        asked.clear()
        code, calls = run(gold, gold, "fake", tmp_path / "out2", *served_flags(url), "--prompts_json",
                          str(tmp_path / "prompts.json"), capsys=capsys)
        assert code == 0 and calls["sent"] == 3 and outputs(tmp_path / "out2")[1] == outputs(tmp_path / "out")[1]

    for change, message in (({"profile_items": 2}, "hold profile items"),
                            ({"prompt": "<|user|>\n" + rows[0]["input"]}, "a chat template was written into them")):
        (tmp_path / "prompts.json").write_text(json.dumps([{**prompts[0], **change}, *prompts[1:]]))
        code, _ = run(gold, gold, "fake", tmp_path / "out3", "--prompts_json", str(tmp_path / "prompts.json"))
        assert code == 2 and message in capsys.readouterr().err
    other = {**golds, "golds": [{**golds["golds"][0], "output": "Another text."}, *golds["golds"][1:]]}
    (tmp_path / "other.json").write_text(json.dumps(other))
    code, _ = run(tmp_path / "other.json", tmp_path / "other.json", "fake", tmp_path / "out3", *data)
    assert code == 2 and "the output of 1 rows differs from the gold of the same id" in capsys.readouterr().err


# --- the mechanics, with a tiny random judge ------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["expert", "graded"])
def test_a_tiny_judges_garbage_is_left_out_counted_never_cached_and_asked_again(tiny_chat_llama, task_files,
                                                                                tmp_path, capsys, protocol):
    golds, preds = task_files
    flags = ["--protocol", protocol, "--format_retries", "1"]
    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "out", *flags, capsys=capsys)
    assert code == 0 and calls == {"sent": 3 * 2, "cached": 0}  # 3 references, 2 tries each; no prediction asked
    scores = scores_of(tmp_path / "out")
    assert "not the benchmark's metrics" in scores["note"] and scores["settings"]["protocol"] == protocol
    assert scores["scores"]["unreadable_references"] == {"count": 3, "ids": ["ex0", "ex1", "ex2"]}
    assert scores["scores"]["scored_examples"] == 0
    assert (scores["scores"]["variants"] if protocol == "expert" else scores["scores"]["content"]) is None
    assert scores["settings"]["judge"]["fingerprint"]["base"].startswith("sha256:")
    assert scores["settings"]["prompts_sha256"] == load_prompts().sha256
    records = [json.loads(line) for line in (tmp_path / "out" / "judge_per_example.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["ex0", "ex1", "ex2"] and records[1]["user"] == "u1"
    assert all("excluded" in r for r in records)
    assert cache_rows(tmp_path / "out" / "judge_cache.sqlite") == 0  # garbage is never a cached answer
    first = outputs(tmp_path / "out")

    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "out", *flags, capsys=capsys)
    assert code == 0 and calls == {"sent": 6, "cached": 0} and outputs(tmp_path / "out") == first


def test_seeded_answers_make_a_rescore_that_asks_nothing(tiny_chat_llama, task_files, tmp_path, capsys):
    """Readable extractions seeded into the cache as the judge would have answered them: empty aspect lists,
    so that no other question arises; the run then needs no model at all."""
    golds, preds = task_files
    from evaluation.judges.judge_model import build_judge, judge_options

    prompts, inputs = load_prompts(), [e["input"] for e in json.loads(golds.read_text())["golds"]]
    options = judge_options(str(tiny_chat_llama), str(tmp_path / "out"), backend="transformers", max_new_tokens=16)
    cache = GenerationCache(tmp_path / "out" / "judge_cache.sqlite")
    judge = build_judge(options, cache)
    rows = []
    for i, text in [(i, t) for i, t in enumerate(GOLDS)] + [(i, t) for i, t in enumerate(PREDICTIONS) if t.strip()]:
        message = prompts.render("extract", input=inputs[i], text=expert.truncate(text, judge.tokenizer, 512).text)
        request = judge.prepare(message)[1]
        rows.append((cache.key(judge.identity, request), request, Generation("[]", 1, False)))
    cache.add(rows)
    cache.close()
    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "out", "--backend", "transformers", capsys=capsys)
    assert code == 0 and calls == {"sent": 0, "cached": 5}
    scores = scores_of(tmp_path / "out")["scores"]
    assert scores["scored_examples"] == 3 and scores["references_without_aspects"] == 3
    assert scores["variants"]["content_only"] == {"precision": 0, "recall": 0, "f1": 0}


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_served_judge_answers_as_the_local_one(tiny_chat_llama, task_files, tmp_path, capsys):
    golds, preds = task_files
    flags = ["--format_retries", "1"]
    run(golds, preds, tiny_chat_llama, tmp_path / "local", "--backend", "transformers", *flags, capsys=capsys)
    with served(tiny_chat_llama) as url:
        code, calls = run(golds, preds, "tiny", tmp_path / "served", "--backend", "openai", "--api_base", url,
                          "--tokenizer", str(tiny_chat_llama), "--retry_backoff", "0.01", *flags, capsys=capsys)
    assert code == 0 and calls == {"sent": 6, "cached": 0}
    assert outputs(tmp_path / "served")[1] == outputs(tmp_path / "local")[1]
    served_settings = json.loads(outputs(tmp_path / "served")[0])["settings"]
    assert served_settings["judge"]["api_mode"] == "chat" and served_settings["text_tokenizer"] == "the judge's"


def test_every_flag_is_in_the_flags_table_and_shared_concepts_keep_their_names():
    parser = judge_command.make_parser()
    options = {option: action.dest for action in parser._actions for option in action.option_strings
               if option not in ("-h", "--help")}
    table = (REPO / "docs" / "flags.md").read_text(encoding="utf-8")
    missing = [option for option in options if f"`{option}`" not in table]
    assert not missing, f"docs/flags.md lacks {missing}"
    for action in parser._actions:  # a flag's canonical name is its field's: --backend stores backend, ...
        if action.option_strings and action.dest != "help":
            assert action.option_strings[0] == f"--{action.dest}"


# --- the real small instruct model --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not (SMOLLM / "config.json").is_file(),
                    reason=f"{SMOLLM} is absent (scripts/prepare_models.py prepares it)")
def test_the_real_instruct_model_runs_both_protocols(tmp_path, capsys):
    """The mechanics on a real chat model (a 135M one: what it answers is not the point). The prediction is the
    reference itself, so that one extraction call serves both sides."""
    golds = write_task(tmp_path / "golds.json", GOLDS[:1], inputs=[INPUT.format("5.0")])
    flags = ["--backend", "transformers", "--format_retries", "0"]
    code, calls = run(golds, golds, SMOLLM, tmp_path / "graded", *flags, "--protocol", "graded", "--max_aspects",
                      "2", "--max_new_tokens", "24", capsys=capsys)
    assert code == 0 and calls["cached"] == 0
    scores = scores_of(tmp_path / "graded")["scores"]
    excluded = scores["unreadable_references"]["count"]
    found = scores["aspects"]["reference"] if not excluded else 0
    assert (found > 0) != (excluded == 1) and calls["sent"] == 1 + found  # one extraction, one rating per aspect
    first = calls["sent"]
    code, calls = run(golds, golds, SMOLLM, tmp_path / "graded", *flags, "--protocol", "graded", "--max_aspects",
                      "2", "--max_new_tokens", "24", capsys=capsys)  # only what was unreadable is asked again
    assert code == 0 and calls["sent"] + calls["cached"] == first
    assert calls["cached"] == cache_rows(tmp_path / "graded" / "judge_cache.sqlite")

    code, calls = run(golds, golds, SMOLLM, tmp_path / "expert", *flags, "--max_new_tokens", "48", capsys=capsys)
    scores = scores_of(tmp_path / "expert")["scores"]
    assert code == 0 and calls["sent"] >= 1 and scores["examples"] == 1
    assert scores["unreadable_references"]["count"] + scores["scored_examples"] == 1
