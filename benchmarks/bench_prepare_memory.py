"""Peak memory of preparing a LongLaMP-sized config: 20,000 rows, profiles of up to 2,500 items.

The builder reads parquet one record batch at a time and flushes to Arrow every 16 rows, so its peak memory
should track one batch, not the shard. This script writes one generated shard (profiles: mostly 10-100 items,
1% of rows with 2,500), prepares it in a fresh process, and prints that process's peak RSS beside the shard's
size and the RSS of simply reading the whole shard into memory with pyarrow (what a naive loader does).

Usage: python benchmarks/bench_prepare_memory.py [--rows 20000] [--workdir /tmp/longlamp-mem]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from make_sample import User  # noqa: E402

PREPARE = """
import resource, sys
sys.path.insert(0, {repo!r})
import longlamp
ds = longlamp.load("abstract_generation_temporal", split="train", data_dir={data!r}, cache_dir={cache!r})
print(len(ds), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
READ_ALL = """
import resource, pyarrow.parquet as pq
table = pq.read_table({shard!r})
print(table.num_rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
BASELINE = """
import resource, sys
sys.path.insert(0, {repo!r})
import longlamp
print(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def write_shard(path: Path, rows: int, seed: int = 0) -> None:
    """Generated rows in the public abstract schema, written in row groups of 100 rows."""
    rng = random.Random(seed)
    authors = [User(rng, i) for i in range(64)]
    sentences = [author.sentence() for author in authors for _ in range(40)]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    for start in range(0, rows, 100):
        chunk = []
        for index in range(start, min(rows, start + 100)):
            size = 2500 if rng.random() < 0.01 else rng.randint(10, 100)
            profile = [{"id": f"{index}-{j}", "title": rng.choice(sentences)[:60],
                        "abstract": " ".join(rng.choices(sentences, k=8)), "year": 1990 + j % 30}
                       for j in range(size)]
            chunk.append({"name": f"author {index}", "input": rng.choice(sentences),
                          "output": " ".join(rng.choices(sentences, k=10)), "profile": profile})
        table = pa.Table.from_pylist(chunk)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def run(code: str) -> tuple[str, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return out[-1], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/longlamp-mem"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    shard = args.workdir / "data" / "abstract_generation_temporal" / "train-00000-of-00001.parquet"
    start = time.perf_counter()
    write_shard(shard, args.rows)
    metadata = pq.ParquetFile(shard).metadata
    uncompressed = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    print(f"generated {args.rows} rows in {time.perf_counter() - start:.0f}s; shard {shard.stat().st_size / 2**20:.0f} "
          f"MiB on disk, {uncompressed / 2**20:.0f} MiB uncompressed")
    baseline, _ = run(BASELINE.format(repo=str(REPO)))
    naive, _ = run(READ_ALL.format(shard=str(shard)))
    ours, seconds = run(PREPARE.format(repo=str(REPO), data=str(args.workdir / "data"),
                                       cache=str(args.workdir / "cache")))
    print(f"peak RSS, importing the toolkit only:        {baseline} MiB")
    print(f"peak RSS, pyarrow reading the whole shard:   {naive} MiB")
    print(f"peak RSS, preparing the config with longlamp: {ours} MiB ({seconds:.0f}s)")
    print(f"ratio naive / ours: {int(naive) / int(ours):.1f}x")


if __name__ == "__main__":
    main()
