"""One zero-shot evaluation from its options: everything that can refuse the run first, then prompts, generation
and scores for each variant (with profile; without, with `compare_no_profile`) under the folder's lock."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import generation
from evaluation.zero_shot.data import (
    column,
    data_config,
    make_retriever,
    resolve_task_and_retriever,
    rows_to_predict,
)
from evaluation.zero_shot.options import (
    ZeroShotOptions,
    api_mode,
    check_options,
    ignored_profile_flags,
    is_served,
)
from evaluation.zero_shot.prompts import prepare_prompts
from evaluation.zero_shot.results import SEEDS_FILE, compare, finish_run, seed_summary
from generation import accepted_options, backend_class
from generation.http_api import public_url
from generation.preparation import PreparedModel, prepare_model
from generation.progress import collect_other_processes, generate_missing, prepare_run, share
from generation.source import ModelSource
from longlamp_cli import check_folder
from longlamp_io import RunLock, write_json_atomic
from longlamp_prompts import PromptBuilder
from longlamp_runs import (
    COMPARISON_FILE,
    NO_PROFILE_DIR,
    DecodingSettings,
    PromptSettings,
    RetrievalSettings,
    RunRecord,
    TaskSettings,
    data_source,
)
from longlamp_tasks import Task

logger = logging.getLogger(__name__)


def evaluate(options: ZeroShotOptions) -> list[dict]:
    """Run the evaluation(s) the options ask for; returns each run's `scores.json` content."""
    check_options(options)
    return _evaluate(options, check_folder(options.output_dir, "--output_dir"))


def _evaluate(options: ZeroShotOptions, root: Path) -> list[dict]:
    """Everything that can refuse the run, then the run under the folder's lock."""
    prepared = prepare(options)
    if share()[0] != 0:  # another process of an `accelerate launch`: the main one holds the folder's lock
        return _generate_and_score(options, root, prepared)
    with RunLock(root, "evaluate_llm.py"):  # taken only now: a refused run leaves no folder behind
        return _generate_and_score(options, root, prepared)


@dataclass
class Prepared:
    """A zero-shot run checked and resolved before any prompt is built: its rows, task, model (prepared for
    generation, without weights), prompt rules, retriever, and the record of each variant (with profile, then
    without with --compare_no_profile), for the first seed."""

    rows: object
    task: Task
    model: PreparedModel
    builder: PromptBuilder
    retriever: object
    records: list[RunRecord]


def prepare(options: ZeroShotOptions) -> Prepared:
    """Everything that can refuse the run, then what it will record: the same records for the same options."""
    ignored_profile_flags(options)
    data_config(options.validation_data)  # an unknown config name fails before anything is loaded
    rows = rows_to_predict(options)
    task, setting, retriever_name, ranked_by = resolve_task_and_retriever(options, rows)
    retriever = make_retriever(options, retriever_name) if options.use_profile else None
    generation = options.generation()
    model = prepare_generation(options)
    builder = model.prompt_builder(task, options.use_chat_template)
    common = RunRecord(
        "zero_shot", TaskSettings(f"{task.name}_{setting}", options.split),
        data_source(options.validation_data, options.data_dir, options.revision, rows, options.max_eval_examples,
                    ranked_by),
        model.model_settings, RetrievalSettings(),
        PromptSettings(builder.max_prompt_tokens, builder.use_chat_template, options.template_kwargs() or None),
        DecodingSettings(**generation.record(), strip_reasoning=not options.keep_reasoning))
    records = []
    if retriever is not None:
        records.append(dataclasses.replace(common, retrieval=RetrievalSettings(
            True, retriever_name, options.retriever_model, ranked_by if options.is_ranked else retriever.signature,
            options.num_retrieved, options.is_ranked)))
    if retriever is None or options.compare_no_profile:
        records.append(common)
    return Prepared(rows, task, model, builder, retriever, records)


def prepare_generation(options: ZeroShotOptions, max_prompt_length: int | None = None,
                       whole_context: bool = False) -> PreparedModel:
    """The options' model prepared for generation (`generation.preparation`): backend, its options checked, the
    prompt budget (`max_prompt_length`, else --max_prompt_length, else the default rule or `whole_context`), and
    the model's identity record."""
    budget = options.max_prompt_length if max_prompt_length is None else max_prompt_length
    return prepare_model(options.model_name, options.generation(), backend=options.backend,
                         options=options.backend_options(is_served(options)), tokenizer=options.tokenizer,
                         api_mode=api_mode(options), source=model_source(options), max_prompt_length=budget,
                         whole_context=whole_context)


def model_source(options: ZeroShotOptions) -> ModelSource:
    """The model the options name, without its weights: a served model by its name (and --tokenizer), else a
    folder or Hub id (a PEFT adapter on its base)."""
    return generation.model_source(options.model_name, served=is_served(options), tokenizer=options.tokenizer,
                                   base_model=options.base_model, trust_remote_code=options.trust_remote_code,
                                   chat_template_kwargs=options.template_kwargs())


def _generate_and_score(options: ZeroShotOptions, root: Path, plan: Prepared) -> list[dict]:
    """Write the prompts, generate what is missing, then write predictions and scores, for each variant and seed.

    The prompts of a variant are built once and shared by its seeds; the model is loaded once for all runs."""
    retriever, plan.retriever = plan.retriever, None  # this frame holds the only reference: it can free it
    task, rows, source, builder = plan.task, plan.rows, plan.model.source, plan.builder
    folders = iter(run_folders(options, root))
    generation = options.generation()
    backend = plan.records[0].model.backend
    seeds, several = options.seed_list(), options.seeds is not None
    prepared = []
    for record in plan.records:
        run_retriever = retriever if record.retrieval.use_profile else None
        prompts, inputs = prepare_prompts(task, rows, source, builder, record, run_retriever,
                                          record.retrieval.num_retrieved or 0, options.is_ranked)
        for seed in seeds:
            run_record = (dataclasses.replace(record, generation=dataclasses.replace(record.generation, seed=seed))
                          if generation.do_sample else record)
            prepared.append(prepare_run(next(folders), run_record, prompts, inputs, seed, generation.do_sample))
    del retriever, run_retriever
    release_accelerator_memory()  # an on-the-fly dense retriever's encoder must not hold memory vLLM needs
    generator_class = backend_class(backend)
    ignored = ignored_profile_flags(options, warn=False)

    pending = [run for run in prepared if not run.done]
    rank, world = share()
    if pending:
        logger.info("loading %s with the %s backend", options.model_name, backend)
        longest = max(length for run in pending for length in run.lengths)
        device = {"device_map": f"cuda:{os.environ.get('LOCAL_RANK', rank)}"} if (
            world > 1 and "device_map" in accepted_options(backend) and options.device_map is None
            and cuda_available()) else {}
        generator = plan.model.load(longest, **device)
        batch_size = options.batch_size or generator_class.default_batch_size
        for run in pending:
            generate_missing(run, generator, batch_size, rank, world)
    if rank != 0:
        return []  # the main process merges the progress files and writes the results
    for run in prepared:
        collect_other_processes(run)
    references, users = column(rows, "output"), column(rows, task.user_column)
    endpoint = public_url(options.api_base) if options.api_base else None
    results = [finish_run(run, references, users, endpoint, ignored, options.from_training_record) for run in prepared]
    from publishing.cards import write_run_card

    by_seed = {seed: results[index::len(seeds)] for index, seed in enumerate(seeds)}  # [with profile, no profile]
    for seed, runs in by_seed.items():
        folder = seed_folder(root, seed, several)
        if options.compare_no_profile:
            write_json_atomic(folder / COMPARISON_FILE, compare(*runs, folder, folder / NO_PROFILE_DIR))
        write_run_card(folder)  # README.md: the run's card, pushed or not
    if several:
        write_json_atomic(root / SEEDS_FILE, seed_summary(by_seed))
    return results


def seed_folder(root: Path, seed: int, several: bool) -> Path:
    """Where the run of one seed goes: the output folder itself, or its seed<N>/ with --seeds."""
    return root / f"seed{seed}" if several else root


def run_folders(options: ZeroShotOptions, root: Path) -> list[Path]:
    """Each run's folder, in the order `evaluate` returns their results: with profile, then no_profile/ (with
    --compare_no_profile), each for every seed."""
    several = options.seeds is not None
    variants = [""] + ([NO_PROFILE_DIR] if options.compare_no_profile else [])
    return [seed_folder(root, seed, several) / variant for variant in variants for seed in options.seed_list()]


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def release_accelerator_memory() -> None:
    """Collect objects no longer referenced and hand PyTorch's cached GPU memory back to the device."""
    gc.collect()
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
