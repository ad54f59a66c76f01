"""The flags the per-user commands share (training/train_style_vectors.py and evaluation/evaluate_per_user.py):
model, data and prompt, from longlamp_cli.FLAGS."""

from __future__ import annotations

import argparse

from longlamp_cli import add_flag, positive_int


def add_model_and_prompt_flags(p: argparse.ArgumentParser) -> None:
    """The model, data and prompt flags, with the per-user commands' defaults."""
    add_flag(p, "model_name", required=True, help="base model or task adapter folder")
    p.add_argument("--data", required=True, help="a LongLaMP config name or a file/folder")
    add_flag(p, "task", help="task or config name (default: --data when it is a config name)")
    add_flag(p, "split", default="test", choices=("train", "validation", "test"), help="which split of --data is read")
    add_flag(p, "data_dir")
    add_flag(p, "cache_dir")
    add_flag(p, "revision")
    add_flag(p, "max_eval_examples", "--limit", type=positive_int)
    add_flag(p, "use_profile")
    add_flag(p, "retriever")
    add_flag(p, "retriever_model")
    add_flag(p, "num_retrieved", type=positive_int, default=1)
    add_flag(p, "max_prompt_length", type=positive_int)
    add_flag(p, "max_new_tokens", type=positive_int, default=512)
    add_flag(p, "batch_size", type=positive_int, help="prompts per generate call (default: the backend's, 8 "
             "transformers, 256 vLLM)")
    add_flag(p, "dtype")
    add_flag(p, "use_chat_template")
