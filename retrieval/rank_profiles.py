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

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as `python retrieval/rank_profiles.py`: import from the repository root instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import datasets  # noqa: E402

from longlamp_cli import (  # noqa: E402
    ArgumentParser,
    DataArguments,
    DataSourceArguments,
    SeedArguments,
    WorkerArguments,
    arg,
    output_file,
    positive_int,
    reuse,
    run_command,
)
from longlamp_errors import UsageError  # noqa: E402
from longlamp_runs import HubOrigin, hub_origin, origin_metadata  # noqa: E402
from longlamp_tasks import Task, parse_config_name  # noqa: E402
from retrieval.cli import DEFAULT_RETRIEVER, RetrievalArguments  # noqa: E402
from retrieval.ranking import DEFAULT_CHUNK_ITEMS, DEFAULT_CHUNK_SIZE, rank_dataset  # noqa: E402
from retrieval.registry import get_retriever, resolve_task  # noqa: E402

# flag -> the retriever option it sets (given flags only: an option the retriever does not take is refused)
_RETRIEVER_OPTIONS = {"retriever_model": "model_name", "batch_size": "batch_size", "device": "device",
                      "embedding_cache_dir": "cache_dir", "dtype": "dtype", "seed": "seed"}


@dataclass(kw_only=True)
class RankArguments(RetrievalArguments, SeedArguments, WorkerArguments, DataSourceArguments):
    """What to rank, and how."""

    _argument_group_name = "ranking"
    input_data: str | None = arg("a .parquet, .arrow, .jsonl or .json file, a LaMP-style *_questions.json, or a folder "
                                 "(default: none; give this or --config_name)", default=None)
    config_name: str | None = arg("a LongLaMP config loaded with longlamp.load, e.g. product_review_user; `--config "
                                  "NAME` still works (default: none; give this or --input_data)", default=None,
                                  config_alias=True)
    split: str = reuse(DataArguments, "split")
    output: str = arg("the ranked dataset to write: .parquet, .arrow, .jsonl or .json", type=output_file)
    resume: bool = arg("continue an interrupted run", default=True)
    chunk_size: int = arg("rows per resumable chunk", default=DEFAULT_CHUNK_SIZE, type=positive_int)
    chunk_items: int = arg("profile items per chunk, at most (past one row)", default=DEFAULT_CHUNK_ITEMS,
                           type=positive_int)
    retriever_model: str = reuse(RetrievalArguments, "retriever_model", aliases=("--model_name",))
    batch_size: int | None = arg("contriever: texts per encoder forward pass (default: 64)", default=None,
                                 type=positive_int)
    device: str | None = arg("contriever: torch device (default: cuda when available, else cpu)", default=None)
    dtype: str | None = arg("contriever: encoder dtype (default: float16 on cuda, else float32)", default=None,
                            choices=("float16", "bfloat16", "float32"))


def make_parser() -> ArgumentParser:
    return ArgumentParser(RankArguments, description=__doc__)


def load_input(args: RankArguments, task: Task) -> datasets.Dataset:
    """The dataset to rank: --config_name/--split/--data_dir, or --input_data, both through longlamp.load_split."""
    import longlamp

    source = args.config_name or args.input_data
    try:
        return longlamp.load_split(source, args.split, task=task.name, data_dir=args.data_dir,
                                   cache_dir=args.cache_dir, revision=args.revision)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None


def task_of(args: RankArguments) -> Task:
    """The task from --task, --config_name or both (which must then agree)."""
    if (args.config_name is None) == (args.input_data is None):
        raise UsageError("give the data to rank: one of --config_name (or --config NAME) and --input_data")
    if args.config_name:
        config_task = parse_config_name(args.config_name)[0]
        if args.task and resolve_task(args.task) != config_task:
            raise UsageError(f"--task {args.task} does not match --config_name {args.config_name}")
        return config_task
    if not args.task:
        raise UsageError("--task is required with --input_data")
    return resolve_task(args.task)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = args.retriever or DEFAULT_RETRIEVER
    if name == "none":
        raise UsageError("--retriever none ranks nothing; choose a retriever")
    given = {flag for flag in _RETRIEVER_OPTIONS if flag in parser.given}
    if name == "contriever":
        given.add("retriever_model")
    options = {option: getattr(args, flag) for flag, option in _RETRIEVER_OPTIONS.items() if flag in given}
    task, retriever = task_of(args), get_retriever(name, **options)
    dataset = load_input(args, task)
    rank_dataset(
        dataset,
        task,
        retriever,
        args.output,
        num_proc=args.num_workers or 1,
        resume=args.resume,
        chunk_size=args.chunk_size,
        chunk_items=args.chunk_items,
        metadata=origin_metadata(input_origin(args, task)),
    )
    return 0


def input_origin(args: RankArguments, task: Task) -> HubOrigin | None:
    """Where the ranked rows came from, when from the Hub: a config read from it (at the revision asked), or a
    local copy or ranked file that names its Hub origin. Runs on the ranked file are then published as the Hub
    dataset (publishing.runs.dataset_identity); anything else is local data."""
    import longlamp

    if args.config_name and not args.data_dir and task.public:
        return HubOrigin(longlamp.DEFAULT_REPO_ID, args.revision)
    return hub_origin(args.data_dir, args.config_name or args.input_data)


if __name__ == "__main__":
    sys.exit(run_command(main))
