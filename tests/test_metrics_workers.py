"""Scoring in several worker processes gives the one-process scores, every time.

Forked workers once shared the parent's open WordNet data files (and their file offsets): two workers seeking
and reading at once read each other's lines, which crashed METEOR or, worse, parsed as a wrong synset. These
pairs use a large, varied WordNet vocabulary, so that each worker reads many synsets from disk concurrently.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from nltk import word_tokenize
from nltk.corpus import wordnet
from nltk.translate.meteor_score import single_meteor_score

from scoring import meteor, metrics

RUNS = 4


def wordnet_vocabulary_pairs(n: int = 160, seed: int = 0) -> tuple[list[str], list[str]]:
    """Pairs of 5 to 600 words drawn from WordNet's own lemmas, so that almost every word needs a synset read."""
    rng = random.Random(seed)
    lemmas = sorted(name for name in wordnet.all_lemma_names() if name.isalpha())
    predictions, references = [], []
    for _ in range(n):
        reference = rng.sample(lemmas, rng.choice([5, 40, 150, 300, 600]))
        shared = [word for word in reference if rng.random() < 0.3]
        predictions.append(" ".join(shared + rng.sample(lemmas, rng.randint(5, 300))))
        references.append(" ".join(reference))
    return predictions, references


@pytest.fixture(scope="module")
def pairs():
    return wordnet_vocabulary_pairs()


def cold_scores(pairs, num_workers: int) -> np.ndarray:
    """METEOR as a fresh scoring process computes it: no synset cached yet, so the workers read WordNet's files."""
    meteor.clear_caches()
    wordnet._synset_offset_cache.clear()  # NLTK's own per-offset cache of parsed synsets
    return metrics.per_sample_scores(*pairs, metrics=["meteor"], num_workers=num_workers)["meteor"]


@pytest.fixture(scope="module")
def one_worker(pairs):
    return cold_scores(pairs, num_workers=1)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_meteor_workers_equal_one_worker_on_every_run(pairs, one_worker):
    for _ in range(RUNS):
        np.testing.assert_array_equal(cold_scores(pairs, num_workers=2), one_worker)


def test_one_worker_equals_plain_nltk_meteor(pairs, one_worker):
    predictions, references = pairs
    plain = [
        single_meteor_score(word_tokenize(ref), word_tokenize(pred), alpha=0.9, beta=3, gamma=0.5)
        for pred, ref in zip(predictions[:40], references[:40])
    ]
    np.testing.assert_array_equal(one_worker[:40], plain)
