r"""Rank every profile of a LongLaMP split once, for training and evaluation with --is_ranked.

    python retrieval/rank_profiles.py --task product_review --retriever bm25 \
        --input_data dev_questions.json --output ranked/dev_bm25.parquet --num_workers 2
    python -m retrieval.rank_profiles --config abstract_generation_temporal --split validation \
        --retriever contriever --output ranked/abstract_val_contriever.parquet

The input is a data file (Parquet, JSON lines, a JSON list, or a LaMP-style `*_questions.json`), a
`save_to_disk` folder, or a config and split, all read with `longlamp.load_split`. The output keeps every
column, sorts each profile most relevant first and adds `profile_scores` and `ranked_by` (see
docs/retrieval.md). An interrupted run resumes where it stopped when started again with the same arguments.
Flags follow the project's vocabulary (docs/flags.md): the encoder is `--retriever_model` (`--model_name` kept),
its cache `--embedding_cache_dir`; `--cache_dir` is the datasets cache, as in every command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if not __package__:  # run as `python retrieval/rank_profiles.py`: import from the repository root instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import datasets  # noqa: E402

from longlamp_cli import ArgumentParser, add_flag, positive_int, run_command  # noqa: E402
from longlamp_errors import UsageError  # noqa: E402
from longlamp_tasks import Task, parse_config_name  # noqa: E402
from retrieval.ranking import DEFAULT_CHUNK_ITEMS, DEFAULT_CHUNK_SIZE, rank_dataset  # noqa: E402
from retrieval.registry import RETRIEVERS, get_retriever, resolve_task  # noqa: E402

# flag -> the retriever option it sets (given flags only: an option the retriever does not take is refused)
_RETRIEVER_OPTIONS = {"retriever_model": "model_name", "batch_size": "batch_size", "device": "device",
                      "embedding_cache_dir": "cache_dir", "dtype": "dtype", "seed": "seed"}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    add_flag(parser, "task", help="task or config name, e.g. product_review (taken from --config when omitted)")
    parser.add_argument("--retriever", required=True, choices=[name for name in RETRIEVERS if name != "none"],
                        help="ranking model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input_data",
        type=Path,
        help="a .parquet, .arrow, .jsonl or .json file, a LaMP-style *_questions.json, or a folder",
    )
    source.add_argument("--config", help="a LongLaMP config loaded with longlamp.load, e.g. product_review_user")
    add_flag(parser, "split")
    add_flag(parser, "data_dir")
    add_flag(parser, "cache_dir")
    parser.add_argument("--output", type=Path, required=True, help="ranked dataset: .parquet, .arrow, .jsonl or .json")
    add_flag(parser, "num_workers", type=positive_int, default=1,
             help="workers: threads for bm25, processes for the Python retrievers")
    parser.add_argument(
        "--resume", action=argparse.BooleanOptionalAction, default=True, help="continue an interrupted run"
    )
    parser.add_argument("--chunk_size", type=positive_int, default=DEFAULT_CHUNK_SIZE, help="rows per resumable chunk")
    parser.add_argument(
        "--chunk_items", type=positive_int, default=DEFAULT_CHUNK_ITEMS,
        help="profile items per chunk, at most (past one row)"
    )
    dense = parser.add_argument_group("contriever options")
    add_flag(dense, "retriever_model", "--model_name", default=None,
             help="Hugging Face encoder (default: facebook/contriever)")
    dense.add_argument("--batch_size", type=positive_int, help="texts per encoder forward pass (default: 64)")
    dense.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    add_flag(dense, "embedding_cache_dir")
    dense.add_argument("--dtype", choices=("float16", "bfloat16", "float32"),
                       help="encoder dtype (default: float16 on cuda, else float32)")
    add_flag(parser, "seed", help="seed of the random retriever (default: 0)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def load_input(args: argparse.Namespace, task: Task) -> datasets.Dataset:
    """The dataset to rank: --config/--split/--data_dir, or --input_data, both through longlamp.load_split."""
    import longlamp

    source = args.config or str(args.input_data)
    try:
        return longlamp.load_split(source, args.split, task=task.name, data_dir=args.data_dir,
                                   cache_dir=args.cache_dir)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None


def task_of(args: argparse.Namespace) -> Task:
    """The task from --task, --config or both (which must then agree)."""
    if args.config:
        config_task = parse_config_name(args.config)[0]
        if args.task and resolve_task(args.task) != config_task:
            raise UsageError(f"--task {args.task} does not match --config {args.config}")
        return config_task
    if not args.task:
        raise UsageError("--task is required with --input_data")
    return resolve_task(args.task)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = {option: getattr(args, flag) for flag, option in _RETRIEVER_OPTIONS.items()
               if getattr(args, flag) is not None}
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
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
