"""The rows a zero-shot run evaluates: the split loaded and checked, and the task, setting and retriever it
implies."""

from __future__ import annotations

from pathlib import Path

from evaluation.zero_shot.options import ZeroShotOptions
from longlamp_errors import DataError
from longlamp_tasks import Task, parse_config_name
from retrieval import Retriever, get_retriever
from retrieval.cli import DEFAULT_RETRIEVER
from scoring.task_names import canonical_task_name


def config_name(name: str) -> str:
    """A config name from a config, task or scorer task name ("LongLaMP_product_review_user")."""
    task, setting = parse_config_name(canonical_task_name(name).removeprefix("LongLaMP_"))
    return f"{task.name}_{setting}"


def resolve_task_and_retriever(options: ZeroShotOptions, rows) -> tuple[Task, str, str, str | None]:
    """The task and setting (from --task, a config name as data, or ranked data's ids), the retriever's name
    (from --retriever, or ranked data's ranked_by) and, for ranked data, the signature it was ranked with."""
    task = config_name(options.task) if options.task is not None else None
    data = options.validation_data
    from_data = data_config(data)
    if from_data is not None:
        if task is not None and parse_config_name(task) != parse_config_name(from_data):
            raise ValueError(f"--task {options.task!r} contradicts --validation_data {data!r}; give one of them")
    retriever, ranked_by = options.retriever, None
    if options.is_ranked and options.use_profile:
        from retrieval.ranked import ranked_source

        ranked = ranked_source(rows, data, task or from_data, retriever)
        retriever, from_data, ranked_by = ranked.retriever, from_data or ranked.config, ranked.signature
    chosen = task or from_data
    if chosen is None:
        raise ValueError(f"--task is required when --validation_data ({data!r}) is a file or folder, "
                         "e.g. --task product_review_user")
    return (*parse_config_name(chosen), retriever or DEFAULT_RETRIEVER, ranked_by)


def data_config(data: str) -> str | None:
    """The config name that --validation_data names, or None for a file or folder."""
    if Path(data).expanduser().exists():
        return None
    try:
        task, setting = parse_config_name(data)
    except ValueError as error:
        raise ValueError(f"--validation_data {data!r} is no file or folder, and {error}") from None
    return f"{task.name}_{setting}"


def make_retriever(options: ZeroShotOptions, name: str) -> Retriever:
    """The retriever by name; contriever gets --retriever_model and --embedding_cache_dir."""
    retriever_options = {}
    if name == "contriever":
        retriever_options["model_name"] = options.retriever_model
        if options.embedding_cache_dir:
            retriever_options["cache_dir"] = options.embedding_cache_dir
    return get_retriever(name, **retriever_options)


def rows_to_predict(options: ZeroShotOptions):
    """The split as a `datasets.Dataset` (its first `max_eval_examples` rows, `longlamp.load_rows`), checked for what
    a prediction file needs: an input and a unique string id in every row.

    Rows stay in Arrow and are read one at a time: temporal profiles hold thousands of items.
    """
    import longlamp

    task = config_name(options.task) if options.task is not None else None
    dataset = longlamp.load_rows(options.validation_data, options.split, task=task, data_dir=options.data_dir,
                                 cache_dir=options.cache_dir, revision=options.revision,
                                 limit=options.max_eval_examples)
    where = f"{options.validation_data} ({options.split})"
    if len(dataset) == 0:
        raise DataError(f"{where} has no rows")
    missing = [column for column in ("id", "input") if column not in dataset.column_names]
    if missing:
        raise DataError(f"{where}: no {' or '.join(map(repr, missing))} column (columns: {dataset.column_names})")
    seen: dict[str, int] = {}
    for index, (example_id, task_input) in enumerate(zip(dataset["id"], dataset["input"])):
        if not isinstance(example_id, str) or not isinstance(task_input, str):
            raise DataError(f"{where}, row {index}: 'id' and 'input' must be strings, got {example_id!r:.80} "
                             f"and {task_input!r:.80}")
        if example_id in seen:
            raise DataError(f"{where}: id {example_id!r} appears in rows {seen[example_id]} and {index}; "
                             "prediction files need unique ids")
        seen[example_id] = index
    return dataset


def column(dataset, name: str) -> list:
    """A column's values, or None for each row when the data has no such column (a test split's outputs)."""
    return dataset[name] if name in dataset.column_names else [None] * len(dataset)
