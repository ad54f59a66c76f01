"""The dataset builder: every config from every source route gives the same rows and ids."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.hub_server import HubStandIn

import longlamp
from longlamp_errors import DataError
from longlamp_tasks import TASKS, config_names, scorer_task_name

REPO = Path(__file__).resolve().parents[1]
PUBLIC_CONFIGS = [name for name in config_names(with_aliases=False) if TASKS[name.rsplit("_", 1)[0]].public]


def rows_of(dataset_dict) -> dict[str, list[dict]]:
    return {split: list(ds) for split, ds in dataset_dict.items()}


def export_lamp_json(dataset_dict, folder: Path, task_name: str) -> None:
    """Write a prepared config as LaMP-style questions/outputs files (the Avocado script's format)."""
    folder.mkdir(parents=True)
    for split, source in (("train", "train"), ("validation", "dev"), ("test", "test")):
        rows = list(dataset_dict[split])
        questions = [{k: v for k, v in row.items() if k != "output"} for row in rows]
        (folder / f"{source}_questions.json").write_text(json.dumps(questions))
        golds = [{"id": row["id"], "output": row["output"]} for row in rows]
        (folder / f"{source}_outputs.json").write_text(json.dumps({"task": task_name, "golds": golds}))


@pytest.fixture(scope="module")
def prepared(sample_dir, sample_cache):
    """Each public config prepared from the local mirror (the bundled sample)."""
    return {name: longlamp.load(name, data_dir=str(sample_dir), cache_dir=sample_cache) for name in PUBLIC_CONFIGS}


def test_every_public_config_has_three_splits_with_ids_and_outputs(prepared):
    for name, dataset_dict in prepared.items():
        assert list(dataset_dict) == ["train", "validation", "test"], name
        task = TASKS[name.rsplit("_", 1)[0]]
        for split, ds in dataset_dict.items():
            assert ds.features == longlamp.features_for(task)
            ids = ds["id"]
            assert ids == [f"{name}-{split}-{i}" for i in range(len(ds))]
            assert all(isinstance(out, str) and out for out in ds["output"])


def test_profiles_are_typed_and_varied(prepared):
    reviews = prepared["product_review_user"]["train"]
    sizes = [len(p) for p in reviews["profile"]]
    assert 0 in sizes and max(sizes) >= 300
    item = reviews[2]["profile"][0]
    assert isinstance(item["overall"], float) and set(item) == set(TASKS["product_review"].profile_fields)
    years = [i["year"] for p in prepared["abstract_generation_user"]["train"]["profile"] for i in p]
    assert all(isinstance(y, int) for y in years)


def test_bare_task_name_is_the_user_setting(prepared, sample_dir, sample_cache):
    alias = longlamp.load("product_review", split="validation", data_dir=str(sample_dir), cache_dir=sample_cache)
    assert list(alias) == list(prepared["product_review_user"]["validation"])


def test_lamp_json_route_gives_the_same_rows(prepared, tmp_path):
    for name, dataset_dict in prepared.items():
        export_lamp_json(dataset_dict, tmp_path / name, "LongLaMP_" + name)
        via_json = longlamp.load(name, data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
        assert rows_of(via_json) == rows_of(dataset_dict), name


def test_lamp_json_outputs_may_be_a_plain_list_and_missing_for_test(prepared, tmp_path):
    folder = tmp_path / "product_review_user"
    export_lamp_json(prepared["product_review_user"], folder, "x")
    golds = json.loads((folder / "train_outputs.json").read_text())["golds"]
    (folder / "train_outputs.json").write_text(json.dumps(golds))
    (folder / "test_outputs.json").unlink()
    loaded = longlamp.load("product_review_user", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert loaded["train"]["output"] == prepared["product_review_user"]["train"]["output"]
    assert loaded["test"]["output"] == [None] * len(loaded["test"])  # explicit: no outputs, never a fake


def test_streaming_gives_the_same_rows_as_prepared(prepared, sample_dir):
    for name in ("abstract_generation_temporal", "topic_writing_user"):
        streamed = longlamp.load(name, split="validation", data_dir=str(sample_dir), streaming=True)
        assert list(streamed) == list(prepared[name]["validation"])


def test_load_split_reads_configs_and_files(prepared, sample_dir, sample_cache, tmp_path):
    expected = list(prepared["topic_writing_user"]["test"])
    assert list(longlamp.load_split("topic_writing_user", "test", data_dir=str(sample_dir))) == expected
    prepared["topic_writing_user"]["test"].save_to_disk(str(tmp_path / "saved"))
    assert list(longlamp.load_split(str(tmp_path / "saved"), "test")) == expected
    export_lamp_json(prepared["topic_writing_user"], tmp_path / "json", "x")
    assert list(longlamp.load_split(str(tmp_path / "json" / "test_questions.json"), "test", task="topic_writing")) == \
        expected
    with pytest.raises(FileNotFoundError, match="neither a file or folder nor a LongLaMP config"):
        longlamp.load_split("no_such_thing", "test")


def test_rating_and_year_accept_text_or_numbers(tmp_path):
    task = TASKS["abstract_generation"]
    raw = {"name": "u", "input": "x", "output": "y",
           "profile": [{"id": 7, "title": "t", "abstract": "a", "year": "2001"},
                       {"id": "8", "title": "t", "abstract": "a", "year": 2002.0},
                       {"id": "9", "title": "t", "abstract": "a", "year": None}]}
    row = longlamp.normalize_row(task, raw, "here")
    assert [i["year"] for i in row["profile"]] == [2001, 2002, None]
    assert row["profile"][0]["id"] == "7"
    review = longlamp.normalize_row(TASKS["product_review"], {
        "reviewerId": "r", "input": "x", "output": None,
        "profile": [{"overall": "4.0", "summary": "s", "description": "d", "reviewText": "t"},
                    {"overall": 3, "summary": "s", "description": "d", "reviewText": "t"}]}, "here")
    assert [i["overall"] for i in review["profile"]] == [4.0, 3.0]
    with pytest.raises(DataError, match=r"here, profile item 0, field 'year': expected a whole number"):
        longlamp.normalize_row(task, dict(raw, profile=[dict(raw["profile"][0], year="MMI")]), "here")


# --- the Hub route: real huggingface_hub calls against a local stand-in --------------------------------------

HUB_SCRIPT = """
import json, os, sys, tempfile
os.chdir(tempfile.mkdtemp())            # load_dataset must not depend on the working directory
import datasets, longlamp
out, cache, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
result = {}
for name in names:
    loaded = datasets.load_dataset("longlamp", name, cache_dir=cache)
    result[name] = {split: list(ds) for split, ds in loaded.items()}
streamed = longlamp.load(names[0], split="validation", streaming=True)
result["streamed"] = list(streamed)
if len(sys.argv) > 4:  # another repository and revision than the default
    mirror = longlamp.load(names[0], split="test", repo_id=sys.argv[4], revision="main", cache_dir=cache)
    result["mirror"] = list(mirror)
json.dump(result, open(out, "w"))
"""


def run_hub_script(hub: HubStandIn, tmp_path: Path, names: list[str], hf_home: Path, *extra: str, **env) -> dict:
    out = tmp_path / "rows.json"
    environment = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(hf_home), **env,
                   "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", HUB_SCRIPT, str(out), str(tmp_path / "ds-cache"), ",".join(names),
                             *extra], env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture()
def hub_root(tmp_path, sample_dir) -> Path:
    root = tmp_path / "hub"
    shutil.copytree(sample_dir, root / "LongLaMP" / "LongLaMP", ignore=shutil.ignore_patterns("avocado"))
    return root


@pytest.mark.multiprocess
@pytest.mark.slow
def test_load_dataset_from_the_hub_for_every_public_config(prepared, hub_root, tmp_path):
    shutil.copytree(hub_root / "LongLaMP" / "LongLaMP", hub_root / "someone" / "mirror")
    hub = HubStandIn(hub_root)
    with hub.running():
        result = run_hub_script(hub, tmp_path, PUBLIC_CONFIGS, tmp_path / "hf-home", "someone/mirror")
    assert result["mirror"] == list(prepared[PUBLIC_CONFIGS[0]]["test"])
    assert any("/datasets/someone/mirror/resolve/" in path for _, path, _ in hub.requests)
    for name in PUBLIC_CONFIGS:
        assert result[name] == rows_of(prepared[name]), name
    assert result["streamed"] == list(prepared[PUBLIC_CONFIGS[0]]["validation"])
    # Only the asked config's shards are fetched, after discovering them by listing the repository.
    fetched = {path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path}
    assert all(any(name in path for name in PUBLIC_CONFIGS) for path in fetched)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_hub_token_offline_mode_and_cache(prepared, hub_root, tmp_path):
    name = "product_review_temporal"
    hub = HubStandIn(hub_root, token="hf_secret_token_for_tests")
    with hub.running():
        result = run_hub_script(hub, tmp_path, [name], tmp_path / "hf-home", HF_TOKEN="hf_secret_token_for_tests")
    assert result[name] == rows_of(prepared[name])
    assert {auth for _, _, auth in hub.requests} == {"Bearer hf_secret_token_for_tests"}
    # The server is gone: offline mode serves the prepared config from the caches.
    shutil.rmtree(tmp_path / "ds-cache")
    offline = run_hub_script(hub, tmp_path, [name], tmp_path / "hf-home", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                             HF_TOKEN="hf_secret_token_for_tests")
    assert offline[name] == rows_of(prepared[name])


def test_load_dataset_name_resolves_with_a_data_dir(prepared, sample_dir, tmp_path):
    loaded = datasets.load_dataset("longlamp", "topic_writing_temporal", data_dir=str(sample_dir),
                                   cache_dir=str(tmp_path))
    assert rows_of(loaded) == rows_of(prepared["topic_writing_temporal"])


# --- bad input: clear errors that name the file and the problem, nothing half-prepared ------------------------


def leftovers(cache: Path) -> list[str]:
    """Prepared or half-prepared dataset folders left in a datasets cache."""
    return [str(p) for p in cache.rglob("*") if p.is_dir() and ("incomplete" in p.name or p.name == "1.0.0")]


def write_config(folder: Path, rows_by_split: dict[str, list[dict]]) -> None:
    for split, rows in rows_by_split.items():
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}-00000-of-00001.parquet")


GOOD = {"reviewerId": "u1", "input": "in", "output": "out",
        "profile": [{"overall": 5.0, "summary": "s", "description": "d", "reviewText": "t"}]}


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{k: v for k, v in GOOD.items() if k != "profile"}],
         r"val-00000-of-00001.parquet, row 0: missing column\(s\) \['profile'\]"),
        ([dict(GOOD, profile=[{"overall": 5.0, "summary": "s"}])],
         r"row 0, profile item 0: missing field\(s\) \['description', 'reviewText'\]"),
        ([GOOD, dict(GOOD, input=None)], r"row 1: field 'input' must be a string"),
    ],
)
def test_schema_errors_name_the_file_row_and_field(tmp_path, rows, message):
    write_config(tmp_path / "data" / "product_review_user", {"train": [GOOD] * 3, "val": rows})
    with pytest.raises(DataError, match=message):
        longlamp.load("product_review_user", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    assert leftovers(tmp_path / "cache") == []


def test_corrupt_parquet_is_named(tmp_path):
    folder = tmp_path / "data" / "product_review_user"
    write_config(folder, {"train": [GOOD]})
    (folder / "val-00000-of-00001.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"val-00000-of-00001.parquet: not a readable parquet file"):
        longlamp.load("product_review_user", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    assert leftovers(tmp_path / "cache") == []


def test_malformed_json_and_mismatched_outputs(prepared, tmp_path):
    folder = tmp_path / "data" / "topic_writing_user"
    export_lamp_json(prepared["topic_writing_user"], folder, "x")
    (folder / "dev_questions.json").write_text('[{"id": "1", "input": ')
    with pytest.raises(DataError, match=r"dev_questions.json: invalid JSON"):
        longlamp.load("topic_writing_user", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    export_lamp_json(prepared["topic_writing_user"], tmp_path / "data2" / "topic_writing_user", "x")
    outputs = tmp_path / "data2" / "topic_writing_user" / "test_outputs.json"
    golds = json.loads(outputs.read_text())
    golds["golds"][0]["id"] = "someone-else"
    outputs.write_text(json.dumps(golds))
    with pytest.raises(DataError, match=r"test_outputs.json does not match .*test_questions.json: 1 question "
                                        r"id\(s\) without an output .* 1 output id\(s\) without a question"):
        longlamp.load("topic_writing_user", data_dir=str(tmp_path / "data2"), cache_dir=str(tmp_path / "cache"))
    assert leftovers(tmp_path / "cache") == []


def test_missing_data_says_what_is_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no data for config 'abstract_generation_user': expected parquet"):
        longlamp.load("abstract_generation_user", data_dir=str(tmp_path / "empty"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="BuilderConfig 'product_reviews' not found"):
        longlamp.load("product_reviews")


def test_scorer_task_names_cover_every_config():
    names = {scorer_task_name(*longlamp.parse_config_name(n)) for n in config_names()}
    assert names == {f"LongLaMP_{n}" for n in config_names(with_aliases=False)}


def test_dataset_infos_json_matches_the_builder():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dataset_infos", REPO / "scripts" / "make_dataset_infos.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert json.loads((REPO / "dataset_infos.json").read_text()) == script.dataset_infos(), \
        "dataset_infos.json is out of date: run python scripts/make_dataset_infos.py"
    assert script.main(["--check"]) == 0


def test_editing_local_files_prepares_again(tmp_path):
    folder = tmp_path / "data" / "product_review_user"
    write_config(folder, {"train": [GOOD]})
    first = longlamp.load("product_review_user", split="train", data_dir=str(tmp_path / "data"),
                          cache_dir=str(tmp_path / "cache"))
    write_config(folder, {"train": [GOOD, dict(GOOD, input="changed")]})
    second = longlamp.load("product_review_user", split="train", data_dir=str(tmp_path / "data"),
                           cache_dir=str(tmp_path / "cache"))
    assert (len(first), second["input"]) == (1, ["in", "changed"])
