"""One paired comparison behind every page (issue 22): a real run with and without profile (evaluate_llm.py with a
tiny model on the sample), then its comparison.json, its card, the runner's results.md laid out from the same two
runs and the leaderboard of the run: the with-profile minus no-profile difference, interval and p-value they print
are the same numbers, scoring/significance.py's `compare` with its one default number of resamples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark_runner.experiment import parse_experiment
from benchmark_runner.results import collect, write_results
from evaluation import evaluate_llm
from evaluation.comparison.board import build
from longlamp_runs import GOLDS_FILE, PER_SAMPLE_FILE, PREDICTIONS_FILE
from scoring import HEADLINE_METRICS, significance
from scoring.paired import read_pair
from scoring.tasks import evaluate_files

CONFIG = "product_review_user"
TASK = "LongLaMP_product_review_user"
LABELS = {"rouge1": "ROUGE-1", "rougeL": "ROUGE-L", "meteor": "METEOR"}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_llama, sample_dir, sample_cache) -> Path:
    folder = tmp_path_factory.mktemp("pair") / "run"
    assert evaluate_llm.main(["--validation_data", CONFIG, "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
                              "--model_name", str(tiny_llama), "--output_dir", str(folder), "--batch_size", "2",
                              "--max_eval_examples", "5", "--use_profile", "--num_retrieved", "2",
                              "--compare_no_profile",  # sampled: a random model's greedy text repeats one token
                              "--max_new_tokens", "48", "--do_sample", "--temperature", "1.0"]) == 0
    return folder


def runner_layout(run: Path, root: Path) -> Path:
    """The experiment runner's folders for the same two runs: generate/ (predictions, golds) and score/ (the
    scorer's scores.json, per-sample file), as its stages leave them."""
    for variant, source in (("no_profile", run / "no_profile"), ("bm25-k2", run)):
        folder = root / "runs" / CONFIG / "tiny" / variant
        (folder / "generate").mkdir(parents=True)
        for name in (PREDICTIONS_FILE, GOLDS_FILE):
            shutil.copy(source / name, folder / "generate" / name)
        (folder / "score").mkdir()
        evaluate_files(folder / "generate" / GOLDS_FILE, folder / "generate" / PREDICTIONS_FILE,
                       output_file=folder / "score" / "scores.json", per_sample_file=folder / "score" / PER_SAMPLE_FILE,
                       bootstrap=200, seed=0, num_workers=1)
    return root


@pytest.mark.slow
def test_the_same_pair_reads_the_same_on_comparison_json_the_card_results_md_and_the_leaderboard(run, tmp_path):
    expected = json.loads((run / "comparison.json").read_text())["significance"]
    assert expected["settings"]["num_resamples"] == significance.DEFAULT_RESAMPLES
    pair = read_pair(run / "no_profile" / PER_SAMPLE_FILE, run / PER_SAMPLE_FILE)
    assert expected["metrics"] == significance.compare(pair.a, pair.b)  # the one function, its defaults
    assert len({row["difference"] for row in expected["metrics"].values()}) > 1  # numbers, not all zero

    card = (run / "README.md").read_text()
    root = runner_layout(run, tmp_path / "experiment")
    experiment = parse_experiment({"name": "pair", "output_dir": str(root), "configs": [CONFIG],
                                   "retrievers": {"bm25": {"retriever": "bm25"}}, "k": [2],
                                   "models": {"tiny": {"model_name": "tiny", "mode": "zero_shot"}},
                                   "scoring": {"bootstrap": 200, "seed": 0}}, "pair.yaml")
    results = collect(experiment)
    write_results(experiment, results)
    table = (root / "results.md").read_text()
    (row,) = [r for r in results["runs"] if r["variant"] == "bm25-k2"]

    for metric in HEADLINE_METRICS:
        e = expected["metrics"][metric]
        shown = f"{e['difference']:+.4f} [{e['low']:+.4f}, {e['high']:+.4f}]"
        # the card: difference, interval and p-value of the one comparison
        assert f"| {LABELS[metric]} | {e['difference']:+.4f} | [{e['low']:+.4f}, {e['high']:+.4f}] | " \
               f"{e['p_value']:.3g} |" in card
        # results.md: the same difference and interval, the p-value adjusted over its family
        assert {k: v for k, v in row["vs_no_profile"][metric].items() if k != "p_adjusted"} == e
        assert row["vs_no_profile"][metric]["p_adjusted"] >= e["p_value"]
        assert shown in table
        # the leaderboard: a table of one run with its baseline, so a family of one: the test's own p-value
        board = build([run], tmp_path / f"board-{metric}", metric)
        (ranked,) = board["configs"][TASK][0]["rows"]
        assert ranked["vs_no_profile"] == pytest.approx(e["difference"], abs=1e-15)
        assert ranked["p_vs_no_profile"] == e["p_value"]
        page = (tmp_path / f"board-{metric}" / "leaderboard.md").read_text()
        mark = "*" if e["p_value"] < significance.LEVEL else ""
        assert f"| {e['difference']:+.4f} | {e['p_value']:.3g}{mark} |" in page
