"""Zero-shot evaluation of an LLM on one LongLaMP split, with or without retrieved profile items.

Every prompt is built (and checked against the budget) before any weights are loaded, so bad input fails in
seconds, not hours. Generation then appends each finished batch (a served model: each answer) to a progress
file; a restarted run skips what is done. Under `accelerate launch` each process generates its share of the
batches into a progress file of its own, which the main process merges (`share`). At the end each run
directory holds:

    prompts.json           what the model saw, per example (for audit)
    predictions.json       {"task", "golds": [{"id", "output"}]}, the benchmark's format, in dataset order
    golds.json             the references in the same format, with each example's user (if the split has outputs)
    scores.json            the scorer's numbers, with the model and every setting that produced them
    progress.jsonl         the resume log (settings line, then one line per finished example, keyed by a hash
                           of its prompt token ids: a changed prompt is generated again, never mixed in)

With `compare_no_profile`, the same model also runs without profile into `<output_dir>/no_profile/`, and
`comparison.json` puts both score sets side by side. The file names are `longlamp_runs`'; the resume machinery is
`generation.progress`'s and `generation.predictions`'. `per_user` is the per-user evaluation run, in this layout.
"""

from evaluation.zero_shot.options import ZeroShotOptions
from evaluation.zero_shot.run import evaluate

__all__ = ["ZeroShotOptions", "evaluate"]
