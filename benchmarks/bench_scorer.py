"""Scorer speed: the reference path against scoring.metrics, on the same generated pairs.

The reference path is what evaluate does: rouge_score's RougeScorer (rouge1, rouge2, rougeL, rougeLsum) and
NLTK's METEOR on nltk.word_tokenize tokens, one pair at a time in one process. Ours is
`scoring.metrics.per_sample_scores` (processes, scoring/meteor.py's METEOR, Rust ROUGE).
Every per-sample score must be identical; the script prints both times (wall clock and CPU, worker processes
included) and the ratios, and exits non-zero if any score differs.

    .venv/bin/python benchmarks/bench_scorer.py            # 4,500 pairs of about 250 words, all cores
    .venv/bin/python benchmarks/bench_scorer.py --n 300     # a quick run
"""

from __future__ import annotations

import argparse
import ast
import collections
import itertools
import os
import random
import re
import resource
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring import meteor, metrics  # noqa: E402


def english_word_counts(max_words: int = 200_000) -> collections.Counter:
    """Word frequencies of real English prose: the docstrings of Python's standard library, parsed (not imported)."""
    counts: collections.Counter = collections.Counter()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        if counts.total() >= max_words:
            break
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                counts.update(w.lower() for w in re.findall(r"[A-Za-z]+(?:'[a-z]+)?", ast.get_docstring(node) or ""))
    return counts


class ZipfText:
    """Texts whose words follow the frequencies of English prose, so that METEOR's stem and synonym stages and
    its caches see a realistic vocabulary."""

    def __init__(self, rng: random.Random):
        counts = english_word_counts()
        self.words = list(counts)
        self.weights = list(itertools.accumulate(counts.values()))
        self.rng = rng

    def word(self) -> str:
        return self.rng.choices(self.words, cum_weights=self.weights)[0]

    def text(self, words: int) -> str:
        """About `words` words in sentences: capitals, commas, sentence ends, paragraphs."""
        out, sentence_start = [], True
        for _ in range(words):
            word = self.word()
            out.append(word.capitalize() if sentence_start else word)
            sentence_start = self.rng.random() < 0.07
            out[-1] += self.rng.choice([".", "!", "?"]) if sentence_start else "," if self.rng.random() < 0.05 else ""
            if sentence_start and self.rng.random() < 0.15:
                out[-1] += "\n"
        return " ".join(out).replace("\n ", "\n")

    def prediction(self, reference: str) -> str:
        """A text that shares words and phrases with `reference`: words replaced, inflected, dropped."""
        out = []
        for word in reference.split(" "):
            roll = self.rng.random()
            if roll < 0.3:
                out.append(self.word())
            elif roll < 0.4:
                out.append(word.rstrip(".,!?\n") + self.rng.choice(["s", "ed", "ing"]))
            elif roll < 0.95:
                out.append(word)
        return " ".join(out)


def generate_pairs(n: int, words: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts = ZipfText(rng)
    references = [texts.text(words) for _ in range(n)]
    return [texts.prediction(reference) for reference in references], references


def reference_path(predictions: list[str], references: list[str]) -> tuple[dict[str, np.ndarray], float, float]:
    """evaluate's computation, pair by pair in this process: per-sample F-measures and METEOR, and both times."""
    from nltk import word_tokenize
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer

    predictions, references = metrics.postprocess(predictions), metrics.postprocess(references)
    start = time.perf_counter()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=False)
    rows = [scorer.score_multi([r], p) for p, r in zip(predictions, references)]
    rouge_seconds = time.perf_counter() - start
    start = time.perf_counter()
    meteor_values = [
        meteor_score([word_tokenize(r)], word_tokenize(p), alpha=0.9, beta=3, gamma=0.5)
        for p, r in zip(predictions, references)
    ]
    meteor_seconds = time.perf_counter() - start
    scores = {t: np.array([row[t].fmeasure for row in rows], dtype=np.float64) for t in rows[0]}
    scores["meteor"] = np.array(meteor_values, dtype=np.float64)
    return scores, rouge_seconds, meteor_seconds


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4500, help="pairs to score (default %(default)s)")
    parser.add_argument("--words", type=int, default=250, help="words per text (default %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes for ours (default: all cores)")
    args = parser.parse_args(argv)

    predictions, references = generate_pairs(args.n, args.words)
    meteor.warm_up()  # WordNet and Punkt loaded once, outside both timings
    print(f"{args.n} pairs of about {args.words} words; cores available: {metrics.default_num_workers()}")

    cpu = cpu_seconds()
    expected, rouge_seconds, meteor_seconds = reference_path(predictions, references)
    reference_seconds, reference_cpu = rouge_seconds + meteor_seconds, cpu_seconds() - cpu
    print(f"reference (rouge_score + NLTK METEOR, one process): {reference_seconds:.1f} s "
          f"(ROUGE {rouge_seconds:.1f} s, METEOR {meteor_seconds:.1f} s), CPU {reference_cpu:.1f} s")

    start, cpu = time.perf_counter(), cpu_seconds()
    found = metrics.per_sample_scores(predictions, references, num_workers=args.workers)
    ours_seconds, ours_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    workers = args.workers or metrics.default_num_workers()
    print(f"ours (scoring.metrics, {workers} workers): {ours_seconds:.1f} s, "
          f"CPU {ours_cpu:.1f} s (all processes)")

    differing = {name: int(np.sum(expected[name] != found[name])) for name in expected}
    identical = not any(differing.values())
    print(f"speed-up: {reference_seconds / ours_seconds:.1f}x wall clock, {reference_cpu / ours_cpu:.1f}x CPU time; "
          f"per-sample scores identical: {identical}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} (other processes slow the wall-clock ratio)")
    if not identical:
        print(f"differing samples per metric: {differing}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
