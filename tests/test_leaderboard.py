"""evaluation/leaderboard.py (its library: evaluation/comparison/) on generated run folders: ranking, intervals,
significance, runs kept apart, outputs; and on runs pushed to the local Hub stand-in, read back by repository id.
Bad files, kills, two instances and faulty Hubs: tests/test_adversarial_leaderboard.py."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.board_runs import CONFIG, TASK, zero_shot_run
from support.records import write_summary, write_training_run, zero_shot_record

from evaluation.comparison.board import build
from longlamp_io import write_json_atomic
from longlamp_runs import PUBLISHED_RESULTS_DIR
from scoring import aggregate, metrics, significance

REPO = Path(__file__).resolve().parents[1]


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
    write_summary(root / "unscored", zero_shot_record(), None, not_scored="no reference outputs")
    (root / "empty").mkdir()
    output = root / "board"
    result = build([root / name for name in [*scores, "unscored", "empty"]], output, "rougeL",
                               num_resamples=500, seed=3)
    return result, scores, baseline, output


def test_runs_are_ranked_by_the_metric_with_the_scorers_bootstrap_intervals(board):
    result, scores, _, _ = board
    main = result["configs"][TASK][0]
    assert main["apart"] is None and [row["run"] for row in main["rows"]] == ["bm25-k4", "contriever-k1", "bm25-k1"]
    for row in main["rows"]:
        values = scores[row["run"]]["rougeL"]
        interval = aggregate.bootstrap_intervals({"m": values}, aggregate.BOOTSTRAP_RESAMPLES, 0.95, 3)["m"]
        assert (row["mean"], row["low"], row["high"]) == (np.mean(values), interval["low"], interval["high"])


def test_a_run_on_ranked_data_ranks_beside_the_no_profile_run_of_its_config(tmp_path):
    """The experiment runner's layout: a retriever's run reads the ranked copy of the split, the no-profile run the
    config itself; both are one ranking, named by what tells them apart. A run on another file stands apart."""
    runs = tmp_path / "runs" / CONFIG / "tiny"
    zero_shot_run(runs / "no_profile" / "generate", 0.30, 1, retriever=None, k=None)
    zero_shot_run(runs / "bm25_k2" / "generate", 0.35, 2, k=2, data=str(tmp_path / "ranked" / f"{CONFIG}.arrow"),
                  ranked_by="bm25(k1=1.5,b=0.75)")
    zero_shot_run(runs / "copy" / "generate", 0.40, 3, retriever=None, k=None, data=str(tmp_path / "mine.parquet"))
    result = build([runs / name / "generate" for name in ("no_profile", "bm25_k2", "copy")], tmp_path / "board",
                   "rougeL", num_resamples=100)
    main, apart = result["configs"][TASK]
    assert main["data"] == CONFIG and [row["run"] for row in main["rows"]] == ["bm25_k2", "no_profile"]
    assert [row["run"] for row in apart["rows"]] == ["copy"] and "data '<local>/mine.parquet'" in apart["apart"]


def test_each_run_is_tested_against_the_best_and_its_own_no_profile_baseline_adjusted_per_family(board):
    result, scores, baseline, _ = board
    group = result["configs"][TASK][0]
    best, second, third = group["rows"]
    assert best["vs_best"] is None and best["p_vs_best"] is None
    ranked = {row["run"]: scores[row["run"]]["rougeL"] for row in group["rows"]}
    adjusted = significance.pairwise_max_t_p_values(ranked, "bm25-k4", 500, 3)  # every pair of the table
    for row in (second, third):
        mine = ranked[row["run"]]
        assert row["vs_best"] == np.mean(mine - ranked["bm25-k4"]) < 0
        assert row["p_vs_best"] == adjusted[row["run"]] >= significance.sign_flip_p_value(ranked["bm25-k4"], mine,
                                                                                             500, 3)
    assert best["vs_no_profile"] == np.mean(ranked["bm25-k4"] - baseline["rougeL"]) > 0
    # the family of runs with a baseline has one member here: its adjusted p-value is the test's own
    assert best["p_vs_no_profile"] == significance.sign_flip_p_value(baseline["rougeL"], ranked["bm25-k4"], 500,
                                                                     3) < 0.01
    assert second["vs_no_profile"] is None  # contriever-k1 has no no_profile/
    assert group["families"]["vs_best"]["comparisons"] == 3 and group["families"]["vs_no_profile"]["comparisons"] == 1


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
    write_summary(run, zero_shot_record(data="x"), {"num_samples": 4, "metrics": {"meteor": 0.5}})
    training = tmp_path / "trained"
    write_task(training / "predictions_test.json", GOLDS[:3] + ["quality"])
    write_training_run(training, model_name="tiny-t5", use_profile=False, test_data="product_review_user")
    golds = write_task(tmp_path / "test_golds.json", GOLDS)
    result = build([run, training], tmp_path / "board", "meteor", golds=[golds], num_resamples=100)
    rows = {row["run"]: row for group in result["configs"][TASK] for row in group["rows"]}
    expected = metrics.per_sample_scores(PREDICTIONS, GOLDS, metrics=("meteor",), num_workers=1)["meteor"]
    assert rows["run"]["mean"] == np.mean(expected) and rows["trained"]["kind"] == "training"
    assert len(list((tmp_path / "board" / "cache").glob("*.jsonl"))) == 2
    without_golds = build([training], tmp_path / "board2", "meteor", num_resamples=100)
    assert "pass its test golds with --golds" in without_golds["not_ranked"][0]["reason"]


def as_task(folder: Path, task: str) -> Path:
    """A generated run folder relabelled as a run of another task (config)."""
    summary = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
    summary["task"], summary["settings"]["task"]["config"] = task, task.removeprefix("LongLaMP_")
    write_json_atomic(folder / "scores.json", summary)
    return folder


def test_a_leaderboard_built_again_into_its_folder_removes_the_files_it_no_longer_writes_and_only_those(tmp_path):
    runs, output = tmp_path / "runs", tmp_path / "board"
    zero_shot_run(runs / "review", 0.3, 1)
    zero_shot_run(runs / "topic", 0.3, 2)
    as_task(runs / "topic", "LongLaMP_topic_writing_user")
    build([runs / "review", runs / "topic"], output, num_resamples=50)
    mine = output / "notes.md"
    mine.write_text("my notes")
    older = {p.name for p in output.iterdir() if p.is_file()}
    assert {"LongLaMP_topic_writing_user.csv", "LongLaMP_topic_writing_user.png", f"{TASK}.csv"} < older
    result = build([runs / "review"], output, num_resamples=50)
    assert list(result["configs"]) == [TASK]
    assert {p.name for p in output.iterdir() if p.is_file()} == {
        "leaderboard.md", "leaderboard.html", "leaderboard.json", f"{TASK}.csv", f"{TASK}.png", "notes.md"}
    assert mine.read_text() == "my notes"
    assert "topic_writing" not in (output / "leaderboard.md").read_text(encoding="utf-8")


# --- runs published on the Hub (the local stand-in), read back by repository id -----------------------------------


def strip_places(result: dict) -> dict:
    """The leaderboard without where each run was read from (a folder here, a repository there)."""
    for groups in result["configs"].values():
        for group in groups:
            for row in group["rows"]:
                row.pop("run"), row.pop("path")
    return result


@pytest.fixture(scope="module")
def published(tmp_path_factory, tiny_llama, sample_dir, sample_cache):
    """A real zero-shot run (with its no-profile baseline) pushed by push_results.py to a dataset repository and,
    beside the model's own weights, to a model repository, and a training run pushed to its model repository;
    then the stand-in, serving them, and its environment."""
    from support.hub import TOKEN, hub_env, run
    from support.hub_server import HubStandIn

    from evaluation import evaluate_llm

    root = tmp_path_factory.mktemp("published")
    folder = root / "run"
    assert evaluate_llm.main(["--validation_data", CONFIG, "--data_dir", str(sample_dir),
                              "--cache_dir", sample_cache, "--model_name", str(tiny_llama), "--output_dir",
                              str(folder), "--max_new_tokens", "8", "--batch_size", "2", "--max_eval_examples", "4",
                              "--use_profile", "--num_retrieved", "2", "--compare_no_profile"]) == 0
    trained = root / "trained"  # a training run as training/loop.py leaves it (its weights a stand-in file)
    write_training_run(trained, task=CONFIG, model_name="tiny-t5", use_profile=True, retriever="bm25",
                       num_retrieved=2, test_data=CONFIG)
    (trained / "final" / "model.safetensors").write_bytes(b"weights")
    write_task(trained / "predictions_test.json", PREDICTIONS)
    hub = HubStandIn(root / "hub", token=TOKEN)
    shutil.copytree(tiny_llama, hub.repo_dir("me/tiny", "models"))  # the evaluated model's repository
    (hub.repo_dir("me/plain", "models") / "sub").mkdir(parents=True)
    (hub.repo_dir("me/plain", "models") / "sub" / "results.json").write_text("{}")  # a repository, but no run
    with hub.running():
        env = hub_env(hub, root, HF_TOKEN=TOKEN)
        outputs = [run(["evaluation/push_results.py", "--run_dir", str(folder), "--hub_model_id", "me/results",
                        "--hub_repo_type", "dataset"], env),
                   run(["evaluation/push_results.py", "--run_dir", str(folder), "--hub_model_id", "me/tiny"], env),
                   run(["evaluation/push_results.py", "--run_dir", str(trained), "--hub_model_id", "me/trained"], env)]
        yield folder, trained, hub, env, root, outputs


def snapshot_files(root: Path, name: str) -> set[str]:
    """The files of repository me/NAME in the Hub cache (each snapshot's paths)."""
    snapshots = (root / "hf-home" / "hub").glob(f"*--me--{name}/snapshots/*")
    return {p.relative_to(snapshot).as_posix() for snapshot in snapshots for p in snapshot.rglob("*") if p.is_file()}


def leaderboard_command(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "evaluation" / "leaderboard.py"), *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("repo, inside", [("me/results", ""), ("datasets/me/results@main", ""),
                                          ("me/tiny", f"/{PUBLISHED_RESULTS_DIR}/{CONFIG}")])
def test_a_run_read_from_its_hub_repository_ranks_as_its_local_folder(published, repo, inside):
    from support.hub import TOKEN, assert_token_nowhere

    from publishing.runs import public_name

    folder, _, hub, env, root, _ = published
    output = root / f"board-{repo.replace('/', '-')}"
    done = leaderboard_command(repo, "--output", str(output), "--resamples", "200", "--seed", "1", env=env)
    assert done.returncode == 0, done.stderr
    from_hub = json.loads((output / "leaderboard.json").read_text(encoding="utf-8"))
    local = json.loads(json.dumps(build([folder], root / "board-local", num_resamples=200, seed=1)))
    rows = from_hub["configs"][TASK][0]["rows"]
    assert [(r["run"], r["path"]) for r in rows] == [(repo + inside, repo + inside)]
    local_model = local["configs"][TASK][0]["rows"][0]["model"]
    assert rows[0]["model"] == public_name(local_model) != local_model  # published without the machine's path
    rows[0]["model"] = local_model
    assert strip_places(from_hub) == strip_places(local)  # the same means, intervals, p-values, groups
    assert rows[0]["vs_no_profile"] is not None and rows[0]["p_vs_no_profile"] is not None
    fetched = snapshot_files(root, repo.split("@")[0].split("/")[-1])
    prefix = inside.strip("/") + "/" if inside else ""
    assert fetched == {f"{prefix}{sub}{name}" for sub in ("", "no_profile/")
                       for name in ("results.json", "per_sample.jsonl")}  # no weights, predictions, prompts, cards
    assert_token_nowhere(TOKEN, [root / "hf-home", output], [done.stdout, done.stderr], hub)


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_fetched_repository_is_read_again_from_the_cache_offline(published, tmp_path):
    _, _, _, env, _, _ = published
    boards = []
    for extra in ({}, {"HF_HUB_OFFLINE": "1"}):
        output = tmp_path / f"board{len(boards)}"
        done = leaderboard_command("me/results", "--output", str(output), env={**env, **extra})
        assert done.returncode == 0, done.stderr
        boards.append(json.loads((output / "leaderboard.json").read_text(encoding="utf-8")))
    assert boards[0] == boards[1]


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_training_run_read_from_its_hub_repository_is_scored_as_its_local_folder(published, tmp_path):
    _, trained, _, env, root, _ = published
    golds = write_task(tmp_path / "test_golds.json", GOLDS)
    done = leaderboard_command("me/trained", "--golds", str(golds), "--output", str(tmp_path / "hub"), "--metric",
                               "meteor", env=env)
    assert done.returncode == 0, done.stderr
    from_hub = json.loads((tmp_path / "hub" / "leaderboard.json").read_text(encoding="utf-8"))
    local = json.loads(json.dumps(build([trained], tmp_path / "local", "meteor", golds=[golds])))
    assert from_hub["configs"][TASK][0]["rows"][0]["run"] == "me/trained"
    assert strip_places(from_hub) == strip_places(local) and from_hub["configs"][TASK][0]["rows"][0]["k"] == 2
    assert snapshot_files(root, "trained") == {"training_config.json", "predictions_test.json"}  # no weights


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_hub_repository_that_holds_no_run_is_refused_by_name(published):
    _, _, _, env, root, _ = published
    for repo, message in [("me/plain", "me/plain: the model repository me/plain on the Hub holds no run published"),
                          ("me/nothing", "me/nothing: no such run folder, and no model or dataset repository")]:
        done = leaderboard_command(repo, "--output", str(root / "refused"), env=env)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (root / "refused").exists()
