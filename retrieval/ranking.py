"""Rank every profile of a dataset once, so that training and evaluation take the first k items.

The ranked dataset has the same rows and columns as the input, with each `profile` sorted most relevant
first, plus two columns: `profile_scores` (the retriever's score of each item, in the same order; null
for retrievers that do not score, recency and random) and `ranked_by` (the retriever's signature, such as
"bm25" or "contriever(model_name=facebook/contriever, dtype=float32)"). It is written as Parquet, an Arrow
stream (.arrow, the format of datasets' own cache: nothing to encode, memory-mapped when loaded), JSON lines
(.jsonl) or a LaMP-style JSON list (.json), by the output's extension, and loads back with `datasets`.

The work is cut into chunks of rows (at most `chunk_size` rows and, past the first row, `chunk_items` profile
items, so that temporal profiles of thousands of items still spread over the workers). Each chunk's rankings
are written to `<output>.parts/` as soon as they are done (write to a temporary file, then rename), so a
killed run started again continues after the last finished chunk and writes the same file; a manifest there
refuses to mix runs with different data, task, retriever or chunking. Workers rank chunks while this process
writes the finished ones in order; the output appears only when complete, and the parts are then removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from longlamp_tasks import Task
from retrieval.base import Ranking, Retriever, item_batches
from retrieval.registry import resolve_retriever, resolve_task
from retrieval.simple import NoRetriever

logger = logging.getLogger(__name__)

SCORES_COLUMN = "profile_scores"
RANKED_BY_COLUMN = "ranked_by"
DEFAULT_CHUNK_SIZE = 256
DEFAULT_CHUNK_ITEMS = 8_192
OUTPUT_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".json")


def rank_dataset(
    dataset: datasets.Dataset,
    task: Task | str,
    retriever: Retriever | str,
    output: str | os.PathLike,
    num_proc: int = 1,
    resume: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    chunk_items: int = DEFAULT_CHUNK_ITEMS,
    metadata: dict[bytes, bytes] | None = None,
) -> Path:
    """Write `dataset` with every profile ranked by `retriever` to `output` (see the module docstring).

    num_proc workers share the chunks: threads for bm25 (its compiled kernel releases the GIL), processes for
    the Python retrievers; contriever holds a model, so it runs in this process and batches across a chunk.
    resume=True continues an interrupted run of the same job; resume=False discards its finished chunks.
    `metadata` goes into a Parquet or Arrow output's schema (where the rows came from). Returns the output path.
    """
    task, retriever, output = resolve_task(task), resolve_retriever(retriever), Path(output)
    if isinstance(retriever, NoRetriever):
        raise ValueError(
            "the 'none' retriever selects no item, so there is nothing to rank; use it without ranked data"
        )
    missing = [column for column in ("input", "profile") if column not in dataset.column_names]
    if missing:
        raise ValueError(f"the dataset has no {' or '.join(map(repr, missing))} column (it has {dataset.column_names})")
    if output.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"output {output} must end in one of {', '.join(OUTPUT_SUFFIXES)}")
    if len(dataset) == 0:
        raise ValueError("the dataset has no rows: nothing to rank")
    if chunk_size < 1 or chunk_items < 1:
        raise ValueError(f"chunk_size and chunk_items must be at least 1, got {chunk_size} and {chunk_items}")

    profile_sizes = _profile_sizes(dataset)
    chunks = item_batches(profile_sizes.tolist(), chunk_size, chunk_items)
    manifest = _manifest(dataset, profile_sizes, task, retriever, chunk_size, chunk_items)
    parts = _prepare_parts(output, manifest, resume)
    todo = [index for index in range(len(chunks)) if not _part_path(parts, index).exists()]
    logger.info(
        "ranking %d examples of %s with %s: %d of %d chunks left",
        len(dataset),
        task.name,
        retriever.signature,
        len(todo),
        len(chunks),
    )
    done = len(dataset) - sum(chunks[index][1] - chunks[index][0] for index in todo)
    job = (dataset.with_format("arrow"), task, retriever)  # formatted once: slices of it are Arrow tables
    with tqdm(
        total=len(dataset), initial=done, unit="example", desc=f"ranking ({retriever.name})", disable=not progress
    ) as bar, _RankedChunks(job, chunks, parts, todo, min(num_proc, len(todo)), bar) as ranked:
        schema = ranked.schema.with_metadata({**(ranked.schema.metadata or {}), **(metadata or {})})
        _write_output(iter(ranked), schema, output, parts)
    shutil.rmtree(parts)
    logger.info("wrote %s", output)
    return output


def _profile_sizes(dataset: datasets.Dataset) -> np.ndarray:
    """The number of profile items of every row (0 for a null profile)."""
    sizes = [
        pc.list_value_length(batch.column("profile")).fill_null(0).to_numpy(zero_copy_only=False)
        for batch in dataset.select_columns(["profile"]).with_format("arrow").iter(batch_size=100_000)
    ]
    return np.concatenate(sizes).astype(np.int64)


def _manifest(
    dataset: datasets.Dataset, profile_sizes: np.ndarray, task: Task, retriever: Retriever, chunk_size: int,
    chunk_items: int,
) -> dict:
    """What a run's parts depend on: a resumed run must match it exactly."""
    digest = hashlib.sha256(json.dumps([len(dataset), dataset.column_names]).encode())
    columns = [column for column in ("id", "input") if column in dataset.column_names]
    for batch in dataset.select_columns(columns).with_format("arrow").iter(batch_size=10_000):
        digest.update(json.dumps([batch.column(column).to_pylist() for column in columns]).encode())
    digest.update(profile_sizes.tobytes())
    return {
        "task": task.name,
        "retriever": retriever.signature,
        "chunk_size": chunk_size,
        "chunk_items": chunk_items,
        "data": digest.hexdigest(),
    }


def _prepare_parts(output: Path, manifest: dict, resume: bool) -> Path:
    """The parts folder of this job: kept when resuming the same job, emptied when not resuming."""
    parts = output.with_name(output.name + ".parts")
    manifest_path = parts / "manifest.json"
    if parts.exists() and not resume:
        shutil.rmtree(parts)
    if parts.exists():
        previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
        if previous != manifest:
            raise ValueError(
                f"{parts} holds an interrupted ranking of another job ({previous}, now {manifest}); "
                "remove it or start over with resume=False (--no-resume)"
            )
        logger.info("resuming the interrupted ranking in %s", parts)
        return parts
    parts.mkdir(parents=True)
    _write_atomically(manifest_path, lambda path: path.write_text(json.dumps(manifest, indent=1, allow_nan=False)))
    return parts


def _part_path(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:06d}.parquet"


def _write_atomically(path: Path, write, folder: Path | None = None) -> None:
    """write(temporary_path), then rename it to path: readers never see a half-written file. The temporary file
    is in `folder` (default: beside path), so that one left by a killed run is removed with that folder."""
    temporary = (folder or path.parent) / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _rank_chunk(
    rows: datasets.Dataset, task: Task, retriever: Retriever, start: int, stop: int, part: Path
) -> pa.Table:
    """Rank rows start..stop-1 (of the dataset in Arrow format), store their rankings as one part file and
    return them."""
    try:
        rankings = retriever.rank_table(task, rows[start:stop])
    except ValueError as error:
        raise ValueError(f"rows {start}..{stop - 1} of the dataset: {error}") from error
    rankings_table = _rankings_table(rankings)
    _write_atomically(part, lambda path: pq.write_table(rankings_table, path))
    return rankings_table


def _rankings_table(rankings: Sequence[Ranking]) -> pa.Table:
    """Rankings as columns `order` (list<int32>) and `scores` (list<float64>, null where unscored)."""
    offsets = pa.array(np.cumsum([0] + [len(ranking.order) for ranking in rankings]), pa.int32())
    orders = np.concatenate([np.zeros(0, np.int32), *(ranking.order for ranking in rankings)]).astype(np.int32)
    if any(ranking.scores is None for ranking in rankings):
        scores = pa.nulls(len(rankings), pa.list_(pa.float64()))
    else:
        values = np.concatenate([np.zeros(0), *(ranking.scores for ranking in rankings)]).astype(np.float64)
        scores = pa.ListArray.from_arrays(offsets, pa.array(values, pa.float64()))
    return pa.table({"order": pa.ListArray.from_arrays(offsets, pa.array(orders, pa.int32())), "scores": scores})


_worker_job: tuple | None = None  # (rows, task, retriever) in a worker process


def _start_worker(rows: datasets.Dataset, task: Task, retriever: Retriever) -> None:
    global _worker_job
    _worker_job = rows, task, retriever


def _rank_chunk_in_worker(start: int, stop: int, part: Path) -> pa.Table:
    return _rank_chunk(*_worker_job, start, stop, part)


class _RankedChunks:
    """The ranked rows of each chunk, in order, for the writer. Chunks left to rank are ranked in worker threads,
    which also reorder the rows, or worker processes, which send back the rankings only (the rows stay here); at
    most two chunks a worker are in flight, so that memory stays bounded when writing is slower than ranking.
    With one worker each chunk is ranked when the writer asks for it. Finished chunks are read from their part.
    The first error stops the run; finished chunks stay."""

    def __init__(self, job: tuple, chunks: list, parts: Path, todo: list[int], workers: int, bar: tqdm):
        self.job, self.chunks, self.parts, self.todo, self.bar = job, chunks, parts, set(todo), bar
        rows, _, retriever = job
        self.schema = _ranked_features(rows.features).arrow_schema
        self.pool, self.futures, self.workers_reorder = None, {}, False
        if workers > 1 and retriever.parallel == "threads":
            self.pool, self.rank, self.workers_reorder = ThreadPoolExecutor(workers), self._rank_and_reorder, True
        elif workers > 1 and retriever.parallel == "processes":
            self.pool = ProcessPoolExecutor(workers, initializer=_start_worker, initargs=job)
            self.rank = _rank_chunk_in_worker
        self.unsubmitted = iter(sorted(todo) if self.pool else ())
        for _ in range(2 * workers):
            self._submit_next()

    def _submit_next(self) -> None:
        index = next(self.unsubmitted, None)
        if index is not None:
            start, stop = self.chunks[index]
            self.futures[index] = self.pool.submit(self.rank, start, stop, _part_path(self.parts, index))
            self.futures[index].add_done_callback(lambda _, rows=stop - start: self.bar.update(rows))

    def __iter__(self) -> Iterator[pa.Table]:
        for index, (start, stop) in enumerate(self.chunks):
            if index in self.futures:
                result = self.futures.pop(index).result()
                self._submit_next()
                yield result if self.workers_reorder else self._reorder(start, stop, result)
            elif index in self.todo:
                yield self._rank_and_reorder(start, stop, _part_path(self.parts, index))
                self.bar.update(stop - start)
            else:
                yield self._reorder(start, stop, pq.read_table(_part_path(self.parts, index)))

    def _rank_and_reorder(self, start: int, stop: int, part: Path) -> pa.Table:
        return self._reorder(start, stop, _rank_chunk(*self.job, start, stop, part))

    def _reorder(self, start: int, stop: int, rankings: pa.Table) -> pa.Table:
        """Rows start..stop-1 with their profiles ranked, in the output schema."""
        rows, _, retriever = self.job
        table = rows[start:stop]
        stale = [column for column in (SCORES_COLUMN, RANKED_BY_COLUMN) if column in table.column_names]
        return apply_rankings(table.drop_columns(stale), rankings, retriever.signature).cast(self.schema)

    def __enter__(self) -> _RankedChunks:
        return self

    def __exit__(self, *error) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _ranked_features(features: datasets.Features) -> datasets.Features:
    """The features of a ranked dataset: the input's, with profile_scores and ranked_by (replaced if present)."""
    ranked = datasets.Features(
        {name: feature for name, feature in features.items() if name not in (SCORES_COLUMN, RANKED_BY_COLUMN)}
    )
    ranked[SCORES_COLUMN] = datasets.List(datasets.Value("float64"))
    ranked[RANKED_BY_COLUMN] = datasets.Value("string")
    return ranked


def _write_output(tables: Iterator[pa.Table], schema: pa.Schema, output: Path, parts: Path) -> None:
    """Write the ranked tables, in order, as the output's format asks (atomically, through a temporary file in the
    parts folder)."""

    def write(path: Path) -> None:
        if output.suffix in (".parquet", ".arrow"):
            open_writer = pq.ParquetWriter if output.suffix == ".parquet" else pa.ipc.new_stream
            with open_writer(path, schema) as writer:
                for table in tables:
                    writer.write_table(table)
        else:
            _write_json(path, tables, as_list=output.suffix == ".json")

    _write_atomically(output, write, folder=parts)


def _write_json(path: Path, tables, as_list: bool) -> None:
    """Rows as JSON lines, or as one JSON list (the LaMP question-file layout)."""
    with open(path, "w", encoding="utf-8") as file:
        file.write("[" if as_list else "")
        first = True
        for table in tables:
            for row in table.to_pylist():
                line = json.dumps(row, ensure_ascii=False, allow_nan=False)
                file.write(("\n" if first else ",\n") + line if as_list else line + "\n")
                first = False
        file.write("\n]\n" if as_list else "")


def apply_rankings(table: pa.Table, rankings: pa.Table, signature: str) -> pa.Table:
    """Reorder each row's profile by its ranking and add the scores and ranked_by columns."""
    profiles = table.column("profile").combine_chunks()
    orders = rankings.column("order").combine_chunks()
    lengths = pc.list_value_length(profiles).to_numpy(zero_copy_only=False)
    if not np.array_equal(lengths, pc.list_value_length(orders).to_numpy(zero_copy_only=False)):
        raise ValueError("stored rankings do not match the profiles of the dataset (was the data changed?)")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    positions = np.repeat(offsets[:-1], lengths) + orders.flatten().to_numpy()
    ranked = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), profiles.flatten().take(pa.array(positions)), type=profiles.type
    )
    table = table.set_column(table.column_names.index("profile"), "profile", ranked)
    table = table.append_column(SCORES_COLUMN, rankings.column("scores"))
    return table.append_column(RANKED_BY_COLUMN, pa.array([signature] * len(table), pa.string()))
