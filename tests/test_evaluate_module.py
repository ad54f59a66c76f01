"""The `evaluate` metric module in evaluation/longlamp_metric: loads from its path offline, same numbers."""

from __future__ import annotations

from pathlib import Path

import evaluate
import pytest

from scoring import metrics

MODULE = str(Path(__file__).resolve().parents[1] / "evaluation" / "longlamp_metric")
PREDICTIONS = ["The battery lasts two days and the screen is bright.", "", "A fine paper\non learning models."]
REFERENCES = ["The battery lasted for two days; the screen is very bright.", "Anything at all.",
              "A good paper on models\nthat learn."]


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    return evaluate.load(MODULE, cache_dir=str(tmp_path_factory.mktemp("evaluate-cache")))


@pytest.mark.parametrize("as_lists", [False, True], ids=["strings", "single-element lists"])
def test_module_returns_the_library_result(module, as_lists):
    references = [[r] for r in REFERENCES] if as_lists else REFERENCES
    found = module.compute(predictions=PREDICTIONS, references=references, user_ids=["a", "a", "b"], seed=3,
                           num_workers=1)
    expected = metrics.score(PREDICTIONS, REFERENCES, user_ids=["a", "a", "b"], seed=3, num_workers=1)
    assert found == expected
    assert found["metrics"]["meteor"] > 0 and found["num_empty_predictions"] == 1


def test_module_passes_metric_choices_through(module):
    found = module.compute(predictions=PREDICTIONS, references=REFERENCES, metrics=("rougeL", "sacrebleu"),
                           bootstrap=0)
    assert found["metrics"] == metrics.score(PREDICTIONS, REFERENCES, metrics=("rougeL", "sacrebleu"),
                                             bootstrap=0)["metrics"]


def test_module_refuses_several_references_per_prediction(module):
    with pytest.raises(ValueError, match="one reference per prediction"):
        module.compute(predictions=["a"], references=[["a", "b"]])
