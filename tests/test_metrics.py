"""scoring.metrics.score: aggregates, empty predictions, input checks, and what the result records."""

from __future__ import annotations

import numpy as np
import pytest

from scoring import aggregate, metrics

PREDICTIONS = ["the cat sat on the mat", "", "a dog ran in the park today", "  the cat sat  "]
REFERENCES = ["the cat sat on the mat", "gold text that is never matched", "a dog ran in the park", "the cat sat"]


@pytest.fixture(scope="module")
def per_sample():
    return metrics.per_sample_scores(PREDICTIONS, REFERENCES)


def test_identical_texts_score_one_and_empty_predictions_score_zero(per_sample):
    for name, values in per_sample.items():
        assert values[1] == 0.0, name
        if name.startswith("rouge"):
            assert values[0] == values[3] == 1.0, name  # texts are stripped before scoring
    assert per_sample["meteor"][0] > 0.99


def test_empty_predictions_are_counted_not_dropped(per_sample):
    result = metrics.score(PREDICTIONS, REFERENCES, bootstrap=0)
    assert result["num_samples"] == 4 and result["num_empty_predictions"] == 1
    assert result["metrics"]["rouge1"] == pytest.approx(np.mean(per_sample["rouge1"]))
    assert result["metrics"]["rouge1"] < np.mean(np.delete(per_sample["rouge1"], 1))


def test_per_user_averages_count_each_user_once(per_sample):
    result = metrics.score(PREDICTIONS, REFERENCES, user_ids=["u1", "u1", "u1", "u2"], bootstrap=0)
    assert result["per_user"]["num_users"] == 2
    expected = (np.mean(per_sample["rougeL"][:3]) + per_sample["rougeL"][3]) / 2
    assert result["per_user"]["metrics"]["rougeL"] == pytest.approx(expected)
    assert "per_user" not in metrics.score(PREDICTIONS, REFERENCES, bootstrap=0)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    first = metrics.score(PREDICTIONS * 10, REFERENCES * 10, bootstrap=200, seed=7)
    again = metrics.score(PREDICTIONS * 10, REFERENCES * 10, bootstrap=200, seed=7)
    other = metrics.score(PREDICTIONS * 10, REFERENCES * 10, bootstrap=200, seed=8)
    assert first["bootstrap"] == again["bootstrap"] and first["evaluate_compatible"] == again["evaluate_compatible"]
    assert first["bootstrap"]["intervals"] != other["bootstrap"]["intervals"]
    for name, interval in first["bootstrap"]["intervals"].items():
        assert interval["low"] < first["metrics"][name] < interval["high"], name
    assert first["bootstrap"]["num_resamples"] == 200 and first["bootstrap"]["confidence"] == 0.95


def test_bootstrap_resamples_are_shared_across_metrics():
    """Two identical columns get identical intervals only if every metric sees the same resamples."""
    values = np.random.default_rng(0).random(50)
    intervals = aggregate.bootstrap_intervals({"a": values, "b": values.copy()}, 300, 0.9, seed=3)
    assert intervals["a"] == intervals["b"]


def test_bootstrap_zero_disables_it():
    assert "bootstrap" not in metrics.score(PREDICTIONS, REFERENCES, bootstrap=0)


def test_result_records_settings_and_library_versions():
    result = metrics.score(PREDICTIONS, REFERENCES, metrics=("rougeL", "meteor", "sacrebleu"), bootstrap=0)
    assert list(result["metrics"]) == ["rougeL", "meteor", "sacrebleu"]
    assert result["settings"]["meteor"]["alpha"] == 0.9 and result["settings"]["rouge"]["score"] == "F-measure"
    assert {"python", "numpy", "rouge_score", "nltk", "sacrebleu"} <= set(result["versions"])
    assert "sacrebleu" not in result.get("bootstrap", {}).get("intervals", {})


def test_a_subset_of_metrics_computes_only_those():
    result = metrics.score(PREDICTIONS, REFERENCES, metrics=("rouge1",), bootstrap=0)
    assert list(result["metrics"]) == ["rouge1"] and "meteor" not in result["settings"]


@pytest.mark.parametrize(
    "predictions, references, kwargs, error, message",
    [
        (["a"], ["a", "b"], {}, ValueError, "1 predictions but 2 references"),
        ([], [], {}, ValueError, "no predictions"),
        (["a", None], ["a", "b"], {}, TypeError, "prediction 1 is NoneType"),
        (["a"], [3], {}, TypeError, "reference 0 is int"),
        (["a"], ["a"], {"metrics": ("rouge1", "bleu")}, ValueError, "metrics must be distinct names"),
        (["a"], ["a"], {"metrics": ("rouge1", "rouge1")}, ValueError, "metrics must be distinct names"),
        (["a"], ["a"], {"user_ids": ["u", "v"]}, ValueError, "2 user ids for 1 predictions"),
    ],
)
def test_bad_arguments_are_refused(predictions, references, kwargs, error, message):
    with pytest.raises(error, match=message):
        metrics.score(predictions, references, **kwargs)
