"""The benchmark's scorer (ROUGE-1, ROUGE-L, METEOR and the other metrics of its evaluation commands): the metric
implementations, their NLTK data, the gold and prediction files they read, and the per-sample files they write."""
