"""Evaluation during training: validation loss, and generations scored with the project's scorer.

Both run on every process over its shard of the data and gather the results (duplicates that
accelerate adds to even out the last batch are dropped by `gather_for_metrics`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from longlamp_runs import write_json_atomic

from training.config import GENERATION_METRICS
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
def generate_texts(accelerator, model, tokenizer, loader, is_encoder_decoder: bool, max_new_tokens: int,
                   num_beams: int = 1, synced_gpus: bool | None = None) -> dict[int, str]:
    """Greedy (or beam) generations for the prompts of `loader`, keyed by their `row`.

    `synced_gpus` is passed only when given: left out, transformers decides itself (it syncs under FSDP and
    ZeRO-3 with several processes, which an explicit False would override and hang).
    """
    model.eval()
    generator = accelerator.unwrap_model(model)
    texts: dict[int, str] = {}
    for batch in tqdm(loader, desc="Generating", disable=not accelerator.is_local_main_process, leave=False):
        output = generator.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            **generation_sync(synced_gpus),
        )
        new_tokens = output if is_encoder_decoder else output[:, batch["input_ids"].shape[1]:]
        decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        pairs = list(zip(batch["row"].tolist(), decoded))
        texts.update(accelerator.gather_for_metrics(pairs, use_gather_object=True))
    return texts


def generation_sync(synced_gpus: bool | None) -> dict:
    """The `synced_gpus` argument of `generate`, only where it must be forced."""
    return {} if synced_gpus is None else {"synced_gpus": synced_gpus}


def score_texts(predictions: list[str], references: list[str]) -> dict[str, float]:
    """The paper's metrics (ROUGE-1, ROUGE-L, METEOR), exact means, from the project's scorer."""
    from evaluation.metrics import score

    result = score(predictions, references, metrics=GENERATION_METRICS, bootstrap=0)
    return {name: float(value) for name, value in result["metrics"].items()}


def write_predictions(path: str | Path, task_name: str, ids: list[str], outputs: list[str]) -> Path:
    """Predictions in the benchmark's file format: {"task": ..., "golds": [{"id", "output"}, ...]}."""
    golds = [{"id": row_id, "output": text} for row_id, text in zip(ids, outputs)]
    write_json_atomic(Path(path), {"task": task_name, "golds": golds})
    return Path(path)
