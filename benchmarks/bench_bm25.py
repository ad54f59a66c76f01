"""BM25 ranking speed: the official per-example rank_bm25 loop against rank_dataset, on the same generated data.

    python benchmarks/bench_bm25.py                       # 4,500 user-split examples + a temporal split
    python benchmarks/bench_bm25.py --n 500 --temporal_users 8 --num_workers 2

Two abstract_generation splits are generated (seeded): a user-sized one (n examples, profiles of 80-160
items of about 180 words, every item distinct) and a temporal-sized one (users with up to 2,500 items,
several examples each whose profiles are the user's earlier items). For each, four timings:
- reference: the official loop, one process: per example `BM25Okapi([x.split() for x in corpus])` and
  `get_top_n(query.split(), profile, n=len(profile))`, as the official rank_profiles.py does;
- bm25 on Python rows: `get_retriever("bm25").rank` over the same rows, one thread (what top_k_items runs);
- bm25 ranking: every example's ranking from the memory-mapped dataset, the chunks of `rank_dataset`
  (`item_batches`, `rank_table`) on num_workers threads, rankings kept in memory like the reference's;
- rank_dataset: the whole job, which also writes the ranked copy of the split (every column, profiles
  reordered, scores) while it ranks: as Parquet (compressed), and as an Arrow stream (.arrow, nothing to encode).
Every example's ranking is checked to be identical (item ids, in order) to the reference, then the
ratios are printed. `--machine_scaling` also times a compiled busy loop on 1 and 2 threads: on a shared
virtual machine two cores may do much less than twice the work of one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from numba import njit  # noqa: E402
from rank_bm25 import BM25Okapi  # noqa: E402

from longlamp_tasks import TASKS  # noqa: E402
from retrieval import get_retriever, rank_dataset  # noqa: E402
from retrieval.base import item_batches  # noqa: E402
from retrieval.ranking import DEFAULT_CHUNK_ITEMS, DEFAULT_CHUNK_SIZE  # noqa: E402

TASK = TASKS["abstract_generation"]


class TextMaker:
    """Word streams with a Zipf-like law over a vocabulary of words of natural lengths (some non-ASCII)."""

    def __init__(self, seed: int, vocabulary_size: int = 60_000):
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
        lengths = np.clip(self.rng.poisson(5, vocabulary_size) + 1, 1, 18)
        words = ["".join(self.rng.choice(letters, size)) for size in lengths]
        words[7::97] = [word + "é" for word in words[7::97]]
        words[11::131] = [word + "," for word in words[11::131]]
        self.words = np.array(words, dtype=object)
        weights = 1.0 / np.arange(1, vocabulary_size + 1) ** 1.07
        self.cumulative = np.cumsum(weights / weights.sum())

    def texts(self, count: int, mean_words: int) -> list[str]:
        sizes = np.maximum(self.rng.poisson(mean_words, count), 1)
        stream = self.words[np.searchsorted(self.cumulative, self.rng.random(int(sizes.sum())))]
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [" ".join(stream[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


def paper_items(maker: TextMaker, count: int, prefix: str) -> list[dict]:
    titles, abstracts = maker.texts(count, 10), maker.texts(count, 170)
    years = maker.rng.integers(1990, 2024, count)
    return [
        {"id": f"{prefix}-{i}", "title": t, "abstract": a, "year": int(y)}
        for i, (t, a, y) in enumerate(zip(titles, abstracts, years))
    ]


def example(maker: TextMaker, name: str, number: str, profile: list[dict]) -> dict:
    keywords = " ".join(f"{i + 1}. {word}" for i, word in enumerate(maker.texts(6, 2)))
    title = maker.texts(1, 10)[0]
    return {
        "id": number,
        "name": name,
        "input": f'Generate an abstract for the title "{title}" using the following items: {keywords}',
        "output": "",
        "profile": profile,
    }


def user_split(n: int, seed: int = 0) -> list[dict]:
    maker = TextMaker(seed)
    rows = []
    for number in range(n):
        profile = paper_items(maker, int(maker.rng.integers(80, 161)), f"u{number}")
        rows.append(example(maker, f"author {number}", f"user-{number}", profile))
    return rows


def temporal_split(users: int, examples_per_user: int = 4, seed: int = 1) -> list[dict]:
    maker = TextMaker(seed)
    rows = []
    for user in range(users):
        items = paper_items(maker, int(maker.rng.integers(300, 2501)), f"t{user}")
        for cut in sorted(maker.rng.integers(int(0.8 * len(items)), len(items), examples_per_user)):
            rows.append(example(maker, f"author {user}", f"temporal-{user}-{cut}", items[:cut]))
    return rows


def reference_rankings(rows: list[dict]) -> list[list[str]]:
    """The official per-example loop (corpus as an f-string of title and abstract, query after 'items:')."""
    rankings = []
    for row in rows:
        profile = row["profile"]
        corpus = [f"{x['title']} {x['abstract']}" for x in profile]
        bm25 = BM25Okapi([x.split() for x in corpus])
        ranked = bm25.get_top_n(TASK.query(row["input"]).split(), profile, n=len(profile))
        rankings.append([item["id"] for item in ranked])
    return rankings


def rank_in_threads(dataset: datasets.Dataset, workers: int) -> list:
    """Every example's ranking, computed the way rank_dataset's workers do, kept in memory."""
    retriever, table = get_retriever("bm25"), dataset.with_format("arrow")[:]
    sizes = pc.list_value_length(table.column("profile")).to_numpy()
    chunks = item_batches(sizes.tolist(), DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_ITEMS)
    with ThreadPoolExecutor(workers) as pool:
        ranked = pool.map(lambda chunk: retriever.rank_table(TASK, table.slice(chunk[0], chunk[1] - chunk[0])), chunks)
        return [ranking for rankings in ranked for ranking in rankings]


def measure(label: str, rows: list[dict], workers: int, folder: Path) -> None:
    source = folder / f"{label}.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(source))
    dataset = datasets.Dataset.from_parquet(str(source), cache_dir=str(folder / "hf"))
    sizes = [len(row["profile"]) for row in rows]
    print(f"\n{label}: {len(rows)} examples, {sum(sizes)} profile items (largest profile {max(sizes)})", flush=True)

    start = time.perf_counter()
    expected = reference_rankings(rows)
    reference = time.perf_counter() - start
    start = time.perf_counter()
    core = get_retriever("bm25").rank(TASK, rows)
    core_seconds = time.perf_counter() - start
    start = time.perf_counter()
    in_memory = rank_in_threads(dataset, workers)
    ranking_seconds = time.perf_counter() - start
    jobs = {}
    for suffix in (".parquet", ".arrow"):
        start = time.perf_counter()
        output = folder / f"{label}-ranked{suffix}"
        rank_dataset(dataset, TASK, "bm25", output, num_proc=workers, progress=False)
        jobs[suffix] = time.perf_counter() - start

    ranked = datasets.Dataset.from_file(str(output))
    ranked_ids = [[item["id"] for item in profile] for profile in ranked["profile"]]
    for name, rankings in (("Python rows", core), ("the split in threads", in_memory)):
        ids = [[row["profile"][i]["id"] for i in ranking.order] for row, ranking in zip(rows, rankings)]
        if ids != expected:
            raise SystemExit(f"{label}: the rankings of bm25 on {name} differ from rank_bm25's")
    if ranked_ids != expected:
        raise SystemExit(f"{label}: the profiles written by rank_dataset are not in rank_bm25's order")
    print(f"  identical rankings for all {len(rows)} examples (item ids in order, ties included)")
    for name, seconds in [
        ("reference: rank_bm25 per example, 1 process", reference),
        ("bm25 on Python rows, 1 thread", core_seconds),
        (f"bm25 ranking of the split, {workers} threads", ranking_seconds),
        (f"rank_dataset, {workers} threads, writing the ranked Parquet", jobs[".parquet"]),
        (f"rank_dataset, {workers} threads, writing the ranked .arrow", jobs[".arrow"]),
    ]:
        print(f"  {name:<58} {seconds:8.2f} s   {reference / seconds:6.1f}x")

@njit(nogil=True)
def _busy_loop(steps: int) -> int:
    value = 1
    for step in range(steps):
        value = (value ^ (step & 255)) * 1099511628211
    return value


def print_machine_scaling() -> None:
    """How much more two threads of compiled code do than one on this machine (2.0 on two free cores)."""
    steps = 300_000_000
    _busy_loop(10)
    start = time.perf_counter()
    _busy_loop(steps)
    one = time.perf_counter() - start
    with ThreadPoolExecutor(2) as pool:
        start = time.perf_counter()
        list(pool.map(_busy_loop, [steps, steps]))
        two = time.perf_counter() - start
    print(f"machine: two threads of a compiled busy loop do {2 * one / two:.2f}x the work of one")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4500, help="examples of the user-sized split")
    parser.add_argument(
        "--temporal_users", type=int, default=40, help="users of the temporal-sized split (4 examples each)"
    )
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--machine_scaling", action="store_true", help="also time a busy loop on 1 and 2 threads")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    if args.machine_scaling:
        print_machine_scaling()
    with tempfile.TemporaryDirectory() as folder:
        measure("user-sized", user_split(args.n), args.num_workers, Path(folder))
        measure("temporal-sized", temporal_split(args.temporal_users), args.num_workers, Path(folder))


if __name__ == "__main__":
    main()
