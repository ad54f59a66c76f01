"""Zero-shot evaluation of an LLM on one LongLaMP split, with or without retrieved profile items.

Every prompt is built (and checked against the budget) before any weights are loaded, so bad input fails in
seconds, not hours. Generation then appends each finished batch to a progress file; a restarted run skips
what is done. At the end each run directory holds:

    prompts.json           what the model saw, per example (for audit)
    predictions.json       {"task", "golds": [{"id", "output"}]}, the benchmark's format, in dataset order
    golds.json             the references in the same format, with each example's user (if the split has outputs)
    scores.json            the scorer's numbers, with the model and every setting that produced them
    progress.jsonl         the resume log (settings line, then one line per finished example)

With `compare_no_profile`, the same model also runs without profile into `<output_dir>/no_profile/`, and
`comparison.json` puts both score sets side by side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from evaluation.files import write_json_atomic
from evaluation.generation import (
    GenerationSettings,
    ModelSource,
    make_generator,
    plan_batches,
    resolve_backend,
    resolve_model,
    torch_dtype,
)
from evaluation.metrics import score
from evaluation.predictions import PredictionStore, write_predictions
from longlamp_prompts import PromptBudgetError, PromptBuilder
from longlamp_tasks import Task, parse_config_name, scorer_task_name
from retrieval import Retriever, get_retriever, top_k_items

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = {"transformers": 8, "vllm": 256}


@dataclass(frozen=True)
class ZeroShotOptions:
    """Everything one evaluation needs; the command line fills it field by field."""

    validation_data: str
    model_addr: str
    output_dir: str
    task: str | None = None
    split: str = "validation"
    data_dir: str | None = None
    cache_dir: str | None = None
    limit: int | None = None
    use_profile: bool = False
    retriever: str = "bm25"
    num_retrieved: int = 4
    is_ranked: bool = False
    compare_no_profile: bool = False
    base_model: str | None = None
    max_prompt_tokens: int | None = None
    use_chat_template: bool | None = None
    backend: str = "auto"
    batch_size: int | None = None
    dtype: str = "auto"
    device_map: str | None = None
    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_beams: int = 1
    seed: int = 0

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                                  temperature=self.temperature, top_p=self.top_p, num_beams=self.num_beams,
                                  seed=self.seed)


@dataclass
class PreparedRun:
    """One run's prompts and progress, ready for generation (one per profile / no-profile variant)."""

    output_dir: Path
    settings: dict
    ids: list[str]
    token_ids: list[list[int]]
    store: PredictionStore

    @property
    def done(self) -> bool:
        return all(example_id in self.store for example_id in self.ids)


def evaluate(options: ZeroShotOptions) -> list[dict]:
    """Run the evaluation(s) the options ask for; returns each run's `scores.json` content."""
    if options.compare_no_profile and not options.use_profile:
        raise ValueError("--compare_no_profile compares against a run with --use_profile; add --use_profile")
    task, setting = resolve_task(options.task, options.validation_data)
    retriever = get_retriever(options.retriever) if options.use_profile else None
    rows = load_rows(options)
    source = resolve_model(options.model_addr, options.base_model)
    generation = options.generation()
    backend = resolve_backend(options.backend, generation, source)
    builder = PromptBuilder(task, source.tokenizer, prompt_budget(source, options), options.use_chat_template)
    common = {
        "task": task.name, "setting": setting, "data": options.validation_data, "split": options.split,
        "model": options.model_addr, "base_model": source.base if source.adapter else None, "backend": backend,
        "dtype": dtype_name(backend, options.dtype), "max_prompt_tokens": builder.max_prompt_tokens,
        "chat_template": builder.use_chat_template, **generation.record(),
    }
    root = Path(options.output_dir)
    variants = [(root, retriever)] + ([(root / "no_profile", None)] if options.compare_no_profile else [])
    prepared = [prepare_run(task, rows, source, builder, directory, common, options, run_retriever)
                for directory, run_retriever in variants]

    pending = [run for run in prepared if not run.done]
    if pending:
        logger.info("loading %s with the %s backend", options.model_addr, backend)
        generator = make_generator(backend, source, generation, dtype=options.dtype, device_map=options.device_map,
                                   max_length=builder.max_prompt_tokens + generation.max_new_tokens)
        batch_size = options.batch_size or DEFAULT_BATCH_SIZE[backend]
        for run in pending:
            generate_missing(run, generator, batch_size, generation.seed)
    references, users = column(rows, "output"), column(rows, task.user_column)
    results = [finish_run(run, scorer_task_name(task, setting), references, users, options.split)
               for run in prepared]
    if options.compare_no_profile:
        write_json_atomic(root / "comparison.json", compare(results[0], results[1]))
    from publishing.cards import write_run_card

    write_run_card(root)  # README.md: the run's card, pushed or not
    return results


def resolve_task(task: str | None, data: str) -> tuple[Task, str]:
    """The task and setting from `--task`, or from the data when it is a config name (they must agree)."""
    from_data = None
    if not Path(data).expanduser().exists():
        try:
            from_data = parse_config_name(data)
        except ValueError as error:
            raise ValueError(f"--validation_data {data!r} is no file or folder, and {error}") from None
    if task is None:
        if from_data is None:
            raise ValueError(f"--task is required when --validation_data ({data!r}) is a file or folder, "
                             "e.g. --task product_review_user")
        return from_data
    chosen = parse_config_name(task)
    if from_data is not None and from_data != chosen:
        raise ValueError(f"--task {task!r} contradicts --validation_data {data!r}; give one of them")
    return chosen


def load_rows(options: ZeroShotOptions):
    """The split as a `datasets.Dataset` (its first `limit` rows), checked for what generation needs.

    Rows stay in Arrow and are read one at a time: temporal profiles hold thousands of items.
    """
    import longlamp

    dataset = longlamp.load_split(options.validation_data, options.split, task=options.task,
                                  data_dir=options.data_dir, cache_dir=options.cache_dir)
    where = f"{options.validation_data} ({options.split})"
    if options.limit is not None:
        if options.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {options.limit}")
        dataset = dataset.select(range(min(options.limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError(f"{where} has no rows")
    missing = [column for column in ("id", "input") if column not in dataset.column_names]
    if missing:
        raise ValueError(f"{where}: no {' or '.join(map(repr, missing))} column (columns: {dataset.column_names})")
    seen: dict[str, int] = {}
    for index, (example_id, task_input) in enumerate(zip(dataset["id"], dataset["input"])):
        if not isinstance(example_id, str) or not isinstance(task_input, str):
            raise ValueError(f"{where}, row {index}: 'id' and 'input' must be strings, got {example_id!r:.80} "
                             f"and {task_input!r:.80}")
        if example_id in seen:
            raise ValueError(f"{where}: id {example_id!r} appears in rows {seen[example_id]} and {index}; "
                             "prediction files need unique ids")
        seen[example_id] = index
    return dataset


def column(dataset, name: str) -> list:
    """A column's values, or None for each row when the data has no such column (a test split's outputs)."""
    return dataset[name] if name in dataset.column_names else [None] * len(dataset)


def prompt_budget(source: ModelSource, options: ZeroShotOptions) -> int:
    """Prompt tokens allowed: `--max_prompt_tokens`, else the context left after the generated tokens."""
    if options.max_prompt_tokens is not None:
        budget = options.max_prompt_tokens
    else:
        context = source.context_length()
        if context is None:
            raise ValueError(f"{options.model_addr} declares no context length; give --max_prompt_tokens")
        # A decoder's generated tokens share its context with the prompt; an encoder's input has it alone.
        budget = context if source.is_encoder_decoder else context - options.max_new_tokens
    if budget < 1:
        raise ValueError(f"no room for a prompt: the budget is {budget} tokens (context {source.context_length()}, "
                         f"--max_new_tokens {options.max_new_tokens}); lower --max_new_tokens")
    return budget


def dtype_name(backend: str, dtype: str) -> str:
    """The dtype actually used, for the record (vLLM resolves `auto` itself, from the model's config)."""
    if backend == "vllm":
        return dtype
    return str(torch_dtype(dtype)).removeprefix("torch.")


def build_prompts(task: Task, rows: Sequence[dict], builder: PromptBuilder, retriever: Retriever | None,
                  num_retrieved: int = 0, is_ranked: bool = False) -> list[dict]:
    """One audit record per row: id, the prompt text, its token count and how many profile items it holds.

    Without a retriever the prompt is the task input alone (the non-personalised baseline).
    """
    records = []
    for index, row in enumerate(tqdm(rows, desc="building prompts", unit="ex", total=len(rows))):
        items = [] if retriever is None else top_k_items(task, row, num_retrieved, retriever, is_ranked)
        try:
            prompt = builder(items, row["input"])
        except PromptBudgetError as error:
            raise PromptBudgetError(f"example {row['id']!r} (row {index}): {error}") from None
        records.append({"id": row["id"], "prompt": prompt, "prompt_tokens": builder.count(prompt),
                        "profile_items": len(items)})
    return records


def prepare_run(task: Task, rows: Sequence[dict], source: ModelSource, builder: PromptBuilder, directory: Path,
                common: dict, options: ZeroShotOptions, retriever: Retriever | None) -> PreparedRun:
    """Build and save the prompts of one run (no retriever: no profile), and open or resume its progress file."""
    settings = {**common, "use_profile": retriever is not None}
    if retriever is not None:
        settings.update(retriever=retriever.signature, num_retrieved=options.num_retrieved,
                        is_ranked=options.is_ranked)
    records = build_prompts(task, rows, builder, retriever, options.num_retrieved, options.is_ranked)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / "prompts.json", records)
    store = PredictionStore(directory / "progress.jsonl", settings)
    if len(store):
        logger.info("%s: resuming, %d of %d examples already done", directory, len(store), len(records))
    token_ids = [source.encode(r["prompt"], builder.use_chat_template) for r in records]
    return PreparedRun(directory, settings, [r["id"] for r in records], token_ids, store)


def generate_missing(run: PreparedRun, generator, batch_size: int, seed: int) -> None:
    """Generate every example not yet in the store, batch by batch, saving each batch as it finishes.

    The batch plan depends only on the prompts and `batch_size`, and a batch with any missing example is
    generated whole, so a resumed run computes exactly what an uninterrupted one would have.
    """
    ids = run.ids
    done = sum(example_id in run.store for example_id in ids)
    with tqdm(total=len(ids), initial=done, desc=f"generating ({run.output_dir})", unit="ex") as bar:
        for batch in plan_batches([len(t) for t in run.token_ids], batch_size):
            missing = [i for i in batch if ids[i] not in run.store]
            if not missing:
                continue
            outputs = generator.generate([run.token_ids[i] for i in batch], [seed + i for i in batch])
            run.store.add([(ids[i], output) for i, output in zip(batch, outputs) if ids[i] not in run.store])
            bar.update(len(missing))


def finish_run(run: PreparedRun, task_name: str, references: Sequence, users: Sequence, split: str) -> dict:
    """Write the predictions file, then the golds and scores when every example has a reference output."""
    write_predictions(run.output_dir / "predictions.json", task_name, run.ids, run.store.outputs)
    predictions = [run.store.outputs[example_id] for example_id in run.ids]
    empty = sum(not p.strip() for p in predictions)
    if empty:
        logger.warning("%s: %d of %d predictions are empty (the model produced no text); they are kept and "
                       "score 0", run.output_dir, empty, len(predictions))
    summary = {"task": task_name, "examples": len(run.ids), "empty_predictions": empty,
               "settings": run.settings, "scores": None}
    missing = sum(not (isinstance(r, str) and r.strip()) for r in references)
    if missing:
        summary["not_scored"] = (f"{missing} of {len(references)} examples of split {split!r} have no reference "
                                 "output; predictions were written, scoring was skipped")
        logger.warning("%s: %s", run.output_dir, summary["not_scored"])
    else:
        users = users if all(isinstance(u, str) for u in users) else None
        write_predictions(run.output_dir / "golds.json", task_name, run.ids, dict(zip(run.ids, references)),
                          users=dict(zip(run.ids, users)) if users else None)
        summary["scores"] = score(predictions, references, user_ids=users, progress=True)
    write_json_atomic(run.output_dir / "scores.json", summary)
    return summary


def compare(with_profile: dict, without_profile: dict) -> dict:
    """Both runs' headline scores side by side, with the gain from the profile."""
    scored = with_profile["scores"] and without_profile["scores"]
    ours, baseline = ((with_profile["scores"]["metrics"], without_profile["scores"]["metrics"]) if scored
                      else (None, None))
    comparison = {"task": with_profile["task"], "with_profile": ours, "no_profile": baseline}
    if scored:
        comparison["gain"] = {metric: ours[metric] - baseline[metric] for metric in ours}
    return comparison
