"""Leaderboard speed: 50 runs of 4,500 examples, each with a no-profile baseline, built from per-sample files.

The runs are generated zero-shot run folders (scores.json, per_sample.jsonl, no_profile/): 2 models x 5
retrievers x 5 values of k, one config. The script prints the time `evaluation.comparison.board.build` takes
(reading 100 per-sample files, ranking, the scorer's 1,000-resample interval of each mean, the adjusted sign-flip
tests against the best and the baseline with 10,000 patterns, writing Markdown, CSV, HTML and the plot); the issue's
goal is under a minute.

    .venv/bin/python benchmarks/bench_leaderboard.py [--runs 50] [--examples 4500]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.comparison import board  # noqa: E402
from longlamp_io import write_json_atomic  # noqa: E402
from longlamp_runs import (  # noqa: E402
    PER_SAMPLE_FILE,
    DataSource,
    DecodingSettings,
    ModelSettings,
    RetrievalSettings,
    RunRecord,
    TaskSettings,
)
from scoring import metrics, per_sample  # noqa: E402

TASK = "LongLaMP_product_review_user"


def write_run(folder: Path, rng: np.random.Generator, ids: list[str], users: list[str], record: RunRecord,
              level: float) -> None:
    scores = {name: np.clip(rng.normal(level, 0.08, len(ids)), 0, 1) for name in metrics.PER_SAMPLE_METRICS}
    per_sample.write(folder / PER_SAMPLE_FILE, per_sample.rows(ids, ["word " * 80] * len(ids), scores, users))
    versions = metrics.library_versions(metrics.PER_SAMPLE_METRICS, "python")
    write_json_atomic(folder / "scores.json", {
        "task": TASK, "examples": len(ids), "empty_predictions": 0, "settings": record.to_dict(),
        "scores": {"num_samples": len(ids), "metrics": {n: float(np.mean(v)) for n, v in scores.items()},
                   "versions": versions,
                   "settings": metrics.scoring_settings(metrics.PER_SAMPLE_METRICS, "python")}})


def make_runs(root: Path, runs: int, examples: int) -> list[Path]:
    rng = np.random.default_rng(0)
    ids, users = [f"id-{i}" for i in range(examples)], [f"user-{i % 900}" for i in range(examples)]
    grid = itertools.product(["model-a", "model-b"], ["bm25", "contriever", "recency", "random", "dense"],
                             [1, 2, 4, 8, 16])
    folders = []
    for model, retriever, k in itertools.islice(grid, runs):
        folder = root / f"{model}-{retriever}-k{k}"
        common = RunRecord("zero_shot", TaskSettings("product_review_user", "validation"),
                           DataSource("product_review_user"), ModelSettings(model),
                           generation=DecodingSettings(max_new_tokens=512))
        with_profile = RetrievalSettings(True, retriever, signature=retriever, num_retrieved=k)
        write_run(folder, rng, ids, users, dataclasses.replace(common, retrieval=with_profile), 0.20 + 0.002 * k)
        write_run(folder / "no_profile", rng, ids, users, common, 0.19)
        folders.append(folder)
    return folders


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="run folders (default %(default)s, at most 50)")
    parser.add_argument("--examples", type=int, default=4500, help="examples per run (default %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_runs(Path(tmp) / "runs", args.runs, args.examples)
        start, cpu = time.perf_counter(), time.process_time()
        result = board.build(folders, Path(tmp) / "board")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        ranked = sum(len(g["rows"]) for groups in result["configs"].values() for g in groups)
    print(f"{ranked} runs of {args.examples} examples (each with a no-profile baseline): leaderboard built in "
          f"{seconds:.1f} s (CPU {cpu:.1f} s); goal: under 60 s")
    return 0 if seconds < 60 else 1


if __name__ == "__main__":
    sys.exit(main())
