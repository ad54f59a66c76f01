"""Author-style similarity (evaluation/style.py) with a tiny random BERT through DenseRetriever's encoding
(tests/tiny_models.make_encoder: a tokenizer that gives the test words distinct ids, so texts embed apart)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation import style
from longlamp_tasks import TASKS
from retrieval.dense import DenseRetriever
from tests.tiny_models import make_encoder

PROFILES = {"ann": ["cats dogs cats", "dogs tea"], "bob": ["code chess code", "chess maps"],
            "cyd": ["rain snow", "snow boats rain"]}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    torch.set_num_threads(1)
    path = make_encoder(tmp_path_factory.mktemp("encoders") / "tiny-bert")
    encoder = DenseRetriever(model_name=str(path), device="cpu", cache_dir=tmp_path_factory.mktemp("cache"))
    assert len({tuple(v) for v in encoder.embed([t for texts in PROFILES.values() for t in texts])}) == 6
    return encoder


def test_style_scores_equal_the_definition_computed_by_hand(encoder):
    predictions, users = ["cats tea dogs", "code maps", "snow jazz", "bread"], ["ann", "bob", "cyd", "ann"]
    found = style.style_scores(encoder, predictions, users, PROFILES)

    def unit(v):
        return v / np.linalg.norm(v)

    authors = {u: unit(np.mean([unit(encoder.embed([t])[0].astype(np.float64)) for t in texts], axis=0))
               for u, texts in PROFILES.items()}
    for i, (text, user) in enumerate(zip(predictions, users)):
        vector = unit(encoder.embed([text])[0].astype(np.float64))
        own = float(vector @ authors[user])
        others = [float(vector @ authors[u]) for u in PROFILES if u != user]
        assert found["style_own"][i] == pytest.approx(own, abs=1e-12)
        assert found["style_others"][i] == pytest.approx(np.mean(others), abs=1e-12)
        assert found["style_gain"][i] == pytest.approx(own - np.mean(others), abs=1e-12)
        assert found["style_rank"][i] == sum(o < own for o in others) / 2


def test_a_prediction_that_is_its_authors_only_text_is_closest_to_its_author(encoder):
    profiles = {"ann": ["cats dogs cats"], "bob": ["code chess code"], "cyd": ["rain snow boats"]}
    found = style.style_scores(encoder, list(profiles.values())[0] + ["code chess code"], ["ann", "bob"], profiles)
    assert found["style_own"] == pytest.approx([1.0, 1.0])
    assert found["style_rank"].tolist() == [1.0, 1.0] and (found["style_gain"] > 0).all()


def test_style_needs_two_users_and_every_users_profile(encoder):
    with pytest.raises(ValueError, match="at least two users"):
        style.style_scores(encoder, ["cats"], ["ann"], {"ann": PROFILES["ann"]})
    with pytest.raises(ValueError, match="no profile for 1 user"):
        style.style_scores(encoder, ["cats"], ["zed"], PROFILES)
    with pytest.raises(ValueError, match="at least two users with profile texts, got 1"):
        style.style_scores(encoder, ["cats"], ["ann"], {"ann": PROFILES["ann"], "dan": ["  "]})


def test_a_user_without_profile_texts_scores_nan_and_is_no_calibration_author(encoder):
    found = style.style_scores(encoder, ["cats tea", "cats tea"], ["dan", "ann"], {**PROFILES, "dan": []})
    assert all(np.isnan(found[name][0]) for name in style.METRICS)
    reference = style.style_scores(encoder, ["cats tea"], ["ann"], PROFILES)
    for name in style.METRICS:
        assert found[name][1] == reference[name][0], name


def test_profiles_come_from_the_tasks_corpus_texts():
    task = TASKS["topic_writing"]
    item = {name: "cats and dogs" for name in ("content", "summary", "text", "title", "abstract")}
    rows = [{"input": "x", task.user_column: "u1", "profile": [item]},
            {"input": "y", task.user_column: "u1", "profile": [item]}]
    profiles = style.profiles_from_examples(task, rows)
    assert list(profiles) == ["u1"] and profiles["u1"] == [task.corpus_text(item)]
