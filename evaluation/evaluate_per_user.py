"""Predictions of the per-user methods: each user's adapter (OPPU), style vector, and/or profile summary.

    python evaluation/evaluate_per_user.py --model_name BASE_OR_TASK_ADAPTER --data product_review_user \
        --split test --adapters_dir runs/oppu --output_dir runs/oppu/test

OUTPUT_DIR is a zero-shot run folder, resumable: the run itself is evaluation/zero_shot/per_user.py's (see there).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.zero_shot.per_user import VLLM_OPTIONS, choose_backend, run  # noqa: E402
from generation import BACKENDS  # noqa: E402
from longlamp_cli import ArgumentParser, add_flag, positive_int  # noqa: E402
from longlamp_tasks import parse_config_name  # noqa: E402
from personalization.cli import add_model_and_prompt_flags  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    add_model_and_prompt_flags(p)
    p.add_argument("--adapters_dir", help="a training/train_per_user.py output folder: each user's adapter")
    p.add_argument("--style_vectors_dir", help="a training/train_style_vectors.py output folder")
    p.add_argument("--style_layer", type=positive_int, help="steered layer (default: the folder's chosen one)")
    p.add_argument("--style_scale", type=float, help="steering scale (default: the folder's chosen one)")
    p.add_argument("--use_summary", action="store_true", help="put a summary of the user's profile in the prompt")
    p.add_argument("--summary_of", choices=("profile", "retrieved"), default="profile",
                   help="summarise the whole profile (once per user) or each example's retrieved items")
    p.add_argument("--summary_cache_dir", help="where summaries are cached (default: OUTPUT_DIR/summaries)")
    p.add_argument("--summary_max_new_tokens", type=positive_int, default=128, help="summary length")
    p.add_argument("--summary_model", help="write the summaries with this model instead of the evaluated one: a "
                   "Hub id or folder, or with --summary_backend openai the name a server knows")
    p.add_argument("--summary_backend", default="auto", choices=("auto", *BACKENDS),
                   help="the backend of --summary_model (evaluate_llm.py's --backend)")
    p.add_argument("--summary_api_base", help="with --summary_backend openai: the server's API, e.g. "
                   "http://localhost:8000/v1 (its key: OPENAI_API_KEY)")
    add_flag(p, "output_dir", required=True, help="the run folder (zero-shot's files); a restart resumes from it")
    p.add_argument("--backend", default="auto", choices=("auto", "transformers", "vllm"),
                   help="auto: vLLM when it is installed with a GPU (or as a CPU build) and runs the model and the "
                   "methods asked for (not style vectors, not per-user adapters on a task adapter), else transformers")
    add_vllm_flags(p)
    return p


def add_vllm_flags(p: argparse.ArgumentParser) -> None:
    """evaluate_llm.py's vLLM engine flags (ZeroShotOptions' vllm group), and how many users' adapters mix."""
    import dataclasses

    from evaluation.zero_shot import ZeroShotOptions
    from evaluation.zero_shot.options import add_option_flag

    group = p.add_argument_group("vllm")
    for spec in dataclasses.fields(ZeroShotOptions):
        if spec.metadata["group"] == "vllm":
            add_option_flag(group, spec)
    group.add_argument("--max_loras", type=positive_int, default=8,
                       help="vLLM: users' adapters one batch may mix (each holds GPU memory; default: 8)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.task = args.task or args.data
    parse_config_name(args.task)
    if args.summary_of == "retrieved" and not args.use_profile:
        raise ValueError("--summary_of retrieved summarises the retrieved items: add --use_profile")
    if (args.summary_model or args.summary_api_base) and not args.use_summary:
        raise ValueError("--summary_model and --summary_api_base choose who writes the summaries: add --use_summary")
    if (args.style_layer or args.style_scale is not None) and not args.style_vectors_dir:
        raise ValueError("--style_layer and --style_scale need --style_vectors_dir")
    if args.backend == "transformers":
        given = [f"--{name}" for name in VLLM_OPTIONS if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --backend vllm")
    if args.backend == "vllm":
        choose_backend(args, None, None, None)  # what the flags alone rule out, before anything is loaded
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(args)
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
