"""The run record (longlamp_runs): typed and versioned, checked where it is read, older records migrated and newer
ones refused; every flag of the training commands has a place in it; per-sample files checked against the run
beside them; no JSON file of the toolkit ever holds a NaN."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from support.records import write_summary, zero_shot_record

from longlamp_errors import DataError, RunFolderError
from longlamp_io import json_line, write_json_atomic
from longlamp_runs import (
    RECORD_VERSION,
    RUN_CONTROL,
    StageRecord,
    TrainingOutcome,
    check_same_run,
    differences,
    migrate_unversioned,
    read_model_record,
    read_record,
    read_run,
    read_stage_record,
    record_from_flags,
    trained_settings,
    write_model_record,
    write_record,
    write_stage_record,
)
from longlamp_runs import RunRecord as Record
from scoring import per_sample

# scores.json's settings as toolkit 0.1.0 wrote them (flat, no version): a dense retriever on the fly.
ZERO_SHOT_0_1_0 = {
    "task": "product_review", "setting": "user", "split": "validation", "model": "/models/tiny", "base_model": None,
    "model_fingerprint": {"base": "sha256:ab"}, "backend": "transformers", "dtype": "float32",
    "max_prompt_length": 1024, "chat_template": False, "chat_template_kwargs": None, "strip_reasoning": True,
    "max_new_tokens": 12, "do_sample": False, "num_beams": 1,
    "data": {"data": "product_review_user", "data_dir": "/data/sample", "revision": None, "fingerprint": "f00"},
    "use_profile": True, "retriever": "contriever(model_name=/models/encoder, dtype=float32)", "num_retrieved": 2,
    "is_ranked": False,
}


def test_a_record_reads_back_as_it_was_written_and_names_what_is_wrong(tmp_path):
    record = zero_shot_record(retriever="bm25", k=4)
    write_record(tmp_path / "run.json", record)
    assert read_record(tmp_path / "run.json") == record
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["version"] == RECORD_VERSION
    data = record.to_dict()
    for broken, message in [({**data, "colour": "red"}, r"unknown setting\(s\) colour"),
                            ({**data, "retrieval": {**data["retrieval"], "num_retrieved": "4"}},
                             r"settings.retrieval.num_retrieved: expected int, got '4'"),
                            ({**data, "kind": "few_shot"}, "kind 'few_shot' is not one of"),
                            ({k: v for k, v in data.items() if k != "model"}, "no 'model'")]:
        with pytest.raises(RunFolderError, match=message):
            Record.from_dict(broken, "settings")


def test_a_record_of_a_newer_toolkit_is_refused_with_its_version():
    with pytest.raises(RunFolderError, match=f"version {RECORD_VERSION + 1}, written by a newer LongLaMP toolkit .* "
                                             f"up to {RECORD_VERSION}"):
        Record.from_dict({**zero_shot_record().to_dict(), "version": RECORD_VERSION + 1}, "scores.json")


def test_a_zero_shot_record_of_toolkit_0_1_0_is_migrated_field_by_field():
    record = migrate_unversioned(ZERO_SHOT_0_1_0)
    assert record.version == RECORD_VERSION and record.kind == "zero_shot"
    assert (record.task.config, record.task.split) == ("product_review_user", "validation")
    assert (record.data.data, record.data.data_dir, record.data.fingerprint) == ("product_review_user",
                                                                                 "/data/sample", "f00")
    assert (record.model.name, record.model.fingerprint, record.model.dtype) == ("/models/tiny", {"base": "sha256:ab"},
                                                                                 "float32")
    retrieval = record.retrieval
    assert (retrieval.retriever, retrieval.retriever_model, retrieval.signature, retrieval.num_retrieved) == (
        "contriever", "/models/encoder", ZERO_SHOT_0_1_0["retriever"], 2)
    assert (record.prompt.max_prompt_length, record.generation.max_new_tokens, record.generation.temperature) == (
        1024, 12, None)
    with pytest.raises(RunFolderError, match="not a record of toolkit 0.1.0"):
        migrate_unversioned({"model": "m", "task": "no_such_task"})


def test_a_training_record_of_toolkit_0_1_0_keeps_its_outcome_and_older_names(tmp_path):
    from training.config import TrainConfig

    flat = {**TrainConfig(model_name="m", output_dir="o", train_data="product_review_user").validate().to_dict(),
            "global_step": 6, "best_metric": 0.25, "best_step": 4}
    flat["model_dtype"] = flat.pop("dtype")  # the older name of --dtype
    (tmp_path / "training_config.json").write_text(json.dumps(flat))
    record, outcome = read_model_record(tmp_path / "training_config.json")
    assert (record.kind, record.model.name, record.model.dtype, record.training.learning_rate) == (
        "training", "m", "auto", 5e-05)
    assert (outcome.global_step, outcome.best_metric, outcome.best_step) == (6, 0.25, 4)
    assert trained_settings(tmp_path) == {"use_profile": False, "max_prompt_length": None, "use_chat_template": None}


def test_every_flag_of_the_training_commands_is_recorded_or_run_control():
    """A flag added to train.py or train_per_user.py without a place in the record is an error, not a setting that
    silently goes unrecorded (then cards, resume checks and the leaderboard could not see it)."""
    from training.config import TrainConfig
    from training.train_per_user import make_parser

    config = TrainConfig(model_name="m", output_dir="o", train_data="product_review_user", use_profile=True)
    recorded = record_from_flags("training", config.validate().to_dict()).flat()
    assert "training.learning_rate" in recorded and "retrieval.num_retrieved" in recorded
    per_user = vars(make_parser().parse_into(["--model_name", "m", "--data", "product_review_user", "--output_dir",
                                              "o"]))
    assert record_from_flags("per_user_adapters", per_user).training.lora_r == 8
    assert {"output_dir", "hub_token", "max_users"} <= RUN_CONTROL
    with pytest.raises(RunFolderError, match="'colour' is not a setting the run record knows"):
        record_from_flags("training", {**config.to_dict(), "colour": "red"})


def test_differences_name_settings_by_group_and_ignore_what_may_change():
    old, new = zero_shot_record(retriever="bm25", k=2), zero_shot_record(retriever="bm25", k=4, data="copy")
    assert differences(old, new) == {"data.data": ("product_review_user", "copy"),
                                     "retrieval.num_retrieved": (2, 4)}
    assert differences(old, new, ignore=("data",)) == {"retrieval.num_retrieved": (2, 4)}


def test_a_folder_holding_another_runs_record_is_refused_with_the_differences(tmp_path):
    write_record(tmp_path / "per_user_config.json", zero_shot_record(model="a"))
    check_same_run(tmp_path / "per_user_config.json", zero_shot_record(model="a"), (), "vectors")
    with pytest.raises(RunFolderError, match=r"holds vectors made with other settings \(model.name: 'a' -> 'b'\)"):
        check_same_run(tmp_path / "per_user_config.json", zero_shot_record(model="b"), (), "vectors")


def test_trained_settings_come_from_the_record_beside_the_model(tmp_path):
    record = record_from_flags("training", {"task": "product_review_user", "train_data": "product_review_user",
                                            "model_name": "m", "max_target_length": 64, "use_profile": True,
                                            "retriever": "contriever", "retriever_model": "enc", "num_retrieved": 3,
                                            "max_prompt_length": 512, "use_chat_template": True})
    write_model_record(tmp_path / "final", record, TrainingOutcome(global_step=1))
    assert trained_settings(tmp_path / "final") == {"use_profile": True, "retriever": "contriever",
                                                    "retriever_model": "enc", "num_retrieved": 3,
                                                    "max_prompt_length": 512, "use_chat_template": True}
    assert trained_settings(tmp_path) is None and trained_settings("someone/model") is None
    bm25 = record_from_flags("training", {"task": "product_review_user", "train_data": "product_review_user",
                                          "model_name": "m", "max_target_length": 64, "use_profile": True,
                                          "retriever": "bm25", "retriever_model": "facebook/contriever"})
    write_model_record(tmp_path / "bm25", bm25, TrainingOutcome(global_step=1))
    assert "retriever_model" not in trained_settings(tmp_path / "bm25")  # the flag's default, unused by BM25


def test_a_retriever_without_an_encoder_records_none_and_a_record_written_with_the_default_reads_back_without_it():
    from longlamp_runs import RetrievalSettings

    assert RetrievalSettings(True, "bm25", "facebook/contriever").retriever_model is None
    assert RetrievalSettings(True, "contriever", "facebook/contriever").retriever_model == "facebook/contriever"
    written = zero_shot_record().to_dict()
    written["retrieval"].update(use_profile=True, retriever="recency", retriever_model="facebook/contriever")
    assert Record.from_dict(written).retrieval.retriever_model is None


def test_the_encoder_retrievers_are_the_registry_retrievers_that_take_an_encoder():
    import inspect

    from longlamp_runs import ENCODER_RETRIEVERS
    from retrieval.registry import RETRIEVERS, get_retriever

    taking = {name for name in RETRIEVERS
              if "model_name" in inspect.signature(type(get_retriever(name)).__init__).parameters}
    assert taking == ENCODER_RETRIEVERS


def test_the_stage_record_reads_back_and_one_of_0_1_0_is_read_too(tmp_path):
    write_stage_record(tmp_path, StageRecord("score x", ["python", "eval_task.py"], ["scores.json"], 1.5))
    assert read_stage_record(tmp_path) == StageRecord("score x", ["python", "eval_task.py"], ["scores.json"], 1.5)
    (tmp_path / ".stage.json").write_text(json.dumps({"stage": "s", "command": ["c"], "outputs": [], "seconds": 2}))
    assert read_stage_record(tmp_path).command == ["c"]
    (tmp_path / ".stage.json").write_text(json.dumps({"stage": "s", "command": ["c"], "outputs": [], "seconds": 2,
                                                      "version": 9}))
    with pytest.raises(RunFolderError, match="newer LongLaMP toolkit"):
        read_stage_record(tmp_path)
    assert read_stage_record(tmp_path / "nothing") is None


# --- per-sample files checked where they are read ----------------------------------------------------------------

IDS = ["a", "b", "c", "d", "e"]


def scored_run(folder, rows: list[str] | None = None):
    """A zero-shot run of 5 examples: golds, predictions, scores.json and per_sample.jsonl (or `rows` as its
    lines)."""
    for name in ("golds.json", "predictions.json"):
        write_json_atomic(folder / name, {"task": "LongLaMP_product_review_user",
                                          "golds": [{"id": i, "output": f"text {i}"} for i in IDS]})
    scores = {"rougeL": np.linspace(0.1, 0.5, 5)}
    write_summary(folder, zero_shot_record(), {"num_samples": 5, "metrics": {"rougeL": 0.3}})
    if rows is None:
        per_sample.write(folder / "per_sample.jsonl", per_sample.rows(IDS, ["x"] * 5, scores))
    else:
        (folder / "per_sample.jsonl").write_text("".join(row + "\n" for row in rows))
    return folder


def line(example_id: str, value) -> str:
    return json.dumps({"id": example_id, "user": None, "prediction_words": 1, "rougeL": value})


@pytest.mark.parametrize("rows, problem", [
    ([line(i, 0.2) for i in IDS[:4]], "4 rows, but .*scores.json scored 5 examples"),
    ([line(i, 0.2) for i in IDS[:4]] + [line("a", 0.3)], "line 5: id 'a' again"),
    ([line(i, 0.2) for i in IDS[:4]] + ['{"id": "e", "user": null, "prediction_words": 1, "rougeL": NaN}'],
     "line 5: rougeL is nan, expected a finite number"),
    ([line(i, 0.2) for i in IDS[:4]] + [line("z", 0.2)], "id 'z' is not among the ids of .*golds.json"),
], ids=["truncated", "duplicate", "nan", "stranger"])
def test_a_per_sample_file_that_is_not_the_runs_is_refused_naming_the_file(tmp_path, rows, problem):
    folder = scored_run(tmp_path / "run", rows)
    variant = read_run(folder).variants[0]
    with pytest.raises(DataError, match=problem) as refused:
        per_sample.read_variant(variant)
    assert str(folder / "per_sample.jsonl") in str(refused.value)


def test_a_card_never_rewrites_a_per_sample_file_that_is_not_the_runs(tmp_path):
    """push_results.py --dry_run used to rewrite a 5-row per_sample.jsonl from 4 predictions (data lost)."""
    from publishing.cards import write_run_card
    from publishing.hub import stage_run

    folder = scored_run(tmp_path / "run", [line(i, 0.2) for i in IDS[:4]])
    before = (folder / "per_sample.jsonl").read_bytes()
    for build in (lambda: write_run_card(folder), lambda: stage_run(folder, tmp_path / "staged", "me/r")):
        with pytest.raises(DataError, match="4 rows, but"):
            build()
    assert (folder / "per_sample.jsonl").read_bytes() == before and not (folder / "README.md").exists()


def test_a_missing_per_sample_file_is_computed_only_from_the_runs_own_predictions(tmp_path):
    from publishing.samples import write_per_sample_scores

    folder = scored_run(tmp_path / "run")
    (folder / "per_sample.jsonl").unlink()
    write_json_atomic(folder / "predictions.json", {"task": "LongLaMP_product_review_user",
                                                    "golds": [{"id": i, "output": "x"} for i in IDS[:4]]})
    with pytest.raises(RunFolderError, match="4 rows, but .* scored 5 examples"):
        write_per_sample_scores(read_run(folder).variants[0])
    assert not (folder / "per_sample.jsonl").exists()


# --- strict JSON ---------------------------------------------------------------------------------------------------


def test_json_writers_refuse_nan_and_infinity_naming_the_key_and_write_nothing(tmp_path):
    write_json_atomic(tmp_path / "scores.json", {"ok": 1})
    with pytest.raises(ValueError, match=r"scores.json: scores.metrics.rougeL is not a finite number"):
        write_json_atomic(tmp_path / "scores.json", {"scores": {"metrics": {"rougeL": math.nan}}})
    with pytest.raises(ValueError, match=r"runs\[1\].mean is not a finite number"):
        write_json_atomic(tmp_path / "board.json", {"runs": [{"mean": 1.0}, {"mean": math.inf}]})
    assert json.loads((tmp_path / "scores.json").read_text()) == {"ok": 1} and not (tmp_path / "board.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]  # no temporary file left
    with pytest.raises(ValueError, match="held_out_loss is not a finite number"):
        json_line({"user": "u", "held_out_loss": -math.inf})


def test_per_sample_files_are_never_written_with_nan(tmp_path):
    rows = per_sample.rows(["a", "b"], ["x", "y"], {"rougeL": np.array([0.5, np.nan])})
    with pytest.raises(ValueError, match=r"per_sample.jsonl, line 2: rougeL is not a finite number"):
        per_sample.write(tmp_path / "per_sample.jsonl", rows)
    assert not (tmp_path / "per_sample.jsonl").exists()


def test_the_training_outcome_is_strict_json_too(tmp_path):
    record = record_from_flags("training", {"task": "product_review_user", "train_data": "product_review_user",
                                            "model_name": "m", "max_target_length": 8})
    with pytest.raises(ValueError, match="outcome.best_metric is not a finite number"):
        write_model_record(tmp_path, record, TrainingOutcome(best_metric=math.nan))
    write_model_record(tmp_path, record, dataclasses.replace(TrainingOutcome(), best_metric=0.5))
    assert read_model_record(tmp_path / "training_config.json") == (record, TrainingOutcome(best_metric=0.5))
