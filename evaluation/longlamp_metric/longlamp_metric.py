"""LongLaMP's metrics as a Hugging Face `evaluate` module, loadable offline:

    import evaluate
    metric = evaluate.load("evaluation/longlamp_metric")   # a path: nothing is fetched from the Hub
    metric.compute(predictions=[...], references=[...])

It wraps `scoring.metrics.score` (the longlamp package must be importable, as `make setup` installs it), so
it returns the same numbers as the library call and the commands: see docs/evaluation.md.
"""

import datasets
import evaluate

from longlamp_tasks import CITATION
from scoring.metrics import DEFAULT_METRICS, score

_DESCRIPTION = """\
ROUGE-1, ROUGE-2, ROUGE-L, ROUGE-Lsum and METEOR (and optionally SacreBLEU) exactly as the LongLaMP benchmark
computes them with evaluate's `rouge` and `meteor` (texts stripped, one reference per prediction), faster and
offline. The headline numbers are exact means; a seeded bootstrap interval, evaluate's own (bootstrap median)
ROUGE value for the same seed, and per-user averages are returned beside them.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of gold texts, or of single-element lists of one gold text.
    metrics: names among rouge1, rouge2, rougeL, rougeLsum, meteor, sacrebleu (default: the first five).
    user_ids: optional user of each sample, for per-user averages.
    bootstrap: bootstrap resamples (default 1000; 0 for none). seed: their seed (default 0).
    num_workers: worker processes (default: all cores).
Returns:
    The dict of `scoring.metrics.score`: "metrics" holds the headline numbers.
Examples:
    >>> metric = evaluate.load("evaluation/longlamp_metric")
    >>> result = metric.compute(predictions=["the cat sat"], references=["the cat sat down"], bootstrap=0)
    >>> round(result["metrics"]["rouge1"], 4)
    0.8571
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LongLaMPMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://arxiv.org/abs/2407.11016"],
        )

    def _compute(self, predictions, references, metrics=DEFAULT_METRICS, user_ids=None, bootstrap=1000, seed=0,
                 num_workers=None):
        if any(isinstance(reference, list) and len(reference) != 1 for reference in references):
            raise ValueError("LongLaMP has one reference per prediction: give strings or single-element lists")
        references = [reference[0] if isinstance(reference, list) else reference for reference in references]
        return score(predictions, references, metrics=metrics, user_ids=user_ids, bootstrap=bootstrap, seed=seed,
                     num_workers=num_workers)
