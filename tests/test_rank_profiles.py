"""rank_dataset and `python retrieval/rank_profiles.py`: ranked data round-trips, workers agree, killed runs resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

import longlamp
from longlamp_tasks import TASKS
from retrieval import RANKED_BY_COLUMN, SCORES_COLUMN, get_retriever, rank_dataset, top_k_items
from retrieval.base import item_batches

REPO = Path(__file__).resolve().parent.parent
REVIEW = TASKS["product_review"]
WORDS = ["great", "kettle", "boils", "fast", "the", "a", "lid", "broke", "after", "week", "Über", "teuer", "😀"]


def review_rows(count: int, max_items: int = 25, words: int = 12, seed: int = 0) -> list[dict]:
    """Rows in the LongLaMP product_review schema, with missing fields and empty profiles among them."""
    rng = random.Random(seed)

    def text(n):
        return " ".join(rng.choices(WORDS, k=rng.randint(0, n)))

    rows = []
    for number in range(count):
        profile = [
            {
                "overall": float(rng.randint(1, 5)),
                "summary": text(3),
                "description": rng.choice([None, text(6)]),
                "reviewText": text(words),
            }
            for _ in range(rng.choice([0, 1, 3, rng.randint(1, max_items)]))
        ]
        rows.append(
            {
                "id": f"r{number}",
                "reviewerId": f"u{number}",
                "input": f"Generate the review text {text(8)}",
                "output": text(10),
                "profile": profile,
            }
        )
    return rows


def load_ranked(path: Path, cache: Path) -> datasets.Dataset:
    if path.suffix == ".arrow":
        return datasets.Dataset.from_file(str(path))
    loader = datasets.Dataset.from_parquet if path.suffix == ".parquet" else datasets.Dataset.from_json
    return loader(str(path), cache_dir=str(cache))


@pytest.mark.parametrize("retriever", ["bm25", "recency", "random"])
def test_ranked_data_round_trips_and_gives_the_on_the_fly_top_k(retriever, tmp_path):
    rows = review_rows(60)
    output = rank_dataset(
        datasets.Dataset.from_list(rows),
        "product_review",
        retriever,
        tmp_path / "ranked.parquet",
        chunk_size=7,
        progress=False,
    )
    ranked = load_ranked(output, tmp_path / "hf")
    assert ranked.column_names == [*rows[0], SCORES_COLUMN, RANKED_BY_COLUMN]
    assert not (tmp_path / "ranked.parquet.parts").exists()
    for row, ranked_row in zip(rows, ranked):
        assert {key: ranked_row[key] for key in ("id", "reviewerId", "input", "output")} == {
            key: row[key] for key in ("id", "reviewerId", "input", "output")
        }
        for k in (1, 4, len(row["profile"])):
            assert top_k_items(REVIEW, ranked_row, k, retriever, is_ranked=True) == top_k_items(
                REVIEW, row, k, retriever
            )
        assert ranked_row[RANKED_BY_COLUMN] == get_retriever(retriever).signature
        if retriever == "bm25":
            expected = get_retriever("bm25").rank(REVIEW, [row])[0].scores.tolist()
            assert ranked_row[SCORES_COLUMN] == expected == sorted(expected, reverse=True)
        else:
            assert ranked_row[SCORES_COLUMN] is None


def test_arrow_output_holds_the_same_rows_and_features_as_parquet(tmp_path):
    dataset = datasets.Dataset.from_list(review_rows(20))
    parquet = load_ranked(rank_dataset(dataset, REVIEW, "bm25", tmp_path / "r.parquet", progress=False), tmp_path)
    arrow = longlamp.load_split(str(rank_dataset(dataset, REVIEW, "bm25", tmp_path / "r.arrow", progress=False)))
    assert arrow.features == parquet.features
    assert arrow.to_list() == parquet.to_list()


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_outputs_hold_the_same_rows_as_parquet_and_load_back(suffix, tmp_path):
    dataset = datasets.Dataset.from_list(review_rows(20))
    parquet = load_ranked(
        rank_dataset(dataset, REVIEW, "bm25", tmp_path / "r.parquet", progress=False), tmp_path / "hf"
    ).to_list()
    path = rank_dataset(dataset, REVIEW, "bm25", tmp_path / f"r{suffix}", progress=False)
    text = path.read_text()
    rows = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    assert rows == parquet
    loaded = load_ranked(path, tmp_path / "hf").to_list()
    # pandas, which reads JSON lists for datasets, keeps about 10 significant digits of floats
    for row, expected in zip(loaded, parquet):
        assert {**row, SCORES_COLUMN: None} == {**expected, SCORES_COLUMN: None}
        assert row[SCORES_COLUMN] == pytest.approx(expected[SCORES_COLUMN], rel=1e-9, abs=1e-9)


@pytest.mark.multiprocess
@pytest.mark.parametrize("retriever", ["bm25", "random"])  # worker threads, worker processes
def test_workers_and_chunking_do_not_change_the_ranking(retriever, tmp_path):
    dataset = datasets.Dataset.from_list(review_rows(90))
    one, two, small = (
        rank_dataset(
            dataset, REVIEW, retriever, tmp_path / name, num_proc=workers, chunk_size=10, chunk_items=items,
            progress=False,
        )
        for name, workers, items in [("one.parquet", 1, 8192), ("two.parquet", 2, 8192), ("small.parquet", 2, 3)]
    )
    assert one.read_bytes() == two.read_bytes()  # the same chunks: the same file
    assert pq.read_table(small).equals(pq.read_table(one))  # other chunks: other row groups, the same rows


def test_chunks_are_bounded_by_rows_and_by_profile_items():
    assert item_batches([3, 3, 3, 20, 1, 1], max_rows=5, max_items=7) == [(0, 2), (2, 3), (3, 4), (4, 6)]
    assert item_batches([1] * 12, max_rows=5, max_items=100) == [(0, 5), (5, 10), (10, 12)]
    assert item_batches([], max_rows=5, max_items=7) == []


def run_cli(*args: str, module: bool = False, env_dir: Path, wait: bool = True):
    command = [
        sys.executable,
        *(["-m", "retrieval.rank_profiles"] if module else ["retrieval/rank_profiles.py"]),
        *args,
    ]
    environment = {**os.environ, "HF_DATASETS_CACHE": str(env_dir / "hf"), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process.communicate(timeout=300) + (process.returncode,) if wait else process


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped_and_writes_the_same_file(tmp_path):
    source = tmp_path / "reviews.parquet"
    datasets.Dataset.from_list(review_rows(400, max_items=120, words=60, seed=1)).to_parquet(source)
    arguments = [
        "--task",
        "product_review",
        "--retriever",
        "bm25_reference",
        "--input_data",
        str(source),
        "--chunk_size",
        "10",
    ]
    output = tmp_path / "killed.parquet"
    parts = tmp_path / "killed.parquet.parts"

    process = run_cli(*arguments, "--output", str(output), env_dir=tmp_path, wait=False)
    deadline = time.monotonic() + 240
    while len(list(parts.glob("chunk-*.parquet"))) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    finished = len(list(parts.glob("chunk-*.parquet")))
    assert not output.exists() and 3 <= finished < 40
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # nothing half-written

    _, log, code = run_cli(*arguments, "--output", str(output), env_dir=tmp_path)
    assert code == 0, log
    assert f"{40 - finished} of 40 chunks left" in log and "resuming" in log
    assert not parts.exists()

    _, log, code = run_cli(*arguments, "--output", str(tmp_path / "whole.parquet"), module=True, env_dir=tmp_path)
    assert code == 0, log
    assert output.read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_resuming_another_job_is_refused_and_no_resume_starts_over(tmp_path):
    dataset = datasets.Dataset.from_list(review_rows(30))
    parts = tmp_path / "r.parquet.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"task": "product_review", "retriever": "recency"}))
    with pytest.raises(ValueError, match="holds an interrupted ranking of another job"):
        rank_dataset(dataset, REVIEW, "bm25", tmp_path / "r.parquet", progress=False)
    rank_dataset(dataset, REVIEW, "bm25", tmp_path / "r.parquet", resume=False, progress=False)
    assert (tmp_path / "r.parquet").exists() and not parts.exists()


def test_bad_rows_are_named_and_leave_no_output(tmp_path):
    dataset = datasets.Dataset.from_list(review_rows(30)).map(
        lambda row, index: {"input": None} if index == 17 else {}, with_indices=True
    )
    with pytest.raises(
        ValueError, match=r"rows 10\.\.19 of the dataset: example 'r17': 'input' must be a string, got NoneType"
    ):
        rank_dataset(dataset, REVIEW, "bm25", tmp_path / "r.parquet", chunk_size=10, num_proc=2, progress=False)
    assert not (tmp_path / "r.parquet").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"retriever": "none"}, "the 'none' retriever selects no item"),
        ({"output": "ranked.csv"}, r"must end in one of \.parquet, \.arrow, \.jsonl, \.json"),
        ({"columns": ["input"]}, "the dataset has no 'profile' column"),
        ({"rows": 0}, "the dataset has no rows: nothing to rank"),
        ({"task": "poetry"}, "unknown LongLaMP config 'poetry'"),
        ({"retriever": "bm26"}, "unknown retriever 'bm26'"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(change, message, tmp_path):
    dataset = datasets.Dataset.from_list(review_rows(5))
    dataset = dataset.select_columns(change.get("columns", dataset.column_names)).select(range(change.get("rows", 5)))
    with pytest.raises(ValueError, match=message):
        rank_dataset(
            dataset,
            change.get("task", "product_review"),
            change.get("retriever", "bm25"),
            tmp_path / change.get("output", "r.parquet"),
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_reads_a_lamp_style_question_file_and_names_bad_input(tmp_path):
    questions = tmp_path / "dev_questions.json"
    questions.write_text(json.dumps(review_rows(12)))
    _, log, code = run_cli(
        "--task",
        "product_review_user",
        "--retriever",
        "recency",
        "--input_data",
        str(questions),
        "--output",
        str(tmp_path / "r.jsonl"),
        env_dir=tmp_path,
    )
    assert code == 0, log
    assert len(load_ranked(tmp_path / "r.jsonl", tmp_path / "hf")) == 12
    _, log, code = run_cli(
        "--task",
        "product_review",
        "--retriever",
        "bm25",
        "--seed",
        "3",
        "--input_data",
        str(questions),
        "--output",
        str(tmp_path / "r.parquet"),
        env_dir=tmp_path,
    )
    assert code == 2 and "rank_profiles.py: error: retriever 'bm25' does not take seed" in log
    assert "Traceback" not in log


@pytest.mark.multiprocess
def test_cli_ranks_a_config_through_longlamp_load(tmp_path):
    longlamp = pytest.importorskip("longlamp")
    if not (REPO / "data" / "sample").is_dir():
        pytest.skip("no bundled sample in data/sample")
    output = tmp_path / "r.parquet"
    _, log, code = run_cli(
        "--config",
        "product_review_user",
        "--split",
        "validation",
        "--data_dir",
        "data/sample",
        "--retriever",
        "bm25",
        "--output",
        str(output),
        module=True,
        env_dir=tmp_path,
    )
    assert code == 0, log
    source = longlamp.load("product_review_user", split="validation", data_dir=str(REPO / "data" / "sample"))
    ranked = load_ranked(output, tmp_path / "hf")
    for row, ranked_row in zip(source, ranked):
        assert top_k_items(REVIEW, ranked_row, 3, is_ranked=True) == top_k_items(REVIEW, row, 3, "bm25")
