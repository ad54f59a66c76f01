"""Run folders: where each file of a run lies.

# Run folder layout
Every name below is written by one package and read by another (cards, uploads, the leaderboard, the runner), so
it is defined here once; a name only its own package uses stays there.
"""

from __future__ import annotations

import json
from pathlib import Path

# A zero-shot run folder (evaluation/zero_shot/), which per-user evaluation and training's validation generations
# also write, and which cards, uploads, the leaderboard and the runner read.
PROMPTS_FILE = "prompts.json"  # what the model saw, per example
PROGRESS_FILE = "progress.jsonl"  # the resume log: settings line, then one line per finished example
PREDICTIONS_FILE = "predictions.json"  # the benchmark's {"task", "golds": [{"id", "output"}]}
GOLDS_FILE = "golds.json"  # the references, in the same format (never published)
SCORES_FILE = "scores.json"  # the scorer's numbers with every setting that produced them
PER_SAMPLE_FILE = "per_sample.jsonl"  # each example's scores (scoring.per_sample)
COMPARISON_FILE = "comparison.json"  # with profile against no profile
NO_PROFILE_DIR = "no_profile"  # the same run without profile, inside the run with profile
CARD_FILE = "README.md"  # a run's (or a Hub repository's) card

# A training run folder (training/).
FINAL_DIR = "final"  # the model (or adapter) at the end of training
BEST_DIR = "best"  # the model of the best evaluation, with --metric_for_best_model
CHECKPOINTS_DIR = "checkpoints"  # resumable checkpoints, checkpoint-<step>/
STATE_FILE = "trainer_state.json"  # in each checkpoint: where the run stood
TRAINING_RECORD_FILE = "training_config.json"  # next to every exported model: the run's settings
VALIDATION_DIR = "validation"  # the last evaluation's generations and scores, in the zero-shot layout
TEST_PREDICTIONS_FILE = "predictions_test.json"  # predictions for --test_data after training

# Per-user runs (training/train_per_user.py, training/train_style_vectors.py).
PER_USER_REPORT_FILE = "per_user_report.json"  # time, storage and losses of every user's adapter
STYLE_SELECTION_FILE = "style_selection.json"  # the layer and scale chosen on validation

# What publishing/hub.py names the files of a pushed run (the leaderboard reads them back).
PUBLISHED_SUMMARY_FILE = "results.json"  # a variant's scores.json without machine paths
PUBLISHED_RESULTS_DIR = "longlamp"  # in a model repository: a zero-shot run's files, one folder per config


# The prompt settings a fine-tuned model is evaluated with by default (longlamp_cli's trained-settings defaults).
# A minimal reader of the training record, until the run record's own reader replaces it under the same name.
TRAINED_SETTINGS = ("use_profile", "retriever", "retriever_model", "num_retrieved", "max_prompt_length",
                    "use_chat_template")
TRAINED_RETRIEVAL = ("retriever", "retriever_model", "num_retrieved")  # meaningful only with use_profile


def trained_settings(model_path) -> dict | None:
    """The retrieval, k, prompt budget and chat-template settings a model folder was fine-tuned with, read from
    the training record beside it; None for anything else (a Hub id, a base model). Settings the run left to
    their defaults (None) are not returned, nor the retrieval of a model trained without profile."""
    record_file = Path(model_path).expanduser() / TRAINING_RECORD_FILE
    if not record_file.is_file():
        return None
    record = json.loads(record_file.read_text(encoding="utf-8"))
    names = [name for name in TRAINED_SETTINGS if record.get("use_profile") or name not in TRAINED_RETRIEVAL]
    return {name: record[name] for name in names if record.get(name) is not None}
