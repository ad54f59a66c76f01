"""Evaluation during training: validation loss, and generations scored with the project's scorer.

Both run on every process over its shard of the data and gather the results (duplicates that
accelerate adds to even out the last batch are dropped by `gather_for_metrics`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from generation.base import finish_ids
from generation.decoding import GenerationSettings
from generation.hf_transformers import generation_config, new_tokens
from generation.preparation import transformers_model
from generation.source import ModelSource
from longlamp_io import write_json_atomic
from longlamp_runs import GOLDS_FILE, PER_SAMPLE_FILE, PREDICTIONS_FILE, SCORES_FILE, RunRecord
from scoring import HEADLINE_METRICS
from training.loss import per_example_sums, token_losses


@torch.no_grad()
def validation_loss(accelerator, model, loader, is_encoder_decoder: bool, keep_target_logits: bool) -> float:
    """Mean cross-entropy per target token over the whole validation set."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64)
    for batch in tqdm(loader, desc="Validation loss", disable=not accelerator.is_local_main_process, leave=False):
        losses, owners = token_losses(model, batch, is_encoder_decoder, keep_target_logits)
        sums = per_example_sums(losses, owners, batch["row"].numel())
        totals += accelerator.gather_for_metrics(sums).sum(dim=0).double().cpu()
    return (totals[0] / totals[1]).item()


@torch.no_grad()
def generate_texts(accelerator, model, source: ModelSource, loader, settings: GenerationSettings,
                   synced_gpus: bool | None = None) -> dict[int, str]:
    """Generations for the prompts of `loader`, keyed by their `row`: the transformers backend's generation
    config, cut at the same stop ids and decoded the same way (`finish_ids`), so that ROUGE during training equals
    ROUGE from evaluating the saved checkpoint with evaluate_llm.py (tests/test_train_loop.py).

    `synced_gpus` is passed only when given: left out, transformers decides itself (it syncs under FSDP and
    ZeRO-3 with several processes, which an explicit False would override and hang).
    """
    model.eval()
    generator = accelerator.unwrap_model(model)
    target = transformers_model(generator)
    config = generation_config(target, source, settings)
    own, target.generation_config = target.generation_config, config  # no default of the model's own fills in
    texts: dict[int, str] = {}
    try:
        for batch in tqdm(loader, desc="Generating", disable=not accelerator.is_local_main_process, leave=False):
            output = generator.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                        generation_config=config, **generation_sync(synced_gpus))
            ids = new_tokens(output, batch["input_ids"].shape[1], source.is_encoder_decoder).tolist()
            decoded = [finish_ids(source, row, settings.max_new_tokens).text for row in ids]
            pairs = list(zip(batch["row"].tolist(), decoded))
            texts.update(accelerator.gather_for_metrics(pairs, use_gather_object=True))
    finally:
        target.generation_config = own  # the checkpoint keeps the model's own
    return texts


def generation_sync(synced_gpus: bool | None) -> dict:
    """The `synced_gpus` argument of `generate`, only where it must be forced."""
    return {} if synced_gpus is None else {"synced_gpus": synced_gpus}


def score_and_keep(directory: Path, record: RunRecord, step: int, ids: list[str], predictions: list[str],
                   references: list[str], write: bool) -> dict[str, float]:
    """The paper's metrics (ROUGE-1, ROUGE-L, METEOR) of the validation generations, exact means from the project's
    scorer; with `write` (the main process) the generations are kept in `directory` as a zero-shot run keeps them
    (predictions.json, golds.json, scores.json with 95% intervals and the training run's record, per_sample.jsonl),
    so that the run's card and upload show them like any evaluation."""
    from scoring import per_sample
    from scoring.files import write_predictions
    from scoring.metrics import score_with_samples

    result, samples = score_with_samples(predictions, references, metrics=HEADLINE_METRICS)
    task_name = record.task.scorer_task_name
    if write:
        write_predictions(directory / PREDICTIONS_FILE, task_name, ids, dict(zip(ids, predictions)))
        write_predictions(directory / GOLDS_FILE, task_name, ids, dict(zip(ids, references)))
        per_sample.write(directory / PER_SAMPLE_FILE, per_sample.rows(ids, predictions, samples))
        write_json_atomic(directory / SCORES_FILE, {"task": task_name, "examples": len(ids), "step": step,
                                                      "settings": record.to_dict(), "scores": result})
    return {name: float(value) for name, value in result["metrics"].items()}
