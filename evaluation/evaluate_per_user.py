"""Predictions of the per-user methods: each user's adapter (OPPU), style vector, and/or profile summary.

    python evaluation/evaluate_per_user.py --model_name BASE_OR_TASK_ADAPTER --data product_review_user \
        --split test --adapters_dir runs/oppu --output_file runs/oppu/predictions_test.json

The prompts are the zero-shot ones (`PromptBuilder`, optionally with retrieved items and a summary); each user's
examples are generated with that user's adapter switched in and/or style vector added, through the transformers
backend. The predictions file is the benchmark's format with each example's user, for `eval_task.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from longlamp_cli import positive_int
from longlamp_prompts import PromptBuilder, prompt_budget
from longlamp_tasks import parse_config_name, scorer_task_name

logger = logging.getLogger(__name__)
SELECTION_FILE = "style_selection.json"


def add_model_and_prompt_flags(p: argparse.ArgumentParser) -> None:
    """The flags shared with training/train_style_vectors.py: model, data, prompt."""
    p.add_argument("--model_name", "--model_addr", required=True, help="base model or task adapter folder")
    p.add_argument("--data", required=True, help="a LongLaMP config name or a file/folder")
    p.add_argument("--task", help="task or config name (default: --data when it is a config name)")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"),
                   help="which split of --data is read (default: test)")
    p.add_argument("--data_dir", help="local copy of the LongLaMP data used with config names")
    p.add_argument("--cache_dir", help="datasets cache")
    p.add_argument("--max_eval_examples", "--limit", type=positive_int, help="only the first N rows")
    p.add_argument("--use_profile", action="store_true", help="put retrieved profile items in the prompt")
    p.add_argument("--retriever", default="bm25", help="ranking model for --use_profile (default: bm25)")
    p.add_argument("--retriever_model", default="facebook/contriever", help="dense encoder of --retriever contriever")
    p.add_argument("--num_retrieved", type=positive_int, default=1, help="profile items per prompt (default: 1)")
    p.add_argument("--max_prompt_length", "--max_prompt_tokens", type=positive_int,
                   help="prompt token budget (default: the shared rule)")
    p.add_argument("--max_new_tokens", type=positive_int, default=512, help="tokens to generate (default: 512)")
    p.add_argument("--batch_size", type=positive_int, default=8, help="prompts per generate call (default: 8)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    p.add_argument("--use_chat_template", action=argparse.BooleanOptionalAction, default=None,
                   help="wrap prompts in the tokenizer's chat template (default: when it has one)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_and_prompt_flags(p)
    p.add_argument("--adapters_dir", help="a training/train_per_user.py output folder: each user's adapter")
    p.add_argument("--style_vectors_dir", help="a training/train_style_vectors.py output folder")
    p.add_argument("--style_layer", type=positive_int, help="steered layer (default: the folder's chosen one)")
    p.add_argument("--style_scale", type=float, help="steering scale (default: the folder's chosen one)")
    p.add_argument("--use_summary", action="store_true", help="put a summary of the user's profile in the prompt")
    p.add_argument("--summary_of", choices=("profile", "retrieved"), default="profile",
                   help="summarise the whole profile (once per user) or each example's retrieved items")
    p.add_argument("--summary_cache_dir", help="where summaries are cached (default: OUTPUT_FILE's folder/summaries)")
    p.add_argument("--summary_max_new_tokens", type=positive_int, default=128, help="summary length (default: 128)")
    p.add_argument("--output_file", required=True, help="the predictions file to write")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.task = args.task or args.data
    parse_config_name(args.task)
    if args.summary_of == "retrieved" and not args.use_profile:
        raise ValueError("--summary_of retrieved summarises the retrieved items: add --use_profile")
    if (args.style_layer or args.style_scale is not None) and not args.style_vectors_dir:
        raise ValueError("--style_layer and --style_scale need --style_vectors_dir")
    return args


class PromptSetup:
    """The model, backend and prompt rules of a run, and the prompts of its rows."""

    def __init__(self, args, max_new_tokens: int | None = None):
        from evaluation.backends import get_backend
        from evaluation.backends.generation import GenerationSettings, resolve_model

        self.args, self.task = args, parse_config_name(args.task)[0]
        self.source = resolve_model(args.model_name)
        new_tokens = max_new_tokens or args.max_new_tokens
        budget = prompt_budget(args.max_prompt_length, self.source.context_length(), new_tokens,
                               self.source.is_encoder_decoder)
        self.builder = PromptBuilder(self.task, self.source.tokenizer, budget, args.use_chat_template)
        self.generator = get_backend("transformers", self.source, GenerationSettings(max_new_tokens=new_tokens),
                                     dtype=args.dtype)
        self.retriever = None
        if args.use_profile:
            from retrieval import get_retriever

            options = {"model_name": args.retriever_model} if args.retriever == "contriever" else {}
            self.retriever = get_retriever(args.retriever, **options)

    def items(self, row) -> list[dict]:
        from retrieval import top_k_items

        return top_k_items(self.task, row, self.args.num_retrieved, self.retriever) if self.retriever else []

    def encode(self, prompt: str) -> list[int]:
        return self.source.encode(prompt, self.builder.use_chat_template)


def load_rows(args):
    from training.data import load_rows as load

    return list(load(args.data, args.split, args.task, args.data_dir, args.cache_dir, args.max_eval_examples))


def style_steering(folder: str, layer: int | None, scale: float | None):
    from personalization.style_vectors import StyleSteering, load_vectors

    selection_file = Path(folder) / SELECTION_FILE
    chosen = json.loads(selection_file.read_text()) if selection_file.is_file() else {}
    layer = layer or chosen.get("layer")
    scale = scale if scale is not None else chosen.get("scale")
    if layer is None or scale is None:
        raise ValueError(f"{folder} has no {SELECTION_FILE} (no layer and scale chosen on validation): give "
                         "--style_layer and --style_scale")
    return StyleSteering(load_vectors(folder, layer), layer, scale)


def summaries_for(args, setup: PromptSetup, rows, items, cache_dir: Path) -> list[str]:
    """Each row's summary: of its user's profile (one per user) or of its retrieved items, from the cache."""
    from dataclasses import replace

    from personalization.summaries import SummaryCache, summarize, summary_requests
    from personalization.users import group_users

    if args.summary_of == "profile":
        profiles = {user.user_id: user.profile for user in group_users(rows, setup.task)}
        sets = [profiles[str(row[setup.task.user_column])] for row in rows]
    else:
        sets = items
    generator = setup.generator  # the loaded weights, with the summary's length for the time being
    task_settings, config = generator.settings, generator.model.generation_config
    settings = replace(task_settings, max_new_tokens=args.summary_max_new_tokens)
    wanted = [index for index, items in enumerate(sets) if items]  # nothing to summarise: no summary
    requests = summary_requests(setup.task, setup.source.tokenizer, setup.builder.max_prompt_tokens,
                                [sets[i] for i in wanted], args.use_chat_template)
    identity = {"model": setup.source.address, **settings.record()}
    generator.settings, config.max_new_tokens = settings, settings.max_new_tokens
    try:
        found = summarize(requests, generator, setup.source, SummaryCache(cache_dir), identity,
                          setup.builder.use_chat_template, args.batch_size)
    finally:
        generator.settings, config.max_new_tokens = task_settings, task_settings.max_new_tokens
    summaries = [""] * len(sets)
    for index, summary in zip(wanted, found):
        summaries[index] = summary
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    from evaluation.zero_shot.predictions import write_predictions
    from personalization.generate import generate_per_user
    from personalization.summaries import SummaryPromptBuilder
    from personalization.user_adapters import AdapterStore

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output_file = Path(args.output_file)
    rows = load_rows(args)
    setup = PromptSetup(args)
    items = [setup.items(row) for row in rows]
    if args.use_summary:
        cache_dir = Path(args.summary_cache_dir or output_file.parent / "summaries")
        summaries = summaries_for(args, setup, rows, items, cache_dir)
        with_summary = SummaryPromptBuilder(setup.builder)
        prompts = [with_summary(i, row["input"], s) for i, row, s in zip(items, rows, summaries)]
    else:
        prompts = [setup.builder(i, row["input"]) for i, row in zip(items, rows)]
    users = [str(row[setup.task.user_column]) for row in rows]
    adapters = AdapterStore(args.adapters_dir).adapters() if args.adapters_dir else None
    if args.adapters_dir and not adapters:
        raise ValueError(f"--adapters_dir {args.adapters_dir} holds no finished user adapter")
    style = style_steering(args.style_vectors_dir, args.style_layer, args.style_scale) if args.style_vectors_dir \
        else None
    texts = generate_per_user(setup.generator, [setup.encode(p) for p in prompts], users, adapters=adapters,
                              style=style, batch_size=args.batch_size)
    ids = [row["id"] for row in rows]
    _, setting = parse_config_name(args.task)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    write_predictions(output_file, scorer_task_name(setup.task, setting), ids, dict(zip(ids, texts)),
                      dict(zip(ids, users)))
    logger.info("wrote %d predictions to %s", len(ids), output_file)
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
