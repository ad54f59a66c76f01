"""Paired significance (scoring/significance.py) against hand-computed cases, brute force and scipy; and
evaluation/compare.py end to end."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from longlamp_errors import DataError
from scoring import files, metrics, significance
from scoring.paired import comparison

REPO = Path(__file__).resolve().parents[1]
TASK = "LongLaMP_product_review_user"


def mean_difference(x, y, axis=-1):
    return np.mean(y - x, axis=axis)


@pytest.mark.parametrize("differences, expected", [
    ([1, 2, 3], 0.25),  # sums of +-1 +-2 +-3: only 6 and -6 reach |6|: 2 of 8 patterns
    ([3, 1, 1, 1], 0.125),  # only all-plus and all-minus reach |6|: 2 of 16
    ([1, -1], 1.0),  # the observed mean is 0: every pattern reaches it
    ([2, 2], 0.5),  # +2+2 and -2-2 of the 4 patterns
    ([5], 1.0),  # one pair: both patterns reach |5|
])
def test_exact_sign_flip_p_values_of_hand_computed_cases(differences, expected):
    b = np.array(differences, dtype=float)
    assert significance.is_exact(len(b), significance.DEFAULT_RESAMPLES)
    assert significance.sign_flip_p_value(np.zeros_like(b), b) == expected


def test_exact_sign_flip_equals_a_brute_force_in_exact_arithmetic():
    rng = np.random.default_rng(1)
    for n in range(1, 13):
        a, b = rng.integers(0, 6, n) / 5, rng.integers(0, 6, n) / 5  # ties on purpose
        d = [Fraction(int(round(5 * y)) - int(round(5 * x))) for x, y in zip(a, b)]
        observed = abs(sum(d))
        hits = sum(abs(sum(s * v for s, v in zip(signs, d))) >= observed
                   for signs in itertools.product((1, -1), repeat=n))
        assert significance.sign_flip_p_value(a, b) == hits / 2**n, n


def test_exact_sign_flip_equals_scipys_paired_permutation_test():
    rng = np.random.default_rng(2)
    for n in (4, 9, 12):
        a = rng.random(n)
        b = a + rng.normal(0.1, 0.2, n)
        expected = scipy.stats.permutation_test((a, b), mean_difference, permutation_type="samples",
                                                vectorized=True, n_resamples=10_000).pvalue
        assert significance.sign_flip_p_value(a, b, 10_000) == pytest.approx(expected, rel=1e-12)


def test_random_sign_flip_agrees_with_scipy_within_monte_carlo_error():
    rng = np.random.default_rng(3)
    a = rng.random(200)
    b = a + rng.normal(0.02, 0.2, 200)
    ours = significance.sign_flip_p_value(a, b, 20_000, seed=0)
    theirs = scipy.stats.permutation_test((a, b), mean_difference, permutation_type="samples", vectorized=True,
                                          n_resamples=20_000, rng=np.random.default_rng(5)).pvalue
    assert not significance.is_exact(200, 20_000) and 0.02 < ours < 0.9
    assert abs(ours - theirs) < 4 * np.sqrt(ours * (1 - ours) / 20_000) * 2


def test_random_sign_flip_never_gives_zero_the_plus_one_correction():
    a, b = np.zeros(60), np.ones(60)
    assert significance.sign_flip_p_value(a, b, 999, seed=4) == 1 / 1000


def test_seeded_tests_repeat_and_differ_by_seed():
    rng = np.random.default_rng(6)
    a, b = rng.random(100), rng.random(100)
    first = significance.compare({"m": a}, {"m": b}, 500, 0.95, seed=1)
    assert first == significance.compare({"m": a}, {"m": b}, 500, 0.95, seed=1)
    assert first != significance.compare({"m": a}, {"m": b}, 500, 0.95, seed=2)


def test_paired_bootstrap_equals_scipys_percentile_bootstrap_with_the_same_generator():
    rng = np.random.default_rng(7)
    a = rng.random(80)
    b = a + rng.normal(0.05, 0.2, 80)
    low, high = significance.paired_bootstrap_interval(a, b, 3000, 0.9, seed=11)
    expected = scipy.stats.bootstrap((a, b), mean_difference, paired=True, vectorized=True, n_resamples=3000,
                                     confidence_level=0.9, method="percentile",
                                     rng=np.random.default_rng(11)).confidence_interval
    assert (low, high) == pytest.approx((expected.low, expected.high), rel=1e-12)
    assert low < np.mean(b - a) < high


def test_bootstrap_of_a_constant_difference_is_that_difference():
    a = np.linspace(0, 1, 30)
    assert significance.paired_bootstrap_interval(a, a + 0.25, 200) == pytest.approx((0.25, 0.25))


def test_user_means_count_each_user_once():
    users, means = significance.user_means({"m": np.array([1.0, 0.0, 0.5, 0.25])}, ["u2", "u1", "u2", "u1"])
    assert users == ["u1", "u2"] and means["m"].tolist() == [0.125, 0.75]


def test_unpaired_input_is_refused():
    with pytest.raises(ValueError, match="same non-zero length"):
        significance.sign_flip_p_value(np.zeros(3), np.zeros(4))


def write_task(path: Path, outputs: list[str], users: list[str] | None = None) -> Path:
    entries = [{"id": f"id-{i}", "output": text} for i, text in enumerate(outputs)]
    for entry, user in zip(entries, users or []):
        entry["user"] = user
    path.write_text(json.dumps({"task": TASK, "golds": entries}), encoding="utf-8")
    return path


def run_compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "evaluation" / "compare.py"), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


GOLDS = ["the battery lasts two days and the screen is bright", "a fine paper on learning with data",
         "great price, bad quality", "the house is big and the car is fast", "I walked home in the rain",
         "this product works as described"]
BASELINE = ["battery", "a paper", "price", "the house", "home", "product"]
OURS = ["the battery lasts days", "a fine paper on data", "great price", "the house is big", "I walked home",
        "this product works"]


@pytest.mark.slow
def test_compare_command_writes_the_librarys_comparison_by_example_and_by_user(tmp_path):
    users = ["u1", "u1", "u2", "u2", "u2", "u3"]
    golds, a, b = (write_task(tmp_path / f"{name}.json", texts, users if name == "golds" else None)
                   for name, texts in (("golds", GOLDS), ("a", BASELINE), ("b", OURS)))
    out = tmp_path / "cmp.json"
    done = run_compare("--golds", str(golds), "--preds_a", str(a), "--preds_b", str(b), "--metrics",
                       "rouge1,meteor", "--resamples", "2000", "--seed", "3", "--by_user", "--output_file", str(out),
                       "--num_workers", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    score_a = metrics.per_sample_scores(BASELINE, GOLDS, metrics=("rouge1", "meteor"), num_workers=1)
    score_b = metrics.per_sample_scores(OURS, GOLDS, metrics=("rouge1", "meteor"), num_workers=1)
    assert result["metrics"] == significance.compare(score_a, score_b, 2000, 0.95, 3)
    assert result["metrics"]["rouge1"]["p_value"] == 2 / 64  # exact: every one of the 6 pairs improves
    _, user_a = significance.user_means(score_a, users)
    _, user_b = significance.user_means(score_b, users)
    assert result["by_user"]["metrics"] == significance.compare(user_a, user_b, 2000, 0.95, 3)
    assert result["by_user"]["settings"]["units"] == 3 and result["by_user"]["metrics"]["rouge1"]["p_value"] == 0.25
    assert "rouge1" in done.stdout and "3 users" in done.stdout


@pytest.mark.slow
def test_compare_command_refuses_bad_input_with_one_error_line(tmp_path):
    golds = write_task(tmp_path / "golds.json", GOLDS)
    a = write_task(tmp_path / "a.json", BASELINE)
    short = write_task(tmp_path / "short.json", OURS[:4])
    out = tmp_path / "cmp.json"
    for args, message in [
        (["--preds_b", str(short)], "gold ids have no prediction"),
        (["--preds_b", str(a), "--by_user"], "needs a 'user' field"),
        (["--preds_b", str(a), "--metrics", "sacrebleu"], "corpus-level"),
        (["--preds_b", str(a), "--resamples", "0"], "argument --resamples: must be at least 1"),
    ]:
        done = run_compare("--golds", str(golds), "--preds_a", str(a), "--output_file", str(out), *args)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, args
        assert not out.exists()


def test_task_files_of_different_tasks_are_not_compared(tmp_path):
    golds = files.read_task_file(write_task(tmp_path / "g.json", GOLDS), "golds")
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"task": "LongLaMP_abstract_generation_user",
                                 "golds": [{"id": f"id-{i}", "output": t} for i, t in enumerate(OURS)]}))
    with pytest.raises(DataError, match="task names disagree"):
        comparison(golds, golds, files.read_task_file(other, "predictions"), ("rouge1",), 100, 0.95, 0, False, 1)
