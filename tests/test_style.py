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


@pytest.mark.parametrize("name", sorted(TASKS))
def test_author_texts_are_only_what_the_user_wrote_the_tasks_output_field(name):
    """Every task: each profile item gives its output field alone (for reviews `reviewText`, not the retrieval text
    `overall summary description reviewText`), a user's rows merged, each text once."""
    task = TASKS[name]
    items = [{field: f"{field} of item {i}" for field in task.profile_fields} for i in range(2)]
    rows = [{"input": "x", "output": "a reference", task.user_column: "u1", "profile": items},
            {"input": "y", "output": "another", task.user_column: "u1", "profile": items[:1]}]
    profiles, dropped = style_similarity.profiles_from_examples(task, rows)
    assert profiles == {"u1": [f"{task.output_field} of item 0", f"{task.output_field} of item 1"]} and dropped == 0
    assert task.profile_fields[task.output_field] == "string"


def test_a_profile_text_that_is_an_evaluated_rows_reference_is_left_out():
    task = TASKS["product_review"]
    later = {"reviewText": "the first row's own review", "summary": "s", "description": "d", "overall": 5.0}
    rows = [{"input": "x", "output": " the first row's own review ", "reviewerId": "ann",
             "profile": [{**later, "reviewText": "an older review"}]},
            {"input": "y", "output": "the second review", "reviewerId": "ann", "profile": [later]}]
    profiles, dropped = style_similarity.profiles_from_examples(task, rows)
    assert profiles == {"ann": ["an older review"]} and dropped == 1


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
    profiles, _ = style_similarity.profiles_from_examples(task, rows)
    expected = style_similarity.style_scores(encoder, [row["output"] for row in rows], users, profiles)
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


def run_style(encoder, sample_dir, sample_cache, tmp_path, rows, outputs, capsys) -> dict:
    """The command on predictions `outputs` for `rows`: its JSON, and the line it printed."""
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"task": "LongLaMP_product_review_user",
                                 "golds": [{"id": r["id"], "output": text} for r, text in zip(rows, outputs)]}))
    output = tmp_path / "style.json"
    assert command.main(command_line(encoder, sample_dir, sample_cache, preds, output)) == 0
    return {**json.loads(output.read_text(encoding="utf-8")), "printed": capsys.readouterr().out}


def test_the_ceiling_is_the_references_own_score_and_the_calibration_users_are_recorded(
        encoder, sample_rows, sample_dir, sample_cache, tmp_path, capsys):
    task = TASKS["product_review"]
    references = [row["output"] for row in sample_rows]
    own = run_style(encoder, sample_dir, sample_cache, tmp_path, sample_rows, references, capsys)
    assert own["ceiling"]["aggregate"] == own["aggregate"]  # the references as predictions reach the ceiling
    assert own["ceiling"]["aggregate_by_user"] == own["aggregate_by_user"]
    shifted = run_style(encoder, sample_dir, sample_cache, tmp_path, sample_rows, references[1:] + references[:1],
                        capsys)
    assert shifted["ceiling"] == own["ceiling"] and shifted["aggregate"] != own["ceiling"]["aggregate"]
    with_texts = sorted(row[task.user_column] for row in sample_rows if row["profile"])
    assert own["calibration_users"] == with_texts and len(with_texts) == 4  # one sample user has no profile
    assert own["author_texts"] == {"field": "reviewText", "left_out_as_references": 0}
    assert f"the references' own: style_gain {own['ceiling']['aggregate']['style_gain']:.4f}" in own["printed"]


def test_empty_predictions_are_counted_and_not_scored(encoder, sample_rows, sample_dir, sample_cache, tmp_path,
                                                      capsys):
    references = [row["output"] for row in sample_rows]
    full = run_style(encoder, sample_dir, sample_cache, tmp_path, sample_rows, references, capsys)
    scored = [i for i, e in enumerate(full["per_example"]) if e["style_own"] is not None]
    blanked = scored[:2]
    some = run_style(encoder, sample_dir, sample_cache, tmp_path, sample_rows,
                     ["  " if i in blanked else text for i, text in enumerate(references)], capsys)
    assert some["empty_predictions"] == 2 and some["empty_prediction_ids"] == [sample_rows[i]["id"] for i in blanked]
    assert some["scored_examples"] == full["scored_examples"] - 2
    assert all(some["per_example"][i][m] is None for i in blanked for m in style_similarity.METRICS)
    kept = [i for i in scored if i not in blanked]
    assert [some["per_example"][i] for i in kept] == [full["per_example"][i] for i in kept]
    none = run_style(encoder, sample_dir, sample_cache, tmp_path, sample_rows, [""] * len(sample_rows), capsys)
    assert (none["empty_predictions"], none["scored_examples"]) == (5, 0)
    assert set(none["aggregate"].values()) == {None} and none["ceiling"] == full["ceiling"]
    assert "0 of 5 predictions scored (5 users, 5 empty): none" in none["printed"]


def test_a_predictions_file_that_lacks_rows_of_the_split_is_refused_naming_them(
        encoder, sample_rows, sample_dir, sample_cache, tmp_path, capsys):
    output = tmp_path / "style.json"
    partial = write_predictions(tmp_path / "partial.json", sample_rows[1:])
    argv = command_line(encoder, sample_dir, sample_cache, partial, output)
    assert run_command(command.main, argv, prog="style_similarity.py") == 2
    error = capsys.readouterr().err
    assert (f"no prediction for 1 of the 5 rows of product_review_user (validation), e.g. ['{sample_rows[0]['id']}']"
            in error) and error.count("\n") == 1, error
    assert not output.exists()
