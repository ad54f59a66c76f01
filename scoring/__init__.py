"""The benchmark's scorer (ROUGE-1, ROUGE-L, METEOR and the other metrics of its evaluation commands): the metric
implementations, their NLTK data, the gold and prediction files they read and write, the per-sample files, and the
paired comparison of two systems scored on the same examples.

Used by training (validation generations), zero-shot and per-user evaluation, publishing and the runner, so it sits
below all of them; this module stays light (no numpy, no NLTK) for readers that only need its names.
"""

HEADLINE_METRICS = ("rouge1", "rougeL", "meteor")  # the paper's reported metrics
