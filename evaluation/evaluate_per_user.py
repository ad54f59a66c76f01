"""Predictions of the per-user methods: each user's adapter (OPPU), style vector, and/or profile summary.

    python evaluation/evaluate_per_user.py --model_name BASE_OR_TASK_ADAPTER --data product_review_user \
        --split test --adapters_dir runs/oppu --output_dir runs/oppu/test

OUTPUT_DIR is a zero-shot run folder, resumable: the run itself is evaluation/zero_shot/per_user.py's (see there).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.zero_shot.per_user import foreign_engine_flags, method_refusal, run  # noqa: E402
from generation.cli import BackendArguments, VllmArguments  # noqa: E402
from longlamp_cli import ArgumentParser, arg, positive_int, reuse  # noqa: E402
from longlamp_tasks import parse_config_name  # noqa: E402
from personalization.cli import (  # noqa: E402
    PerUserGenerationArguments,
    ProfileSummaryArguments,
    summary_refusal,
)


@dataclass(kw_only=True)
class EvaluatePerUserArguments(VllmArguments, ProfileSummaryArguments, PerUserGenerationArguments):
    """The per-user methods to evaluate, and the backend."""

    _argument_group_name = "per-user methods"
    adapters_dir: str | None = arg("a training/train_per_user.py output folder: each user's adapter (default: none)",
                                   default=None)
    style_vectors_dir: str | None = arg("a training/train_style_vectors.py output folder (default: none)",
                                        default=None)
    style_layer: int | None = arg("steered layer (default: the folder's chosen one)", default=None, type=positive_int)
    style_scale: float | None = arg("steering scale (default: the folder's chosen one)", default=None)
    backend: str = reuse(BackendArguments, "backend", choices=("auto", "transformers", "vllm"),
                         help="auto: vLLM when it is installed with a GPU (or as a CPU build) and runs the model and "
                              "the methods asked for (not style vectors, not per-user adapters on a task adapter), "
                              "else transformers")
    max_loras: int = arg("vLLM: users' adapters one batch may mix (each holds GPU memory)", default=8,
                         type=positive_int)


def make_parser() -> ArgumentParser:
    return ArgumentParser(EvaluatePerUserArguments, description=__doc__.splitlines()[0],
                          trained_settings_from="model_name")


def parse_args(argv: Sequence[str] | None = None) -> EvaluatePerUserArguments:
    args = make_parser().parse_into(argv)
    parse_config_name(args.task)
    if (args.style_layer or args.style_scale is not None) and not args.style_vectors_dir:
        raise ValueError("--style_layer and --style_scale need --style_vectors_dir")
    for refusal in (summary_refusal(args), foreign_engine_flags(args), method_refusal(args)):  # nothing loaded
        if refusal:
            raise ValueError(refusal)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(args)
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
