"""LongLaMP's metrics for lists of predictions and references: the one scoring entry point.

The benchmark reports ROUGE-1, ROUGE-L and METEOR as Hugging Face evaluate computes them (the research code
also ROUGE-2, ROUGE-Lsum and SacreBLEU), after its post-processing: both texts `.strip()`ped, each reference
a single-element list. Per-sample scores equal rouge_score's and NLTK's bit for bit (see rouge.py, meteor.py);
the work is spread over processes, and ROUGE runs in Rust when that is exact. An empty prediction is scored
(zero), never dropped. See docs/evaluation.md.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import platform
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from typing import Hashable, Sequence

import numpy as np
from tqdm.auto import tqdm

from scoring import aggregate, meteor, rouge

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "meteor")
PER_SAMPLE_METRICS = rouge.ROUGE_TYPES + ("meteor",)
CORPUS_METRICS = ("sacrebleu",)  # one corpus-level number: no per-sample scores, bootstrap or per-user average
METRICS = PER_SAMPLE_METRICS + CORPUS_METRICS
MIN_SAMPLES_PER_WORKER = 32  # below this a worker process costs more than it saves
CHUNKS_PER_WORKER = 4  # small enough chunks that the workers finish together and progress moves


def postprocess(texts: Sequence[str]) -> list[str]:
    """The benchmark's post-processing: strip each text."""
    return [text.strip() for text in texts]


def default_num_workers() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _score_chunk(job: tuple[list[str], list[str], tuple[str, ...], bool]) -> dict:
    """Worker: the per-sample scores computed in Python (rouge_score when it is the backend, and METEOR)."""
    predictions, references, rouge_types, with_meteor = job
    scores = rouge.python_scores(predictions, references, rouge_types) if rouge_types else {}
    if with_meteor:
        scores["meteor"] = meteor.meteor_scores(predictions, references)
    return scores


def _pool_context():
    """Fork where the platform has it: workers inherit WordNet already loaded (seconds saved per worker)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _score_in_workers(
    predictions: list[str], references: list[str], rouge_types: tuple[str, ...], with_meteor: bool,
    num_workers: int, progress: bool,
) -> dict:
    """Run _score_chunk over the samples, in worker processes when there are enough of them; in sample order."""
    if with_meteor:
        meteor.warm_up()  # fails early with the fix command when the data is missing; forked workers inherit it
    n = len(predictions)
    workers = max(1, min(num_workers, n // MIN_SAMPLES_PER_WORKER))
    size = max(1, math.ceil(n / (workers * CHUNKS_PER_WORKER)))
    jobs = [(predictions[i : i + size], references[i : i + size], rouge_types, with_meteor) for i in range(0, n, size)]
    names = [*rouge_types, "meteor"] if with_meteor else list(rouge_types)
    logger.info("scoring %s of %d samples in %d process(es)", ", ".join(names), n, workers)
    context = _pool_context()
    initializer = meteor.warm_up if with_meteor and context.get_start_method() != "fork" else None
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer) if workers > 1 else None
    bar = tqdm(total=n, desc="scoring", unit="sample", disable=not progress)
    with pool if pool else contextlib.nullcontext(), bar:
        results = []
        for job, result in zip(jobs, pool.map(_score_chunk, jobs) if pool else map(_score_chunk, jobs)):
            results.append(result)
            bar.update(len(job[0]))
    return {name: np.concatenate([result[name] for result in results]) for name in results[0]}


def _sample_scores(
    predictions: list[str], references: list[str], metrics: Sequence[str], num_workers: int, rouge_backend: str,
    progress: bool,
) -> tuple[dict, dict, str]:
    """Per-sample scores of the post-processed texts: (rouge {type: (n, 3)}, {metric: (n,)} F-measures, backend)."""
    rouge_types = tuple(m for m in metrics if m in rouge.ROUGE_TYPES)
    backend = rouge.resolve_backend(rouge_backend) if rouge_types else "none"
    in_python = rouge_types if backend == "python" else ()
    scores = {}
    if in_python or "meteor" in metrics:
        # Workers before the Rust backend: forking before it starts its threads keeps the fork clean.
        scores = _score_in_workers(predictions, references, in_python, "meteor" in metrics, num_workers, progress)
    rouge_prf = {t: scores.pop(t) for t in in_python}
    if backend == "rust":
        rouge_prf = rouge.rust_scores(predictions, references, rouge_types)
    per_sample = {m: (rouge_prf[m][:, 2] if m in rouge_prf else scores[m]) for m in metrics if m in PER_SAMPLE_METRICS}
    return {t: rouge_prf[t] for t in rouge_types}, per_sample, backend


def _check_inputs(predictions, references, metrics, user_ids) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("nothing to score: no predictions")
    for role, texts in (("prediction", predictions), ("reference", references)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{role} {i} is {type(text).__name__}, expected str")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics or len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics must be distinct names among {METRICS}, got {list(metrics)}")
    if user_ids is not None and len(user_ids) != len(predictions):
        raise ValueError(f"{len(user_ids)} user ids for {len(predictions)} predictions")


def per_sample_scores(
    predictions: Sequence[str], references: Sequence[str], *, metrics: Sequence[str] = DEFAULT_METRICS,
    num_workers: int | None = None, rouge_backend: str = "auto", progress: bool = False,
) -> dict[str, np.ndarray]:
    """Each per-sample metric (ROUGE F-measures, METEOR) for each pair, after the benchmark's post-processing."""
    _check_inputs(predictions, references, metrics, None)
    per_sample_metrics = [m for m in metrics if m in PER_SAMPLE_METRICS]
    _, per_sample, _ = _sample_scores(postprocess(predictions), postprocess(references), per_sample_metrics,
                                      num_workers or default_num_workers(), rouge_backend, progress)
    return per_sample


def sacrebleu_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """SacreBLEU on 0-100 with evaluate's `sacrebleu` defaults (13a tokenizer, exp smoothing), one reference each."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def score(predictions: Sequence[str], references: Sequence[str], **options) -> dict:
    """Score predictions against references as LongLaMP does (see score_with_samples for the options)."""
    return score_with_samples(predictions, references, **options)[0]


def score_with_samples(
    predictions: Sequence[str], references: Sequence[str], *, metrics: Sequence[str] = DEFAULT_METRICS,
    user_ids: Sequence[Hashable] | None = None, bootstrap: int = aggregate.BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95, seed: int | None = 0, num_workers: int | None = None, rouge_backend: str = "auto",
    progress: bool = False,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Score predictions against references as LongLaMP does: (the report, {metric: per-sample scores}).

    Returns {"num_samples", "num_empty_predictions", "metrics": {name: exact mean} (the headline numbers),
    "bootstrap": {"num_resamples", "confidence", "seed", "intervals": {name: {"low", "high"}}} (when
    bootstrap > 0), "evaluate_compatible": {"seed", "metrics"} (evaluate's own values for the same seed),
    "per_user": {"num_users", "metrics"} (when user_ids are given), "settings", "versions"}.
    """
    _check_inputs(predictions, references, metrics, user_ids)
    predictions, references = postprocess(predictions), postprocess(references)
    rouge_prf, per_sample, backend = _sample_scores(
        predictions, references, metrics, num_workers or default_num_workers(), rouge_backend, progress
    )
    headline = {name: aggregate.mean(values) for name, values in per_sample.items()}
    if "sacrebleu" in metrics:
        headline["sacrebleu"] = sacrebleu_score(predictions, references)
    # evaluate's value: rouge's bootstrap median; meteor's and sacrebleu's plain value (their mean is numpy's).
    compatible = {**headline, **aggregate.evaluate_compatible_rouge(rouge_prf, seed)}
    result = {
        "num_samples": len(predictions),
        "num_empty_predictions": sum(not text for text in predictions),
        "metrics": {name: headline[name] for name in metrics},
    }
    if bootstrap:
        result["bootstrap"] = {
            "num_resamples": bootstrap, "confidence": confidence, "seed": seed,
            "intervals": aggregate.bootstrap_intervals(per_sample, bootstrap, confidence, seed),
        }
    result["evaluate_compatible"] = {"seed": seed, "metrics": {name: compatible[name] for name in metrics}}
    if user_ids is not None:
        result["per_user"] = aggregate.per_user_means(per_sample, user_ids)
    result["settings"] = scoring_settings(metrics, backend)
    result["versions"] = library_versions(metrics, backend)
    return result, per_sample


def scoring_settings(metrics: Sequence[str], rouge_backend: str) -> dict:
    """What the numbers mean, for the output file."""
    settings = {
        "postprocess": "strip predictions and references; each reference a single-element list",
        "aggregate": "mean of per-sample scores; empty predictions score 0 and are counted",
    }
    if any(m in rouge.ROUGE_TYPES for m in metrics):
        settings["rouge"] = {
            "implementation": "rouge_score.RougeScorer(use_stemmer=False).score_multi, default tokenizer",
            "rougeLsum_sentences": "split on newlines",
            "score": "F-measure",
            "backend": {"rust": "rouge-score-rs (bit-exact, parity-checked)", "python": "rouge_score"}[rouge_backend],
        }
    if "meteor" in metrics:
        settings["meteor"] = {
            "implementation": meteor.IMPLEMENTATION,
            "alpha": meteor.ALPHA, "beta": meteor.BETA, "gamma": meteor.GAMMA, "wordnet": "3.0",
        }
    if "sacrebleu" in metrics:
        settings["sacrebleu"] = {"implementation": "sacrebleu.corpus_bleu defaults (13a, exp smoothing)",
                                 "scale": "0-100"}
    settings["evaluate_compatible"] = (
        "ROUGE: median F-measure of rouge_score's BootstrapAggregator (1000 resamples) as evaluate returns it "
        "when np.random.seed(seed) is called before evaluate.load('rouge'), samples in this order; METEOR and "
        "SacreBLEU: same as metrics"
    )
    return settings


def library_versions(metrics: Sequence[str], rouge_backend: str) -> dict:
    """Versions of the libraries that produced the numbers."""
    packages = ["numpy"]
    if any(m in rouge.ROUGE_TYPES for m in metrics):
        packages.append("rouge-score-rs" if rouge_backend == "rust" else "rouge_score")
        packages.append("rouge_score")
    if "meteor" in metrics:
        packages.append("nltk")
    if "sacrebleu" in metrics:
        packages.append("sacrebleu")
    versions = {"python": platform.python_version()}
    versions.update({package: metadata.version(package) for package in dict.fromkeys(packages)})
    return versions
