"""The bundled synthetic sample: reproducible from its generator, and personal enough that retrieval helps."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from rank_bm25 import BM25Okapi
from rouge_score import rouge_scorer

import longlamp
from longlamp_tasks import TASKS

REPO = Path(__file__).resolve().parents[1]


def test_generator_reproduces_the_shipped_sample(tmp_path, sample_dir):
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample.py"), "--output", str(tmp_path / "s")],
                   check=True, capture_output=True)
    shipped = sorted(p.relative_to(sample_dir) for p in sample_dir.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path / "s") for p in (tmp_path / "s").rglob("*") if p.is_file()) == shipped
    for relative in shipped:
        if relative.suffix == ".parquet":
            assert pq.read_table(tmp_path / "s" / relative).equals(pq.read_table(sample_dir / relative)), relative
        elif relative.suffix != ".zip":  # zip entries carry timestamps; their messages are checked via the JSON ids
            assert (tmp_path / "s" / relative).read_bytes() == (sample_dir / relative).read_bytes(), relative


def test_a_users_own_profile_predicts_their_text(sample_dir, sample_cache):
    """ROUGE-1 of the best BM25 match from the user's own profile beats an item of another user's profile."""
    scorer = rouge_scorer.RougeScorer(["rouge1"])
    rng = random.Random(0)
    for name in ("abstract_generation_user", "product_review_user", "topic_writing_user"):
        task = TASKS[name.rsplit("_", 1)[0]]
        rows = [r for r in longlamp.load(name, split="test", data_dir=str(sample_dir), cache_dir=sample_cache)
                if r["profile"]]
        own, other = [], []
        for index, row in enumerate(rows):
            corpus = [task.corpus_text(item) for item in row["profile"]]
            scores = BM25Okapi([text.split() for text in corpus]).get_scores(task.query(row["input"]).split())
            own.append(scorer.score(row["output"], corpus[int(scores.argmax())])["rouge1"].fmeasure)
            stranger = rows[(index + 1) % len(rows)]["profile"]
            other.append(scorer.score(row["output"], task.corpus_text(rng.choice(stranger)))["rouge1"].fmeasure)
        assert sum(own) / len(own) > sum(other) / len(other) + 0.03, name
