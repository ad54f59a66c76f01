"""The benchmark's commands, evaluation/eval_task.py and evaluation/eval_all.py, end to end on generated files,
including every kind of bad input: each gets a clear error, exit code 2 and no output file."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest
from support.task_files import TASK, gold_entries, prediction_entries, run_script, write_task

from evaluation import eval_all, eval_task
from longlamp_cli import EXIT_BAD_INPUT, run_command
from scoring import metrics, tasks

FAST = ["--num_workers", "1", "--bootstrap", "100"]
def run_main(main, args: list[str], capsys) -> tuple[int, str]:
    """A command's main through the shared runner, as its script runs it: (exit code, stderr)."""
    code = run_command(main, args, prog="command")
    return code, capsys.readouterr().err


@pytest.mark.multiprocess
@pytest.mark.slow
def test_eval_task_script_scores_a_task_as_the_library_does(tmp_path):
    golds = write_task(tmp_path / "golds.json", gold_entries(users=True))
    preds = write_task(tmp_path / "preds.json", prediction_entries())
    out = tmp_path / "out" / "results.json"
    done = run_script("eval_task.py", "--golds_json", str(golds), "--preds_json", str(preds), "--task_name", TASK,
                      "--output_file", str(out), *FAST)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    by_id = {e["id"]: e["output"] for e in prediction_entries()}
    expected = metrics.score([by_id[e["id"]] for e in gold_entries()], [e["output"] for e in gold_entries()],
                             user_ids=[e["user"] for e in gold_entries(users=True)], bootstrap=100, num_workers=1)
    assert report["task"] == TASK and report["num_samples"] == 10 and report["num_empty_predictions"] == 1
    for key in ("metrics", "bootstrap", "evaluate_compatible", "per_user", "settings", "versions"):
        assert report[key] == expected[key], key
    assert set(report["metrics"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "meteor"}
    assert report["per_user"]["num_users"] == 3


def test_evaluate_files_takes_aliases_and_the_golds_task_by_default(tmp_path):
    golds = write_task(tmp_path / "golds.json", gold_entries())
    preds = write_task(tmp_path / "preds.json", prediction_entries(), task="product_review_user")
    by_default = tasks.evaluate_files(golds, preds, bootstrap=0, num_workers=1)
    by_alias = tasks.evaluate_files(golds, preds, "longlamp-product-review", tmp_path / "r.json", bootstrap=0,
                                        num_workers=1)
    assert by_default["task"] == by_alias["task"] == TASK and by_default["metrics"] == by_alias["metrics"]
    assert json.loads((tmp_path / "r.json").read_text())["metrics"] == by_alias["metrics"]
    assert "per_user" not in by_default


BAD_PREDICTIONS = {
    "missing ids": ({"task": TASK, "golds": prediction_entries(7)}, "3 of 10 gold ids have no prediction ('id-7', "),
    "extra ids": ({"task": TASK, "golds": prediction_entries(12)}, "2 prediction ids are not in the golds ('id-10', "),
    "duplicate ids": ({"task": TASK, "golds": prediction_entries() + [{"id": "id-2", "output": "again"}]},
                      "1 ids appear more than once: 'id-2'"),
    "other task": ({"task": "LongLaMP_product_review_temporal", "golds": prediction_entries()},
                   "has LongLaMP_product_review_temporal"),
    "unknown task": ({"task": "LaMP_4", "golds": prediction_entries()}, "unknown LongLaMP task name 'LaMP_4'"),
    "null output": ({"task": TASK, "golds": [{"id": "id-0", "output": None}]},
                    "golds[0] (id 'id-0'): 'output' is NoneType, expected a string"),
    "number id": ({"task": TASK, "golds": [{"id": 0, "output": "x"}]}, "golds[0]: 'id' is int, expected a string"),
    "no output": ({"task": TASK, "golds": [{"id": "id-0"}]}, "'output' is missing, expected a string"),
    "not an object": ([{"id": "id-0", "output": "x"}], 'expected an object {"task": <string>, "golds"'),
    "empty list": ({"task": TASK, "golds": []}, "'golds' is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICTIONS))
def test_eval_task_refuses_bad_predictions_and_writes_nothing(tmp_path, capsys, case):
    content, message = BAD_PREDICTIONS[case]
    golds = write_task(tmp_path / "golds.json", gold_entries())
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(content), encoding="utf-8")
    out = tmp_path / "results.json"
    code, error = run_main(eval_task.main, ["--golds_json", str(golds), "--preds_json", str(preds), "--output_file",
                                            str(out), *FAST], capsys)
    assert code == EXIT_BAD_INPUT
    assert message in error and error.count("\n") == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["golds.json", "preds.json"]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"task": "LongLaMP_product_review_user", "golds": [', "invalid JSON at line 1, column 52: Expecting value"),
        ('{"task": "LongLaMP_product_review_user", "golds": [{"id": "a", "output": "caf\xe9"}]}'.encode("latin-1"),
         "not UTF-8 text (invalid byte b'\\xe9' at offset 77); save the file as UTF-8"),
    ],
    ids=["invalid json", "latin-1"],
)
def test_eval_task_refuses_unreadable_files(tmp_path, capsys, raw, message):
    golds = write_task(tmp_path / "golds.json", gold_entries())
    preds = tmp_path / "preds.json"
    preds.write_bytes(raw)
    code, error = run_main(eval_task.main, ["--golds_json", str(golds), "--preds_json", str(preds), "--output_file",
                                            str(tmp_path / "out.json"), *FAST], capsys)
    assert code == EXIT_BAD_INPUT and f"{preds}: {message}" in error
    assert not (tmp_path / "out.json").exists()


def test_eval_task_refuses_an_empty_gold_and_a_task_name_that_disagrees(tmp_path, capsys):
    entries = gold_entries()
    entries[4]["output"] = "  "
    golds = write_task(tmp_path / "golds.json", entries)
    preds = write_task(tmp_path / "preds.json", prediction_entries())
    args = ["--golds_json", str(golds), "--preds_json", str(preds), "--output_file", str(tmp_path / "o.json"), *FAST]
    code, error = run_main(eval_task.main, args, capsys)
    assert code == EXIT_BAD_INPUT and "golds[4] (id 'id-4'): the gold output is empty" in error
    write_task(golds, gold_entries())
    code, error = run_main(eval_task.main, args + ["--task_name", "topic_writing_user"], capsys)
    assert code == EXIT_BAD_INPUT and "task names disagree: --task_name LongLaMP_topic_writing_user" in error
    code, error = run_main(eval_task.main, args + ["--task_name", "LaMP_4"], capsys)
    assert code == EXIT_BAD_INPUT and "unknown LongLaMP task name 'LaMP_4'" in error and error.count("\n") == 1
    assert not (tmp_path / "o.json").exists()


def make_zip(path: Path, files: dict[str, bytes | str], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def task_json(entries: list[dict], task: str = TASK) -> str:
    return json.dumps({"task": task, "golds": entries})


@pytest.fixture
def golds_zip(tmp_path):
    return make_zip(tmp_path / "golds.zip", {
        "golds/review.json": task_json(gold_entries()),
        "golds/topic.json": task_json(gold_entries(4), "LongLaMP_topic_writing_temporal"),
    })


@pytest.mark.multiprocess
@pytest.mark.slow
def test_eval_all_script_scores_the_tasks_it_has_and_lists_the_missing(tmp_path, golds_zip):
    preds_zip = make_zip(tmp_path / "preds.zip", {
        "preds/anything.json": task_json(prediction_entries()),
        "__MACOSX/preds/._anything.json": b"\x00\x05\x16\x07 mac metadata",
        "README.txt": "not a task file",
    })
    temp_dir, out = tmp_path / "extract", tmp_path / "results.json"
    done = run_script("eval_all.py", "--golds_zip", str(golds_zip), "--preds_zip", str(preds_zip), "--temp_dir",
                      str(temp_dir), "--output_file", str(out), "--per_sample_dir", str(tmp_path / "samples"), *FAST)
    assert done.returncode == 0, done.stderr
    assert "no predictions for LongLaMP_topic_writing_temporal" in done.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert list(report["tasks"]) == [TASK] and report["missing_predictions"] == ["LongLaMP_topic_writing_temporal"]
    single = tasks.evaluate_files(write_task(tmp_path / "g.json", gold_entries()),
                                      write_task(tmp_path / "p.json", prediction_entries()),
                                      per_sample_file=tmp_path / "single.jsonl", bootstrap=100, num_workers=1)
    assert report["tasks"][TASK]["metrics"] == single["metrics"]
    # one per-sample file per scored task, in eval_task.py's format, with its numbers
    assert [p.name for p in (tmp_path / "samples").iterdir()] == [f"{TASK}.per_sample.jsonl"]
    assert (tmp_path / "samples" / f"{TASK}.per_sample.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()
    assert report["tasks"][TASK]["golds_json"] == f"{golds_zip}:golds/review.json"
    assert report["settings"] == single["settings"] and report["versions"] == single["versions"]
    assert list(temp_dir.iterdir()) == []  # the extracted files are gone


BAD_ZIPS = {
    "path traversal": ({"../evil.json": task_json(prediction_entries())}, (), "would be written outside"),
    "absolute path": ({"/tmp/evil.json": task_json(prediction_entries())}, (), "would be written outside"),
    "drive letter": ({"C:/evil.json": task_json(prediction_entries())}, (), "would be written outside"),
    "symbolic link": ({}, ("link.json",), "is a symbolic link"),
    "zip bomb": ({"bomb.json": " " * (3 * 2**20)}, (), "refused as a possible zip bomb"),
    "same task twice": ({"a.json": task_json(prediction_entries()), "b.json": task_json(prediction_entries())}, (),
                        f"two files for {TASK}"),
    "no task in common": ({"a.json": task_json(gold_entries(4), "abstract_generation_user")}, (),
                          "has predictions for none of the tasks"),
    "bad file inside": ({"p/a.json": task_json(prediction_entries(9))}, (), "preds.zip:p/a.json does not match"),
    "no json": ({"notes.txt": "hello"}, (), "no JSON task file found"),
}


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
def test_eval_all_refuses_bad_zips_and_writes_nothing(tmp_path, golds_zip, capsys, case):
    files, links, message = BAD_ZIPS[case]
    preds_zip = make_zip(tmp_path / "preds.zip", files, links)
    temp_dir, out = tmp_path / "extract", tmp_path / "results.json"
    code, error = run_main(eval_all.main, ["--golds_zip", str(golds_zip), "--preds_zip", str(preds_zip), "--temp_dir",
                                           str(temp_dir), "--output_file", str(out), "--max_unzipped_mb", "1",
                                           "--per_sample_dir", str(tmp_path / "samples"), *FAST],
                           capsys)
    assert code == EXIT_BAD_INPUT and message in error
    assert not out.exists() and list(temp_dir.iterdir()) == [] and not (tmp_path / "samples").exists()
    assert not (tmp_path / "evil.json").exists() and not Path("/tmp/evil.json").exists()


def test_eval_all_refuses_a_file_that_is_not_a_zip(tmp_path, golds_zip, capsys):
    not_zip = tmp_path / "preds.zip"
    not_zip.write_text("plain text")
    code, error = run_main(eval_all.main, ["--golds_zip", str(golds_zip), "--preds_zip", str(not_zip), "--output_file",
                                           str(tmp_path / "out.json"), *FAST], capsys)
    assert code == EXIT_BAD_INPUT and f"{not_zip}: not a readable zip file" in error
    assert not (tmp_path / "out.json").exists()


def test_eval_all_takes_the_readmes_relative_temp_dir(tmp_path, golds_zip, monkeypatch):
    """`--temp_dir tmp` as the README writes it, run from another folder: it crashed with a traceback."""
    make_zip(tmp_path / "preds.zip", {"p/review.json": task_json(prediction_entries())})
    monkeypatch.chdir(tmp_path)
    assert eval_all.main(["--golds_zip", "golds.zip", "--preds_zip", "preds.zip", "--temp_dir", "tmp",
                          "--output_file", "results.json", *FAST]) == 0
    assert list(json.loads((tmp_path / "results.json").read_text())["tasks"]) == [TASK]
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("extra, message", [
    (["--bootstrap", "-5"], "argument --bootstrap: must be 0 or more, got -5"),
    (["--seed", "-1"], "argument --seed: must be 0 or more, got -1"),
    (["--metrics", "rouge1,meteor,rouge1"], "rouge1 given more than once"),
    (["--num_workers", "0"], "argument --num_workers: must be at least 1"),
    (["--output_file", "."], "argument --output_file: . is a folder"),
    (["--temp_dir", "golds.zip"], "argument --temp_dir: golds.zip is a file, not a folder"),
])
def test_bad_scoring_flags_are_refused_before_any_work(tmp_path, golds_zip, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    preds_zip = make_zip(tmp_path / "preds.zip", {"p/review.json": task_json(prediction_entries())})
    golds = write_task(tmp_path / "golds.json", gold_entries())
    preds = write_task(tmp_path / "preds.json", prediction_entries())
    before = sorted(p.name for p in tmp_path.iterdir())
    commands = [(eval_all.main, ["--golds_zip", str(golds_zip), "--preds_zip", str(preds_zip)])]
    if "--temp_dir" not in extra:
        commands.append((eval_task.main, ["--golds_json", str(golds), "--preds_json", str(preds)]))
    for main, inputs in commands:
        flags = {"--output_file": "out.json", **dict(zip(extra[::2], extra[1::2]))}
        code, error = run_main(main, [*inputs, *FAST[:2], *[x for pair in flags.items() for x in pair]], capsys)
        assert code == EXIT_BAD_INPUT and message in error and error.count("\n") == 1 and "Traceback" not in error
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
