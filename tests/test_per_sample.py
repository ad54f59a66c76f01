"""Per-sample score files (scoring/per_sample.py) and eval_task.py's --per_sample_file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.task_files import TASK, gold_entries, prediction_entries, run_script, write_task

from longlamp_errors import DataError
from longlamp_runs import PER_SAMPLE_FILE
from scoring import metrics, per_sample, tasks


@pytest.mark.multiprocess
@pytest.mark.slow
def test_eval_task_writes_one_line_per_example_with_every_per_sample_metric(tmp_path):
    golds = write_task(tmp_path / "golds.json", gold_entries(users=True))
    preds = write_task(tmp_path / "preds.json", prediction_entries())
    samples = tmp_path / "out" / "samples.jsonl"
    done = run_script("eval_task.py", "--golds_json", str(golds), "--preds_json", str(preds), "--output_file",
                      str(tmp_path / "r.json"), "--per_sample_file", str(samples), "--num_workers", "1",
                      "--bootstrap", "0", "--metrics", "rouge1,rougeL,meteor,sacrebleu")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    by_id = {e["id"]: e["output"] for e in prediction_entries()}
    outputs = [by_id[e["id"]] for e in gold_entries()]
    expected = metrics.per_sample_scores(outputs, [e["output"] for e in gold_entries()],
                                         metrics=("rouge1", "rougeL", "meteor"), num_workers=1)
    assert [line["id"] for line in lines] == [e["id"] for e in gold_entries()]  # gold order
    assert [line["user"] for line in lines] == [e["user"] for e in gold_entries(users=True)]
    assert [line["prediction_words"] for line in lines] == [len(text.split()) for text in outputs]
    assert lines[3]["prediction_words"] == 0 and lines[3]["rouge1"] == 0.0  # the empty prediction is kept
    assert set(lines[0]) == {"id", "user", "prediction_words", "rouge1", "rougeL", "meteor"}  # no corpus metric
    for name in ("rouge1", "rougeL", "meteor"):
        assert [line[name] for line in lines] == expected[name].tolist(), name
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["metrics"]["meteor"] == np.mean([line["meteor"] for line in lines])


def test_per_sample_file_reads_back_exactly(tmp_path):
    scores = {"rouge1": np.array([0.1, 1 / 3, 0.0]), "meteor": np.array([np.nextafter(0.5, 1), 0.2, 0.0])}
    path = tmp_path / PER_SAMPLE_FILE
    per_sample.write(path, per_sample.rows(["a", "b", "c"], ["one two", "", "x"], scores))
    ids, users, found = per_sample.read(path)
    assert ids == ["a", "b", "c"] and users == [None, None, None]
    for name, values in scores.items():
        np.testing.assert_array_equal(found[name], values)


def test_no_per_sample_file_is_written_for_bad_input(tmp_path):
    golds = write_task(tmp_path / "golds.json", gold_entries())
    preds = write_task(tmp_path / "preds.json", prediction_entries()[:5])
    samples = tmp_path / "samples.jsonl"
    with pytest.raises(ValueError, match="no prediction"):
        tasks.evaluate_files(golds, preds, TASK, per_sample_file=samples, bootstrap=0, num_workers=1)
    assert not samples.exists()


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "m": 1}\nnot json\n', "line 2: invalid JSON"),
    ('{"id": "a", "m": 1}\n{"id": "b", "n": 1}\n', "line 2: metrics"),
    ('{"id": "a", "m": "high"}\n', "line 1: m is 'high'"),
    ('{"m": 1}\n', 'string "id"'),
    ("", "no examples"),
])
def test_a_bad_per_sample_file_is_refused_naming_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        per_sample.read(path)
