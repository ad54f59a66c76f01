r"""Rank every profile of a LongLaMP split once, for training and evaluation with --is_ranked.

    python retrieval/rank_profiles.py --task product_review --retriever bm25 \
        --input_data dev_questions.json --output ranked/dev_bm25.parquet --num_workers 2
    python -m retrieval.rank_profiles --config abstract_generation_temporal --split validation \
        --retriever contriever --output ranked/abstract_val_contriever.parquet

The input is a data file (Parquet, JSON lines, a JSON list, or a LaMP-style `*_questions.json`), a
`save_to_disk` folder, or a config and split, all read with `longlamp.load_split`. The output keeps every
column, sorts each profile most relevant first and adds `profile_scores` and `ranked_by` (see
docs/retrieval.md). An interrupted run resumes where it stopped when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if not __package__:  # run as `python retrieval/rank_profiles.py`: import from the repository root instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import datasets  # noqa: E402

from longlamp_tasks import Task, parse_config_name  # noqa: E402
from retrieval.ranking import DEFAULT_CHUNK_ITEMS, DEFAULT_CHUNK_SIZE, rank_dataset  # noqa: E402
from retrieval.registry import RETRIEVERS, get_retriever, resolve_task  # noqa: E402

_RETRIEVER_OPTIONS = ("model_name", "batch_size", "device", "cache_dir", "dtype", "seed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", help="task or config name, e.g. product_review (taken from --config when omitted)")
    parser.add_argument("--retriever", required=True, choices=[name for name in RETRIEVERS if name != "none"])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input_data",
        type=Path,
        help="a .parquet, .arrow, .jsonl or .json file, a LaMP-style *_questions.json, or a folder",
    )
    source.add_argument("--config", help="a LongLaMP config loaded with longlamp.load, e.g. product_review_user")
    parser.add_argument("--split", default="validation", help="split to rank (default: validation)")
    parser.add_argument("--data_dir", help="data folder for longlamp.load (e.g. data/sample)")
    parser.add_argument("--output", type=Path, required=True, help="ranked dataset: .parquet, .arrow, .jsonl or .json")
    parser.add_argument(
        "--num_workers", type=int, default=1, help="workers: threads for bm25, processes for the Python retrievers"
    )
    parser.add_argument(
        "--resume", action=argparse.BooleanOptionalAction, default=True, help="continue an interrupted run"
    )
    parser.add_argument("--chunk_size", type=int, default=DEFAULT_CHUNK_SIZE, help="rows per resumable chunk")
    parser.add_argument(
        "--chunk_items", type=int, default=DEFAULT_CHUNK_ITEMS, help="profile items per chunk, at most (past one row)"
    )
    dense = parser.add_argument_group("contriever options")
    dense.add_argument("--model_name", help="Hugging Face encoder (default: facebook/contriever)")
    dense.add_argument("--batch_size", type=int, help="texts per encoder forward pass (default: 64)")
    dense.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    dense.add_argument("--cache_dir", help="embedding cache (default: ~/.cache/longlamp/embeddings)")
    dense.add_argument("--dtype", help="float16, bfloat16 or float32 (default: float16 on cuda, else float32)")
    parser.add_argument("--seed", type=int, help="seed of the random retriever (default: 0)")
    return parser.parse_args(argv)


def load_input(args: argparse.Namespace, task: Task) -> datasets.Dataset:
    """The dataset to rank: --config/--split/--data_dir, or --input_data, both through longlamp.load_split."""
    import longlamp

    source = args.config or str(args.input_data)
    try:
        return longlamp.load_split(source, args.split, task=task.name, data_dir=args.data_dir)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from error


def task_of(args: argparse.Namespace) -> Task:
    """The task from --task, --config or both (which must then agree)."""
    if args.config:
        config_task = parse_config_name(args.config)[0]
        if args.task and resolve_task(args.task) != config_task:
            raise SystemExit(f"--task {args.task} does not match --config {args.config}")
        return config_task
    if not args.task:
        raise SystemExit("--task is required with --input_data")
    return resolve_task(args.task)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = {name: getattr(args, name) for name in _RETRIEVER_OPTIONS if getattr(args, name) is not None}
    try:
        task, retriever = task_of(args), get_retriever(args.retriever, **options)
        dataset = load_input(args, task)
        rank_dataset(
            dataset,
            task,
            retriever,
            args.output,
            num_proc=args.num_workers,
            resume=args.resume,
            chunk_size=args.chunk_size,
            chunk_items=args.chunk_items,
        )
    except ValueError as error:  # bad input, named by the message: no traceback needed
        raise SystemExit(f"error: {error}") from error
    return 0


if __name__ == "__main__":
    sys.exit(main())
