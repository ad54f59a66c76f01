"""evaluation/leaderboard.py (its library: evaluation/comparison/) on generated run folders: ranking, intervals,
significance, runs kept apart, outputs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation import aggregate, metrics, per_sample
from evaluation.comparison import significance
from evaluation.comparison.board import build
from longlamp_runs import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
TASK = "LongLaMP_product_review_user"
IDS = [f"id-{i}" for i in range(40)]


def zero_shot_run(folder: Path, level: float, seed: int, retriever: str | None = "bm25", k: int | None = 1,
                  split: str = "validation", nltk_version: str | None = None, model: str = "tiny") -> dict:
    """A zero-shot run folder as zero_shot.py writes it, with a per-sample file; returns its scores."""
    rng = np.random.default_rng(seed)
    scores = {name: np.clip(rng.normal(level, 0.05, len(IDS)), 0, 1) for name in metrics.PER_SAMPLE_METRICS}
    per_sample.write(folder / per_sample.FILE_NAME, per_sample.rows(IDS, ["a b c"] * len(IDS), scores))
    versions = metrics.library_versions(metrics.PER_SAMPLE_METRICS, "python")
    if nltk_version:
        versions["nltk"] = nltk_version
    settings = {"task": TASK, "data": "product_review_user", "split": split, "model": model,
                "use_profile": retriever is not None}
    if retriever:
        settings.update(retriever=retriever, num_retrieved=k)
    write_json_atomic(folder / "scores.json", {
        "task": TASK, "examples": len(IDS), "settings": settings,
        "scores": {"versions": versions, "settings": metrics.scoring_settings(metrics.PER_SAMPLE_METRICS, "python")}})
    return scores


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    scores = {
        "bm25-k1": zero_shot_run(root / "bm25-k1", 0.30, 1, "bm25", 1),
        "bm25-k4": zero_shot_run(root / "bm25-k4", 0.34, 2, "bm25", 4),
        "contriever-k1": zero_shot_run(root / "contriever-k1", 0.31, 3, "contriever", 1),
        "on-test": zero_shot_run(root / "on-test", 0.50, 4, split="test"),
        "old-nltk": zero_shot_run(root / "old-nltk", 0.50, 5, nltk_version="3.8.1"),
    }
    baseline = zero_shot_run(root / "bm25-k4" / "no_profile", 0.25, 6, retriever=None, k=None)
    write_json_atomic(root / "unscored" / "scores.json", {"task": TASK, "settings": {}, "scores": None,
                                                          "not_scored": "no reference outputs"})
    (root / "empty").mkdir()
    output = root / "board"
    result = build([root / name for name in [*scores, "unscored", "empty"]], output, "rougeL",
                               num_resamples=500, seed=3)
    return result, scores, baseline, output


def test_runs_are_ranked_by_the_metric_with_their_bootstrap_intervals(board):
    result, scores, _, _ = board
    main = result["configs"][TASK][0]
    assert main["apart"] is None and [row["run"] for row in main["rows"]] == ["bm25-k4", "contriever-k1", "bm25-k1"]
    for row in main["rows"]:
        values = scores[row["run"]]["rougeL"]
        interval = aggregate.bootstrap_intervals({"m": values}, 500, 0.95, 3)["m"]
        assert (row["mean"], row["low"], row["high"]) == (np.mean(values), interval["low"], interval["high"])


def test_each_run_is_tested_against_the_best_and_against_its_own_no_profile_baseline(board):
    result, scores, baseline, _ = board
    best, second, third = result["configs"][TASK][0]["rows"]
    assert best["vs_best"] is None and best["p_vs_best"] is None
    best_values = scores["bm25-k4"]["rougeL"]
    for row in (second, third):
        mine = scores[row["run"]]["rougeL"]
        assert row["vs_best"] == np.mean(mine - best_values) < 0
        assert row["p_vs_best"] == significance.sign_flip_p_value(best_values, mine, 500, 3)
    assert best["vs_no_profile"] == np.mean(best_values - baseline["rougeL"]) > 0
    assert best["p_vs_no_profile"] == significance.sign_flip_p_value(baseline["rougeL"], best_values, 500, 3) < 0.01
    assert second["vs_no_profile"] is None  # contriever-k1 has no no_profile/


def test_runs_on_another_split_or_scorer_are_ranked_apart_with_the_reason(board):
    result, _, _, _ = board
    apart = {group["rows"][0]["run"]: group["apart"] for group in result["configs"][TASK][1:]}
    assert set(apart) == {"on-test", "old-nltk"}
    assert "split 'test' (the main ranking: 'validation')" in apart["on-test"]
    assert "scorer" in apart["old-nltk"] and "3.8.1" in apart["old-nltk"]
    reasons = {Path(s["path"]).name: s["reason"] for s in result["not_ranked"]}
    assert set(reasons) == {"unscored", "empty"} and reasons["unscored"] == "no reference outputs"
    assert "not a run folder" in reasons["empty"]


def test_markdown_csv_html_and_plot_are_written(board):
    result, _, _, output = board
    markdown = (output / "leaderboard.md").read_text(encoding="utf-8")
    assert f"## {TASK}" in markdown and "Ranked apart" in markdown and "| 1 | bm25-k4 |" in markdown
    rows = list(csv.DictReader((output / f"{TASK}.csv").open(encoding="utf-8")))
    assert [r["run"] for r in rows if r["group"] == "0"] == ["bm25-k4", "contriever-k1", "bm25-k1"]
    page = (output / "leaderboard.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "<script" not in page and "src='http" not in page
    assert (output / f"{TASK}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((output / "leaderboard.json").read_text(encoding="utf-8")) == json.loads(json.dumps(result))


def write_task(path: Path, outputs: list[str], users: bool = False) -> Path:
    entries = [{"id": f"id-{i}", "output": text, **({"user": f"u{i % 2}"} if users else {})}
               for i, text in enumerate(outputs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"task": TASK, "golds": entries}), encoding="utf-8")
    return path


GOLDS = ["the battery lasts two days", "a fine screen and a fair price", "I walked home happy", "bad quality"]
PREDICTIONS = ["the battery lasts", "a screen and a price", "I went home", "good quality"]


def test_runs_without_per_sample_files_are_scored_from_their_predictions_and_cached(tmp_path):
    run = tmp_path / "run"
    write_task(run / "golds.json", GOLDS, users=True)
    write_task(run / "predictions.json", PREDICTIONS)
    write_json_atomic(run / "scores.json", {"task": TASK, "settings": {"split": "validation", "data": "x"},
                                            "scores": {"versions": {}, "settings": {}}})
    training = tmp_path / "trained"
    write_task(training / "predictions_test.json", GOLDS[:3] + ["quality"])
    write_json_atomic(training / "final" / "training_config.json", {"model_name": "tiny-t5", "use_profile": False,
                                                                    "test_data": "product_review_user"})
    golds = write_task(tmp_path / "test_golds.json", GOLDS)
    result = build([run, training], tmp_path / "board", "meteor", golds=[golds], num_resamples=100)
    rows = {row["run"]: row for group in result["configs"][TASK] for row in group["rows"]}
    expected = metrics.per_sample_scores(PREDICTIONS, GOLDS, metrics=("meteor",), num_workers=1)["meteor"]
    assert rows["run"]["mean"] == np.mean(expected) and rows["trained"]["kind"] == "training"
    assert len(list((tmp_path / "board" / "cache").glob("*.jsonl"))) == 2
    without_golds = build([training], tmp_path / "board2", "meteor", num_resamples=100)
    assert "pass its test golds with --golds" in without_golds["not_ranked"][0]["reason"]


def test_leaderboard_command_refuses_a_missing_folder_and_a_corpus_metric(tmp_path):
    for args, message in [([str(tmp_path / "nowhere")], "no such run folder"),
                          ([str(tmp_path), "--metric", "sacrebleu"], "per-sample metric")]:
        done = subprocess.run([sys.executable, str(REPO / "evaluation" / "leaderboard.py"), *args, "--output",
                               str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "out").exists()

