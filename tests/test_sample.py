"""The bundled synthetic sample: reproducible from its generator, and shaped like the real data, where retrieval
from the user's own profile helps and the best-matching item beats the profile's expected item on every metric."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from rank_bm25 import BM25Okapi
from rouge_score import rouge_scorer

import longlamp
from longlamp_tasks import TASKS, config_names, field_text, parse_config_name
from scoring.metrics import per_sample_scores

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


# The least margin, per metric, of the best BM25 item over the profile's expected item on one config and split.
# On large data the generator gives about 0.17 (ROUGE-1), 0.09 (ROUGE-L) and 0.10 (METEOR), with a spread over rows
# of about 0.075, 0.05 and 0.065; a split of the sample has 3 to 5 rows with a profile, so the least margins sit
# about two standard errors of a 3-row mean below those. Samples whose profiles say nothing about the target
# (other users' items, texts that mix topics) give about 0 and fail on every config; so does a sample whose texts
# draw topic words one at a time, with no phrases (ROUGE-L about 0.01 on large data).
MARGINS = {"rouge1": 0.07, "rougeL": 0.025, "meteor": 0.015}


def retrieval_margins(task, rows) -> dict[str, float]:
    """Per metric: the mean over rows of the best BM25 item's score minus the profile's mean item score.

    An item counts by its text of the kind the task asks for (what a copy-the-best-item baseline predicts); the
    best item is the official query's top BM25 match over the official corpus text; the expected score of a
    profile item is the mean over its items, so the margin does not depend on one random draw.
    """
    texts, references, spans, best = [], [], [], []
    for row in rows:
        corpus = [task.corpus_text(item) for item in row["profile"]]
        scores = BM25Okapi([text.split() for text in corpus]).get_scores(task.query(row["input"]).split())
        best.append(len(texts) + int(scores.argmax()))
        spans.append(slice(len(texts), len(texts) + len(corpus)))
        texts += [field_text(item.get(task.output_field)) for item in row["profile"]]
        references += [row["output"]] * len(corpus)
    scores = per_sample_scores(texts, references, metrics=tuple(MARGINS), num_workers=1)
    return {metric: float(np.mean(values[best]) - np.mean([values[span].mean() for span in spans]))
            for metric, values in scores.items()}


@pytest.mark.slow  # about 2 s a config: every profile item scored, METEOR included
@pytest.mark.parametrize("name", config_names(with_aliases=False))
def test_the_best_bm25_item_beats_the_expected_item_of_the_same_profile(name, sample_dir, sample_cache):
    """As in the real data, the profile items that share the query's topic are the ones that predict the target:
    on every split that is evaluated, the best BM25 item beats the expected item of the same profile by MARGINS
    on ROUGE-1, ROUGE-L and METEOR (the benchmark's metrics, scored by the toolkit's scorer)."""
    task, _ = parse_config_name(name)
    data_dir = sample_dir if task.public else sample_dir / "avocado"
    margins = {}
    for split in ("validation", "test"):
        rows = [r for r in longlamp.load(name, split=split, data_dir=str(data_dir), cache_dir=sample_cache)
                if r["profile"]]
        margins[split] = retrieval_margins(task, rows)
    short = {split: {metric: round(value, 4) for metric, value in values.items() if value <= MARGINS[metric]}
             for split, values in margins.items()}
    assert not any(short.values()), f"{name}: margins under {MARGINS}: {short}"
