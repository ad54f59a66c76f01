"""Run records and run folders written as the toolkit writes them, for tests that need a run without running one."""

from __future__ import annotations

from pathlib import Path

import longlamp_runs as runs
from longlamp_io import write_json_atomic


def zero_shot_record(config: str = "product_review_user", split: str = "validation", model: str = "tiny",
                     data: str | None = None, retriever: str | None = None, k: int | None = None,
                     ranked_by: str | None = None, revision: str | None = None) -> runs.RunRecord:
    """The record of an evaluate_llm.py run (retriever None: without profile)."""
    retrieval = runs.RetrievalSettings()
    if retriever is not None:
        retrieval = runs.RetrievalSettings(True, retriever.split("(")[0], None, retriever, k, ranked_by is not None)
    return runs.RunRecord("zero_shot", runs.TaskSettings(config, split),
                          runs.DataSource(data or config, revision=revision, ranked_by=ranked_by),
                          runs.ModelSettings(model, backend="transformers", dtype="float32"), retrieval,
                          runs.PromptSettings(1024, False), runs.DecodingSettings(max_new_tokens=12))


def write_summary(folder: Path, record: runs.RunRecord, scores: dict | None, **extra) -> Path:
    """scores.json as a zero-shot run writes it: the scorer's report (None: not scored) under the record."""
    path = folder / "scores.json"
    write_json_atomic(path, {"task": record.task.scorer_task_name, "examples": (scores or {}).get("num_samples"),
                             "settings": record.to_dict(), "scores": scores, **extra})
    return path


def write_training_run(folder: Path, **flags) -> runs.RunRecord:
    """A finished training run's final/training_config.json (train.py's flags as given; its model not written)."""
    task = flags.get("task", "product_review_user")
    record = runs.record_from_flags("training", {"task": task, "train_data": task, "max_target_length": 64, **flags})
    runs.write_model_record(folder / "final", record, runs.TrainingOutcome(global_step=2))
    return record
