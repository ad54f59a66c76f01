"""The ExPerT-style LLM judge (evaluation/judge.py, evaluation/judges/): hand-computed scores from fixed judge
answers; with a tiny random judge the mechanics (garbage answers counted, never fatal; a re-score makes no call; a
resumed run equals an uninterrupted one; a changed prompt is asked again; a served judge answers as the local
one); and a run with the real SmolLM2-135M-Instruct where the demo has prepared it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from kill import same_threads
from openai_server import served

from benchmark_runner.local_models import DEFAULT_OUTPUT as SMOLLM  # where set-up prepares the demo model
from evaluation import judge as judge_command
from evaluation.backends.base import Generation
from evaluation.judges import expert
from evaluation.judges.cache import JudgeCache
from evaluation.judges.expert_parsing import Match, Verdict, json_answer, read_aspects, read_graded_ratings, read_match, read_verdict
from evaluation.judges.judge_model import build_judge, judge_options
from longlamp_cli import FLAGS, run_command

REPO = Path(__file__).resolve().parents[1]
TASK = "LongLaMP_product_review_user"
GOLDS = ["Great blender, it crushes ice in seconds. I use it every morning for smoothies.",
         "The strap broke after a week. Disappointed, I would not buy it again.",
         "Comfortable shoes, true to size, and the colour is exactly as pictured."]
PREDICTIONS = ["This blender is powerful and crushes ice quickly.", "",
               "The shoes fit well and look like the photo."]


def write_task(path: Path, outputs, users: bool = False) -> Path:
    entries = [{"id": f"ex{i}", "output": text, **({"user": f"u{i}"} if users else {})}
               for i, text in enumerate(outputs)]
    path.write_text(json.dumps({"task": TASK, "golds": entries}), encoding="utf-8")
    return path


@pytest.fixture
def task_files(tmp_path) -> tuple[Path, Path]:
    return write_task(tmp_path / "golds.json", GOLDS, users=True), write_task(tmp_path / "preds.json", PREDICTIONS)


def run(golds: Path, preds: Path, model, output_dir: Path, *extra: str, capsys=None) -> tuple[int, dict]:
    """judge.py's exit code and the calls it reports (sent to the model, answered from the cache)."""
    code = run_command(judge_command.main, ["--golds", str(golds), "--preds", str(preds), "--judge_model", str(model),
                                            "--output_dir", str(output_dir), "--max_new_tokens", "16", *extra])
    calls = {}
    if capsys is not None:
        out = capsys.readouterr().out
        line = next(line for line in out.splitlines() if line.startswith("judge calls:"))
        calls = {"sent": int(line.split()[2]), "cached": int(line.split()[7])}
    return code, calls


def outputs(output_dir: Path) -> tuple[str, str]:
    return ((output_dir / "judge_scores.json").read_text(encoding="utf-8"),
            (output_dir / "judge_per_example.jsonl").read_text(encoding="utf-8"))


# --- the protocol on fixed answers -------------------------------------------------------------------------------

def test_scores_from_fixed_judge_answers_are_the_hand_computed_ones():
    prompts = expert.load_prompts()
    reference, prediction = "REFERENCE TEXT", "PREDICTION TEXT"
    ref_aspects = ["tone: formal", "topic: a hiking trip"]
    pred_aspects = ["topic: a hike"]
    answers = {
        prompts.extraction(reference): "- tone: formal\n2. topic: a hiking trip\n",
        prompts.extraction(prediction): "Sure! Here they are:\n1. **topic**: a hike\nnot an aspect line",
        prompts.matching(ref_aspects[0], pred_aspects): "content: 0\nstyle: 1",
        prompts.matching(ref_aspects[1], pred_aspects): "Content: 2\nStyle: 1",
        prompts.matching(pred_aspects[0], ref_aspects): "the content is 2 and I like it",  # no style: unreadable
        prompts.extraction("ONLY REFERENCE"): "mood: calm",
    }
    asked = []

    def ask(messages, what):
        asked.extend(messages)
        return [answers[message] for message in messages]

    records = expert.judge([reference, "ONLY REFERENCE"], [prediction, " "], ask, prompts)
    first, second = records
    assert first["reference_aspects"] == ref_aspects and first["prediction_aspects"] == pred_aspects
    # recall: content (0 + 2) / 2 / 2 = 0.5, style (1 + 1) / 2 / 2 = 0.5; precision: unreadable, so 0 for both
    assert first["content"] == {"precision": 0.0, "recall": 0.5, "f1": 0.0}
    assert first["style"] == {"precision": 0.0, "recall": 0.5, "f1": 0.0}
    assert first["unreadable"] == {"reference_aspects": False, "prediction_aspects": False, "ratings": 1}
    # a blank prediction: no aspects, nothing asked, every score 0, and not an unreadable answer
    assert second["prediction_aspects"] == [] and second["recall_ratings"] == [{"content": 0, "style": 0}]
    assert second["unreadable"] == {"reference_aspects": False, "prediction_aspects": False, "ratings": 0}
    assert len(asked) == 3 + 3  # three texts extracted, three aspects rated
    summary = expert.summary(records)
    assert summary["content"] == {"precision": 0.0, "recall": 0.25, "f1": 0.0}
    assert summary["unreadable"] == {"reference_aspects": 0, "prediction_aspects": 0, "ratings": 1}

    answers[prompts.matching(pred_aspects[0], ref_aspects)] = "content: 2\nstyle: 1"
    again = expert.judge([reference], [prediction], ask, prompts)[0]
    # precision content 1.0, style 0.5; F1 content 2 * 1 * 0.5 / 1.5 = 2/3, style 0.5
    assert again["content"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert again["style"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


@pytest.mark.parametrize("answer, expected", [
    ("tone: warm\n* topic: ice, smoothies\n3) length: short sentences", ["tone: warm", "topic: ice, smoothies",
                                                                         "length: short sentences"]),
    ("tone: warm\ntone: warm\n", ["tone: warm"]),
    ("ĠĠ the the blender Ã§ 123", None),
    ("", None),
    (":\n: evidence without an aspect", None),
])
def test_aspect_lines_are_read_and_garbage_is_unreadable(answer, expected):
    assert expert.parse_aspects(answer, 8) == expected


def test_at_most_max_aspects_are_kept():
    assert expert.parse_aspects("\n".join(f"a{i}: e{i}" for i in range(10)), 3) == ["a0: e0", "a1: e1", "a2: e2"]


@pytest.mark.parametrize("answer, expected", [
    ("content: 2\nstyle: 0", {"content": 2, "style": 0}),
    ("**Content** - 1, **Style**: 2.", {"content": 1, "style": 2}),
    ("content: 3\nstyle: 1", None),  # outside the scale
    ("content: 1", None),
    ("yes", None),
])
def test_ratings_are_read_within_the_scale(answer, expected):
    assert expert.parse_ratings(answer, 2) == expected


def test_a_bad_prompts_file_is_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text("score_scale: 2\nextract: 'Text: {text} {other}'\nmatch: '{aspect} {candidates}'\n")
    with pytest.raises(ValueError, match=r"prompts\.yaml: 'extract' may use only the fields \{text\}"):
        expert.load_prompts(path)
    path.write_text("score_scale: 0\nextract: '{text}'\nmatch: '{aspect} {candidates}'\n")
    with pytest.raises(ValueError, match="'score_scale' must be an integer of at least 1, got 0"):
        expert.load_prompts(path)


# --- the strict readers on adversarial answers (evaluation/judges/expert_parsing.py) -------------------------------

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


# --- the mechanics, with a tiny random judge ------------------------------------------------------------------------

def test_a_tiny_judges_garbage_is_counted_and_a_rescore_makes_no_call(tiny_chat_llama, task_files, tmp_path, capsys):
    golds, preds = task_files
    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "out", capsys=capsys)
    assert code == 0 and calls == {"sent": 5, "cached": 0}  # 3 references + 2 non-blank predictions
    scores = json.loads((tmp_path / "out" / "judge_scores.json").read_text())
    assert "not the benchmark's metrics" in scores["note"]
    unreadable = scores["scores"]["unreadable"]
    assert unreadable["reference_aspects"] + unreadable["prediction_aspects"] >= 4  # a random model's garbage
    for name in expert.CRITERIA:
        assert all(0 <= value <= 1 for value in scores["scores"][name].values())
    assert scores["settings"]["judge"]["fingerprint"]["base"].startswith("sha256:")
    assert scores["settings"]["prompts_sha256"] == expert.load_prompts().sha256
    records = [json.loads(line) for line in (tmp_path / "out" / "judge_per_example.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["ex0", "ex1", "ex2"] and records[1]["user"] == "u1"
    first = outputs(tmp_path / "out")

    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "out", capsys=capsys)
    assert code == 0 and calls == {"sent": 0, "cached": 5}
    assert outputs(tmp_path / "out") == first


def seeded_judge(model: Path, cache_path: Path, answers: dict[str, str]) -> set[str]:
    """Put `answers` (message -> answer) in the cache at `cache_path` as judge.py's default judge would have
    answered them; returns their keys."""
    options = judge_options(str(model), str(cache_path.parent), backend="transformers", max_new_tokens=16)
    cache = JudgeCache(cache_path)
    judge = build_judge(options, cache)
    rows = []
    for message, answer in answers.items():
        request = judge.prepare(message)[1]
        rows.append((cache.key(judge.identity, request), request, Generation(answer, 1, False)))
    cache.add(rows)
    cache.close()
    return {key for key, _, _ in rows}


def test_a_resumed_run_equals_an_uninterrupted_one_and_a_new_prompt_is_asked_again(tiny_chat_llama, task_files,
                                                                                    tmp_path, capsys):
    """The extractions are seeded into the cache (a tiny random model lists no aspects), so that the matching
    stage runs on the tiny model: its unreadable ratings are counted. Then half the cache is lost (a kill)."""
    golds, preds = task_files
    prompts = expert.load_prompts()
    seeded = {prompts.extraction(text): f"subject: {text.split()[0]}\nmood: {text.split()[-1]}"
              for text in GOLDS + PREDICTIONS if text.strip()}
    extractions = seeded_judge(tiny_chat_llama, tmp_path / "full" / "judge_cache.sqlite", seeded)
    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "full", "--backend", "transformers",
                      "--batch_size", "3", capsys=capsys)
    matches = 2 * 2 + 0 + 2 * 2  # two aspects each way on ex0 and ex2; ex1's prediction is blank
    assert code == 0 and calls == {"sent": matches, "cached": 5}
    full = outputs(tmp_path / "full")
    scores = json.loads(full[0])["scores"]
    assert scores["aspects"] == {"reference": 6, "prediction": 4, "rated": 6 + 4}
    assert scores["unreadable"]["ratings"] == matches  # garbage ratings: counted, scored 0
    assert scores["content"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}

    (tmp_path / "resumed").mkdir()
    shutil.copy(tmp_path / "full" / "judge_cache.sqlite", tmp_path / "resumed" / "judge_cache.sqlite")
    with sqlite3.connect(tmp_path / "resumed" / "judge_cache.sqlite") as db:  # half the model's answers lost
        lost = [(key,) for (key,) in db.execute("SELECT key FROM calls ORDER BY key") if key not in extractions][::2]
        db.executemany("DELETE FROM calls WHERE key = ?", lost)
    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "resumed", "--backend", "transformers",
                      "--batch_size", "3", capsys=capsys)
    assert code == 0 and calls["cached"] == 5 + matches - len(lost) and calls["sent"] >= len(lost) == 4
    assert outputs(tmp_path / "resumed")[1] == full[1]

    changed = tmp_path / "prompts.yaml"
    changed.write_text(expert.DEFAULT_PROMPTS.read_text().replace("\nmatch: |\n", "\nmatch: |\n  Be careful.\n"))
    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "full", "--backend", "transformers",
                      "--batch_size", "3", "--prompts_file", str(changed), capsys=capsys)
    assert code == 0 and calls == {"sent": matches, "cached": 5}  # the changed matching prompt is asked again
    assert json.loads(outputs(tmp_path / "full")[0])["settings"]["prompts_sha256"] != json.loads(full[0])[
        "settings"]["prompts_sha256"]


def test_a_killed_run_resumes_from_the_answers_committed_before_the_kill(tiny_chat_llama, task_files, tmp_path,
                                                                        capsys):
    golds, preds = task_files
    prompts = expert.load_prompts()
    seeded = {prompts.extraction(text): "\n".join(f"aspect{k}: {word}" for k, word in enumerate(text.split()[:4]))
              for text in GOLDS + PREDICTIONS if text.strip()}
    flags = ["--backend", "transformers", "--batch_size", "1"]
    for name in ("full", "killed"):
        seeded_judge(tiny_chat_llama, tmp_path / name / "judge_cache.sqlite", seeded)
    assert run(golds, preds, tiny_chat_llama, tmp_path / "full", *flags, capsys=capsys)[0] == 0
    total = len(seeded) + 2 * 2 * 4  # four aspects each way on ex0 and ex2

    command = [sys.executable, str(REPO / "evaluation" / "judge.py"), "--golds", str(golds), "--preds", str(preds),
               "--judge_model", str(tiny_chat_llama), "--output_dir", str(tmp_path / "killed"),
               "--max_new_tokens", "16", *flags]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **same_threads()})  # its answers must equal this process's
    try:
        rows = 0
        while process.poll() is None and rows < len(seeded) + 3:
            time.sleep(0.02)
            with closing(sqlite3.connect(tmp_path / "killed" / "judge_cache.sqlite")) as db:
                rows = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert len(seeded) < rows < total and not (tmp_path / "killed" / "judge_scores.json").exists()
    code, calls = run(golds, preds, tiny_chat_llama, tmp_path / "killed", *flags, capsys=capsys)
    assert code == 0 and calls["sent"] <= total - rows and calls["cached"] >= rows
    assert outputs(tmp_path / "killed")[1] == outputs(tmp_path / "full")[1]


def test_a_served_judge_answers_as_the_local_one(tiny_chat_llama, task_files, tmp_path, capsys):
    golds, preds = task_files
    run(golds, preds, tiny_chat_llama, tmp_path / "local", "--backend", "transformers", capsys=capsys)
    with served(tiny_chat_llama) as url:
        code, calls = run(golds, preds, "tiny", tmp_path / "served", "--backend", "openai", "--api_base", url,
                          "--tokenizer", str(tiny_chat_llama), "--retry_backoff", "0.01", capsys=capsys)
    assert code == 0 and calls == {"sent": 5, "cached": 0}
    assert outputs(tmp_path / "served")[1] == outputs(tmp_path / "local")[1]
    assert json.loads(outputs(tmp_path / "served")[0])["settings"]["judge"]["api_mode"] == "chat"


def test_bad_input_is_one_error_line_before_any_model_is_loaded(task_files, tmp_path, capsys):
    golds, _ = task_files
    preds = write_task(tmp_path / "other.json", PREDICTIONS[:2])
    code, _ = run(golds, preds, tmp_path / "no-such-model", tmp_path / "out")
    assert code == 2 and "1 of 3 gold ids have no prediction" in capsys.readouterr().err
    code, _ = run(golds, golds, "tiny", tmp_path / "out", "--api_base", "http://localhost:1/v1")
    assert code == 2 and "add --backend openai" in capsys.readouterr().err
    (tmp_path / "not-a-cache").write_text("not SQLite, just text that is long enough to be read as a header")
    code, _ = run(golds, golds, tmp_path / "no-such-model", tmp_path / "out", "--cache_file",
                  str(tmp_path / "not-a-cache"))
    assert code == 2 and "not-a-cache: not a judge cache" in capsys.readouterr().err


def test_every_flag_is_in_the_flags_table_and_shared_concepts_keep_their_names():
    options = {option: action.dest for action in judge_command.build_parser()._actions
               for option in action.option_strings if option not in ("-h", "--help")}
    table = (REPO / "docs" / "flags.md").read_text(encoding="utf-8")
    missing = [option for option in options if f"`{option.replace('--no-', '--')}`" not in table]
    assert not missing, f"docs/flags.md lacks {missing}"
    for concept, flag in FLAGS.items():
        if flag.names[0] in options:
            assert options[flag.names[0]] == concept


# --- the real small instruct model --------------------------------------------------------------------------------

@pytest.mark.skipif(not (SMOLLM / "config.json").is_file(),
                    reason=f"{SMOLLM} is absent (scripts/prepare_models.py prepares it)")
def test_the_real_instruct_model_runs_the_protocol(tmp_path, capsys):
    """The mechanics on a real chat model (a 135M one: what it answers is not the point). The prediction is the
    reference itself, so that one extraction call serves both sides and any aspects found are rated."""
    golds = write_task(tmp_path / "golds.json", GOLDS[:1])
    code, calls = run(golds, golds, SMOLLM, tmp_path / "out", "--backend", "transformers", "--max_aspects", "2",
                      "--max_new_tokens", "24", capsys=capsys)
    assert code == 0 and calls["cached"] == 0
    scores = json.loads((tmp_path / "out" / "judge_scores.json").read_text())["scores"]
    found, unreadable = scores["aspects"]["reference"], scores["unreadable"]["reference_aspects"]
    assert (found > 0) != (unreadable == 1) and calls["sent"] == 1 + found  # one extraction, one rating per aspect
    for name in expert.CRITERIA:
        assert all(0 <= value <= 1 for value in scores[name].values())
    code, calls = run(golds, golds, SMOLLM, tmp_path / "out", "--backend", "transformers", "--max_aspects", "2",
                      "--max_new_tokens", "24", capsys=capsys)
    assert code == 0 and calls == {"sent": 0, "cached": 1 + found}
