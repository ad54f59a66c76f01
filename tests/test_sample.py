"""The bundled synthetic sample: reproducible from its generator, and shaped like the real data, where retrieval
from the user's own profile helps and the best-matching item beats a random one."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rank_bm25 import BM25Okapi
from rouge_score import rouge_scorer

import longlamp
from longlamp_tasks import TASKS, config_names, parse_config_name

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.multiprocess
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


def _rouge1(scorer, target: str, text: str) -> float:
    return scorer.score(target, text)["rouge1"].fmeasure


@pytest.mark.parametrize("name", config_names(with_aliases=False))
def test_the_best_bm25_item_beats_a_random_item_of_the_same_profile(name, sample_dir, sample_cache):
    """As in the real data, the profile items that share the query's topic are the ones that predict the target:
    the official BM25 query's best item scores ROUGE-1 at least 0.03 above a random item of the same profile (its
    expected score: the mean over the profile's items, so that the margin does not depend on one draw)."""
    scorer = rouge_scorer.RougeScorer(["rouge1"])
    task, _ = parse_config_name(name)
    data_dir = sample_dir if task.public else sample_dir / "avocado"
    for split in ("validation", "test"):
        rows = [r for r in longlamp.load(name, split=split, data_dir=str(data_dir), cache_dir=sample_cache)
                if r["profile"]]
        best, drawn = [], []
        for row in rows:
            corpus = [task.corpus_text(item) for item in row["profile"]]
            scores = BM25Okapi([text.split() for text in corpus]).get_scores(task.query(row["input"]).split())
            best.append(_rouge1(scorer, row["output"], corpus[int(scores.argmax())]))
            drawn.append(sum(_rouge1(scorer, row["output"], text) for text in corpus) / len(corpus))
        assert sum(best) / len(best) > sum(drawn) / len(drawn) + 0.03, (name, split)
