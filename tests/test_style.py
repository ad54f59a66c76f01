"""Author-style similarity (evaluation/judges/style_similarity.py) with a tiny random BERT through DenseRetriever's
encoding (tests/support/tiny_models.make_encoder: a tokenizer that gives the test words distinct ids, so texts embed
apart), and its command, evaluation/style_similarity.py, on the bundled sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.tiny_models import make_encoder

from evaluation import style_similarity as command
from evaluation.judges import style_similarity
from longlamp_cli import run_command
from longlamp_tasks import TASKS
from retrieval.dense import DenseRetriever

PROFILES = {"ann": ["cats dogs cats", "dogs tea"], "bob": ["code chess code", "chess maps"],
            "cyd": ["rain snow", "snow boats rain"]}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = make_encoder(tmp_path_factory.mktemp("encoders") / "tiny-bert")
    encoder = DenseRetriever(model_name=str(path), device="cpu", cache_dir=tmp_path_factory.mktemp("cache"))
    assert len({tuple(v) for v in encoder.embed([t for texts in PROFILES.values() for t in texts])}) == 6
    yield encoder
    torch.set_num_threads(threads)  # other modules' tests compare results computed with the default count


def test_style_scores_equal_the_definition_computed_by_hand(encoder):
    predictions, users = ["cats tea dogs", "code maps", "snow jazz", "bread"], ["ann", "bob", "cyd", "ann"]
    found = style_similarity.style_scores(encoder, predictions, users, PROFILES)

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
    found = style_similarity.style_scores(encoder, list(profiles.values())[0] + ["code chess code"], ["ann", "bob"],
                                          profiles)
    assert found["style_own"] == pytest.approx([1.0, 1.0])
    assert found["style_rank"].tolist() == [1.0, 1.0] and (found["style_gain"] > 0).all()


def test_style_needs_two_users_and_every_users_profile(encoder):
    with pytest.raises(ValueError, match="at least two users"):
        style_similarity.style_scores(encoder, ["cats"], ["ann"], {"ann": PROFILES["ann"]})
    with pytest.raises(ValueError, match="no profile for 1 user"):
        style_similarity.style_scores(encoder, ["cats"], ["zed"], PROFILES)
    with pytest.raises(ValueError, match="at least two users with profile texts, got 1"):
        style_similarity.style_scores(encoder, ["cats"], ["ann"], {"ann": PROFILES["ann"], "dan": ["  "]})


def test_a_user_without_profile_texts_scores_nan_and_is_no_calibration_author(encoder):
    found = style_similarity.style_scores(encoder, ["cats tea", "cats tea"], ["dan", "ann"], {**PROFILES, "dan": []})
    assert all(np.isnan(found[name][0]) for name in style_similarity.METRICS)
    reference = style_similarity.style_scores(encoder, ["cats tea"], ["ann"], PROFILES)
    for name in style_similarity.METRICS:
        assert found[name][1] == reference[name][0], name


def test_profiles_come_from_the_tasks_corpus_texts():
    task = TASKS["topic_writing"]
    item = {name: "cats and dogs" for name in ("content", "summary", "text", "title", "abstract")}
    rows = [{"input": "x", task.user_column: "u1", "profile": [item]},
            {"input": "y", task.user_column: "u1", "profile": [item]}]
    profiles = style_similarity.profiles_from_examples(task, rows)
    assert list(profiles) == ["u1"] and profiles["u1"] == [task.corpus_text(item)]


# --- the command, on the bundled sample -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_rows(sample_dir, sample_cache):
    import longlamp

    return list(longlamp.load_split("product_review_user", "validation", data_dir=str(sample_dir),
                                    cache_dir=sample_cache))


def write_predictions(path, rows, task="LongLaMP_product_review_user"):
    path.write_text(json.dumps({"task": task, "golds": [{"id": r["id"], "output": r["output"]} for r in rows]}))
    return path


def command_line(encoder, sample_dir, sample_cache, preds, output) -> list[str]:
    return ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
            "--preds", str(preds), "--encoder", encoder.model_name, "--embedding_cache_dir", str(encoder.cache_dir),
            "--output_file", str(output)]


def test_the_command_scores_each_prediction_against_its_users_profile_apart_from_the_metrics(
        encoder, sample_rows, sample_dir, sample_cache, tmp_path):
    rows = sample_rows[::-1]  # the file's order, not the data's, is the output's
    output = tmp_path / "style.json"
    argv = command_line(encoder, sample_dir, sample_cache, write_predictions(tmp_path / "preds.json", rows), output)
    assert command.main(argv) == 0
    result = json.loads(output.read_text(encoding="utf-8"))
    task = TASKS["product_review"]
    users = [row[task.user_column] for row in rows]
    expected = style_similarity.style_scores(encoder, [row["output"] for row in rows], users,
                                             style_similarity.profiles_from_examples(task, rows))
    assert [(e["id"], e["user"]) for e in result["per_example"]] == [(r["id"], u) for r, u in zip(rows, users)]
    for i, example in enumerate(result["per_example"]):
        for name in style_similarity.METRICS:
            assert example[name] == (None if np.isnan(expected[name][i]) else expected[name][i]), (i, name)
    empty = next(user for row, user in zip(rows, users) if not row["profile"])  # the sample has one such user
    assert result["per_user"][empty]["style_own"] is None and result["per_user"][empty]["examples"] == 1
    assert (result["examples"], result["scored_examples"], result["users"]) == (5, 4, 5)
    for name in style_similarity.METRICS:
        assert result["aggregate"][name] == pytest.approx(float(np.nanmean(expected[name])), rel=1e-12)
        assert result["aggregate_by_user"][name] == pytest.approx(result["aggregate"][name], rel=1e-12)  # 1 each
    assert "not one of the benchmark's metrics" in result["note"] and "rouge1" not in result["aggregate"]
    assert result["encoder"]["model_name"] == encoder.model_name and result["data"]["split"] == "validation"


def test_the_command_refuses_other_tasks_unknown_ids_and_a_missing_encoder(encoder, sample_rows, sample_dir,
                                                                           sample_cache, tmp_path, capsys):
    output = tmp_path / "style.json"
    good = write_predictions(tmp_path / "good.json", sample_rows)
    other_task = write_predictions(tmp_path / "other.json", sample_rows, "LongLaMP_abstract_generation_user")
    unknown = write_predictions(tmp_path / "unknown.json", [{**sample_rows[0], "id": "nowhere-0"}])
    for preds, extra, message in [
        (other_task, [], "holds predictions for LongLaMP_abstract_generation_user, but the data is "
                         "LongLaMP_product_review_user"),
        (unknown, [], "1 of 1 prediction ids are not in product_review_user (validation), e.g. ['nowhere-0']"),
        (good, ["--encoder", str(tmp_path / "no-encoder")], "is neither a folder nor a Hub model id"),
    ]:
        argv = command_line(encoder, sample_dir, sample_cache, preds, output) + extra
        assert run_command(command.main, argv, prog="style_similarity.py") == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
        assert not output.exists()
