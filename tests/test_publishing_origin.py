"""Data identity through a local copy: a folder that scripts/export_dataset.py wrote from LongLaMP/LongLaMP records
the repository, the commit it read and a digest of each config's files; a run on that folder records the origin,
and its card and uploads name LongLaMP/LongLaMP with the Hub's config, split name (`val`) and that revision. A copy
whose files changed since, a copy exported from local data and the bundled sample are local data, always.

The stand-in serves the bundled sample's public configs as LongLaMP/LongLaMP: it plays the Hub here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.hub import TOKEN, hub_env, run
from support.hub_server import COMMIT, HubStandIn
from support.records import zero_shot_record

from evaluation import evaluate_llm
from longlamp_runs import ORIGIN_KEY, HubOrigin, RunRecord, data_source, hub_origin, read_run, record_from_flags
from publishing.runs import dataset_identity

CONFIG = "product_review_user"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, sample_dir) -> Path:
    """product_review_user exported from the stand-in's LongLaMP/LongLaMP, and topic_writing_user from local data,
    into one folder."""
    root = tmp_path_factory.mktemp("origin")
    hub = HubStandIn(root / "hub", token=TOKEN)
    shutil.copytree(sample_dir, hub.repo_dir("LongLaMP/LongLaMP", "datasets"), ignore=shutil.ignore_patterns("avocado"))
    folder = root / "copy"
    with hub.running():
        env = hub_env(hub, root, HF_TOKEN=TOKEN)
        run(["scripts/export_dataset.py", "--config", CONFIG, "--output", str(folder), "--cache_dir",
             str(root / "cache")], env)
        run(["scripts/export_dataset.py", "--config", "topic_writing_user", "--data_dir", str(sample_dir), "--output",
             str(folder), "--cache_dir", str(root / "cache")], env)
    return folder


@pytest.mark.multiprocess
def test_an_export_of_the_hub_dataset_records_its_origin_and_a_run_on_it_is_published_as_the_hub_dataset(
        exported, tiny_llama, tmp_path):
    from huggingface_hub import DatasetCard, ModelCard

    recorded = DatasetCard.load(exported / "README.md").data.to_dict()[ORIGIN_KEY]
    assert [(o["config_name"], o["repo_id"], o["revision"]) for o in recorded] == [(CONFIG, "LongLaMP/LongLaMP",
                                                                                     COMMIT)]  # the commit read
    assert hub_origin(exported, CONFIG) == HubOrigin("LongLaMP/LongLaMP", COMMIT)
    assert hub_origin(exported, "topic_writing_user") is None  # exported from local data
    output = tmp_path / "run"
    assert evaluate_llm.main(["--validation_data", CONFIG, "--data_dir", str(exported), "--cache_dir",
                              str(tmp_path / "cache"), "--model_name", str(tiny_llama), "--output_dir", str(output),
                              "--max_new_tokens", "6", "--max_eval_examples", "2"]) == 0
    record = read_run(output).record
    assert record.data.origin == HubOrigin("LongLaMP/LongLaMP", COMMIT)
    identity = dataset_identity(record)
    assert (identity.type, identity.config, identity.split, identity.revision, identity.on_hub) == (
        "LongLaMP/LongLaMP", CONFIG, "val", COMMIT, True)
    results = ModelCard.load(output / "README.md").data.eval_results
    assert {(r.dataset_type, r.dataset_split, r.dataset_revision) for r in results} == {
        ("LongLaMP/LongLaMP", "val", COMMIT)}
    trained = record_from_flags("training", {"task": CONFIG, "train_data": CONFIG, "data_dir": str(exported),
                                             "model_name": "tiny", "max_target_length": 64})
    assert dataset_identity(trained).on_hub  # a model trained on the copy was trained on the Hub dataset's rows


@pytest.mark.multiprocess
def test_a_copy_whose_files_changed_the_bundled_sample_and_other_local_data_are_never_the_hub_dataset(
        exported, sample_dir, tmp_path, caplog):
    import pyarrow.parquet as pq

    changed = tmp_path / "changed"
    shutil.copytree(exported, changed)
    assert hub_origin(changed, CONFIG) == hub_origin(exported, CONFIG)  # a copy elsewhere is the same copy
    shard = next((changed / CONFIG).glob("validation-*.parquet"))
    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard)  # one row fewer
    assert hub_origin(changed, CONFIG) is None and "changed since they were exported" in caplog.text
    assert data_source(CONFIG, str(changed)).origin is None
    assert hub_origin(sample_dir, CONFIG) is None and data_source(CONFIG, str(sample_dir)).origin is None
    sample = RunRecord("zero_shot", zero_shot_record().task, data_source(CONFIG, str(sample_dir)),
                       zero_shot_record().model)
    assert dataset_identity(sample).type == "local" and not dataset_identity(sample).on_hub


def test_a_record_of_version_1_reads_as_the_current_version_with_no_origin():
    old = zero_shot_record().to_dict()
    del old["data"]["origin"]
    record = RunRecord.from_dict({**old, "version": 1}, "scores.json")
    assert record == zero_shot_record() and record.data.origin is None


def rank(output: Path, config: str | None, *flags: str, env: dict | None = None) -> Path:
    """retrieval/rank_profiles.py on `config`'s validation split (None: --input_data among `flags`)."""
    from retrieval import rank_profiles

    argv = [*(["--config_name", config] if config else []), "--split", "validation", "--retriever", "bm25",
            "--output", str(output), *flags]
    if env is None:
        assert rank_profiles.main(argv) == 0
    else:
        run(["retrieval/rank_profiles.py", *argv], env)
    return output


@pytest.mark.multiprocess
def test_a_ranked_file_names_the_hub_origin_of_the_rows_it_ranked_and_runs_on_it_are_the_hub_dataset(
        exported, sample_dir, tmp_path):
    """The runner ranks first (`ranked: true`), so runs read a ranked file, not the copy: the file carries the
    origin in its schema, or a grid on a Hub copy would publish its profile runs as local data."""
    cache = ["--cache_dir", str(tmp_path / "cache")]
    from_copy = rank(tmp_path / "copy.parquet", CONFIG, "--data_dir", str(exported), *cache)
    assert hub_origin(None, str(from_copy)) == HubOrigin("LongLaMP/LongLaMP", COMMIT)
    source = data_source(str(from_copy), ranked_by="bm25")
    record = RunRecord("zero_shot", zero_shot_record().task, source, zero_shot_record().model)
    identity = dataset_identity(record)
    assert (identity.type, identity.split, identity.revision, identity.on_hub) == ("LongLaMP/LongLaMP", "val",
                                                                                     COMMIT, True)
    arrow = rank(tmp_path / "copy.arrow", CONFIG, "--data_dir", str(exported), *cache)
    assert hub_origin(None, str(arrow)) == HubOrigin("LongLaMP/LongLaMP", COMMIT)
    reranked = rank(tmp_path / "again.parquet", None, "--input_data", str(from_copy), "--task", "product_review")
    assert hub_origin(None, str(reranked)) == HubOrigin("LongLaMP/LongLaMP", COMMIT)
    # local rows stay local: the sample, a config exported from local data, and JSON (which holds no schema)
    assert hub_origin(None, str(rank(tmp_path / "sample.parquet", CONFIG, "--data_dir", str(sample_dir),
                                     *cache))) is None
    assert hub_origin(None, str(rank(tmp_path / "local.parquet", "topic_writing_user", "--data_dir",
                                     str(exported), *cache))) is None
    assert hub_origin(None, str(rank(tmp_path / "copy.jsonl", CONFIG, "--data_dir", str(exported), *cache))) is None
    # read from the Hub itself: the repository and the revision asked for
    hub = HubStandIn(tmp_path / "hub", token=TOKEN)
    shutil.copytree(sample_dir, hub.repo_dir("LongLaMP/LongLaMP", "datasets"), ignore=shutil.ignore_patterns("avocado"))
    with hub.running():
        env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN)
        direct = rank(tmp_path / "hub.parquet", CONFIG, *cache, env=env)
    assert hub_origin(None, str(direct)) == HubOrigin("LongLaMP/LongLaMP", None)
