"""Zero-shot evaluation of an LLM on one LongLaMP split, with or without retrieved profile items.

Every prompt is built (and checked against the budget) before any weights are loaded, so bad input fails in
seconds, not hours. Generation then appends each finished batch to a progress file; a restarted run skips
what is done. At the end each run directory holds:

    prompts.json           what the model saw, per example (for audit)
    predictions.json       {"task", "golds": [{"id", "output"}]}, the benchmark's format, in dataset order
    golds.json             the references in the same format, with each example's user (if the split has outputs)
    scores.json            the scorer's numbers, with the model and every setting that produced them
    progress.jsonl         the resume log (settings line, then one line per finished example, keyed by a hash
                           of its prompt token ids: a changed prompt is generated again, never mixed in)

With `compare_no_profile`, the same model also runs without profile into `<output_dir>/no_profile/`, and
`comparison.json` puts both score sets side by side.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from evaluation.backends import BACKENDS, backend_class, get_backend, resolve_backend
from evaluation.backends import check_options as check_backend_options
from evaluation.generation import GenerationSettings, ModelSource, plan_batches, resolve_model, strip_reasoning
from evaluation import per_sample
from evaluation.metrics import score_with_samples
from evaluation.predictions import PredictionStore, write_predictions
from evaluation.task_names import canonical_task_name
from longlamp_cli import DEFAULT_RETRIEVER_MODEL, check_folder, json_object, warn_ignored_profile_flags
from longlamp_prompts import PromptBudgetError, PromptBuilder, prompt_budget
from longlamp_runs import RunLock, write_json_atomic
from longlamp_tasks import Task, parse_config_name, scorer_task_name
from retrieval import Retriever, get_retriever, top_k_items

logger = logging.getLogger(__name__)

DEFAULT_RETRIEVER, DEFAULT_NUM_RETRIEVED = "bm25", 4


def _option(help: str, group: str, default=None, **argparse_options):
    return field(default=default, metadata={"help": help, "group": group, **argparse_options})


@dataclass(frozen=True)
class ZeroShotOptions:
    """Everything one evaluation needs. `evaluation/evaluate_llm.py` builds its flags from these fields (the
    shared concepts through longlamp_cli.FLAGS), so the two cannot drift apart."""

    validation_data: str = _option("a LongLaMP config name (e.g. product_review_user) or a local file/folder of "
                                   "rows", "data", required=True)
    model_name: str = _option("", "model", required=True)
    output_dir: str = _option("where predictions, prompts and scores go", "output", required=True)
    task: str | None = _option("config, task or scorer task name (LongLaMP_product_review_user); needed when "
                               "--validation_data is a file or folder, unless it is ranked data whose ids name it",
                               "data")
    split: str = _option("", "data", default="validation")
    data_dir: str | None = _option("", "data")
    cache_dir: str | None = _option("", "data")
    max_eval_examples: int | None = _option("", "data")
    use_profile: bool = _option("", "personalization", default=False)
    retriever: str | None = _option("bm25 (default), bm25_reference, contriever, recency, random; with --is_ranked "
                                    "read from the data", "personalization")
    num_retrieved: int | None = _option(f"profile items per prompt (default: {DEFAULT_NUM_RETRIEVED})",
                                        "personalization")
    is_ranked: bool = _option("", "personalization", default=False)
    retriever_model: str = _option("", "personalization", default=DEFAULT_RETRIEVER_MODEL)
    embedding_cache_dir: str | None = _option("", "personalization")
    compare_no_profile: bool = _option("also run without profile (into OUTPUT_DIR/no_profile) and compare the "
                                       "scores", "personalization", default=False)
    base_model: str | None = _option("base model of a PEFT adapter, instead of the one its config names", "model")
    trust_remote_code: bool = _option("run the model repository's own Python code (off: only trusted models)",
                                      "model", default=False)
    backend: str = _option("auto: vLLM when installed with a GPU and the model and decoding suit it, else "
                           "transformers", "model", default="auto", choices=("auto", *BACKENDS))
    batch_size: int | None = _option("examples per batch (default: the backend's, 8 transformers, 256 vLLM)",
                                     "model")
    dtype: str = _option("auto: bfloat16 on a GPU that supports it, float32 on CPU", "model", default="auto")
    device_map: str | None = _option("transformers device map (default: auto with a GPU, else CPU)", "model")
    tensor_parallel_size: int | None = _option("vLLM: GPUs to split the model over (default: 1)", "vllm")
    gpu_memory_utilization: float | None = _option("vLLM: share of GPU memory it may take (default: 0.9)", "vllm")
    enforce_eager: bool | None = _option("vLLM: no CUDA graphs (less memory, slower)", "vllm")
    max_num_seqs: int | None = _option("vLLM: sequences decoded at once (default: vLLM's)", "vllm")
    max_prompt_length: int | None = _option("", "prompt")
    use_chat_template: bool | None = _option("", "prompt")
    chat_template_kwargs: str | None = _option("JSON object passed to the chat template, e.g. "
                                               '{"enable_thinking": false}', "prompt")
    keep_reasoning: bool = _option("keep <think>...</think> blocks in the predictions (removed by default)",
                                   "generation", default=False)
    max_new_tokens: int = _option("", "generation", default=512)
    do_sample: bool = _option("sample instead of greedy decoding", "generation", default=False)
    temperature: float = _option("with --do_sample", "generation", default=1.0)
    top_p: float = _option("with --do_sample (1.0: no cut)", "generation", default=1.0)
    num_beams: int = _option("beam search when > 1", "generation", default=1)
    seed: int = _option("sampling seed", "generation", default=0)

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                                  temperature=self.temperature, top_p=self.top_p, num_beams=self.num_beams,
                                  seed=self.seed)

    def template_kwargs(self) -> dict:
        """--chat_template_kwargs as a dict (an error naming the flag when it is not a JSON object)."""
        return json_object("--chat_template_kwargs", self.chat_template_kwargs)

    def backend_options(self) -> dict:
        """The backend options given (the others keep the backend's defaults; one it does not take is refused)."""
        given = {"dtype": self.dtype, "trust_remote_code": self.trust_remote_code}
        for name in ("device_map", "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs"):
            if getattr(self, name) is not None:
                given[name] = getattr(self, name)
        return given


@dataclass
class PreparedRun:
    """One run's prompts and progress, ready for generation (one per profile / no-profile variant)."""

    output_dir: Path
    settings: dict
    ids: list[str]
    token_ids: list[list[int]]
    keys: list[str]
    store: PredictionStore

    @property
    def done(self) -> bool:
        return all(key in self.store for key in self.keys)


def evaluate(options: ZeroShotOptions) -> list[dict]:
    """Run the evaluation(s) the options ask for; returns each run's `scores.json` content."""
    check_options(options)
    return _evaluate(options, check_folder(options.output_dir, "--output_dir"))


def check_options(options: ZeroShotOptions) -> None:
    """Refuse settings that cannot work, before anything is read; warn about flags that do nothing."""
    if options.compare_no_profile and not options.use_profile:
        raise ValueError("--compare_no_profile compares against a run with --use_profile; add --use_profile")
    for name in ("max_eval_examples", "num_retrieved", "batch_size", "max_prompt_length", "max_num_seqs",
                 "tensor_parallel_size"):
        value = getattr(options, name)
        if value is not None and value < (0 if name == "num_retrieved" else 1):
            raise ValueError(f"--{name} must be at least {0 if name == 'num_retrieved' else 1}, got {value}")
    options.template_kwargs()
    options.generation()


def ignored_profile_flags(options: ZeroShotOptions, warn: bool = True) -> str | None:
    """The warning for retrieval flags given without --use_profile (the run is the non-personalised baseline)."""
    given = [f"--{name}" for name in ("retriever", "num_retrieved") if getattr(options, name) is not None]
    given += ["--is_ranked"] if options.is_ranked else []
    return warn_ignored_profile_flags(options.use_profile, given, warn)


def _evaluate(options: ZeroShotOptions, root: Path) -> list[dict]:
    """Everything that can refuse the run, then the run under the folder's lock."""
    ignored_profile_flags(options)
    data_config(options.validation_data)  # an unknown config name fails before anything is loaded
    rows = load_rows(options)
    task, setting, retriever_name, ranked_by = resolve_task_and_retriever(options, rows)
    retriever = make_retriever(options, retriever_name) if options.use_profile else None
    source = resolve_model(options.model_name, options.base_model, options.trust_remote_code,
                           options.template_kwargs())
    generation = options.generation()
    backend = resolve_backend(options.backend, generation, source)
    generator_class = backend_class(backend)
    check_backend_options(backend, {**options.backend_options(), **generator_class.run_options(0, 0)})
    budget = prompt_budget(options.max_prompt_length, source.context_length(), generation.max_new_tokens,
                           source.is_encoder_decoder)
    builder = PromptBuilder(task, source.tokenizer, budget, options.use_chat_template, options.template_kwargs())
    common = {
        "task": task.name, "setting": setting, "split": options.split,
        "model": options.model_name, "base_model": source.base if source.adapter else None,
        "model_fingerprint": model_fingerprint(source), "backend": backend,
        "dtype": generator_class.dtype_name(options.dtype), "max_prompt_length": builder.max_prompt_tokens,
        "chat_template": builder.use_chat_template, "chat_template_kwargs": options.template_kwargs() or None,
        "strip_reasoning": not options.keep_reasoning, **generation.record(),
        "data": data_source(options, rows), **({"ranked_by": ranked_by} if ranked_by else {}),
    }
    handed_over = [retriever]  # the callee takes the only reference, so that it can free the retriever's memory
    del retriever
    with RunLock(root, "evaluate_llm.py"):  # taken only now: a refused run leaves no folder behind
        return _generate_and_score(options, root, task, setting, rows, source, builder, common, handed_over)


def _generate_and_score(options: ZeroShotOptions, root: Path, task: Task, setting: str, rows, source: ModelSource,
                        builder: PromptBuilder, common: dict, handed_over: list) -> list[dict]:
    """Write the prompts, generate what is missing, then write predictions and scores, for each variant."""
    retriever = handed_over.pop()
    variants = [(root, retriever)] + ([(root / "no_profile", None)] if options.compare_no_profile else [])
    prepared = [prepare_run(task, rows, source, builder, directory, common, options, run_retriever)
                for directory, run_retriever in variants]
    del variants, retriever
    release_accelerator_memory()  # an on-the-fly dense retriever's encoder must not hold memory vLLM needs
    generation, backend = options.generation(), common["backend"]
    generator_class = backend_class(backend)
    ignored = ignored_profile_flags(options, warn=False)

    pending = [run for run in prepared if not run.done]
    if pending:
        logger.info("loading %s with the %s backend", options.model_name, backend)
        longest = max(len(ids) for run in pending for ids in run.token_ids)
        generator = get_backend(backend, source, generation, **options.backend_options(),
                                **generator_class.run_options(longest, generation.max_new_tokens))
        batch_size = options.batch_size or generator_class.default_batch_size
        for run in pending:
            generate_missing(run, generator, batch_size, generation.seed)
    references, users = column(rows, "output"), column(rows, task.user_column)
    results = [finish_run(run, scorer_task_name(task, setting), references, users, options, ignored)
               for run in prepared]
    if options.compare_no_profile:
        write_json_atomic(root / "comparison.json", compare(results[0], results[1]))
    from publishing.cards import write_run_card

    write_run_card(root)  # README.md: the run's card, pushed or not
    return results


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


def release_accelerator_memory() -> None:
    """Collect objects no longer referenced and hand PyTorch's cached GPU memory back to the device."""
    gc.collect()
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def load_rows(options: ZeroShotOptions):
    """The split as a `datasets.Dataset` (its first `max_eval_examples` rows), checked for what generation needs.

    Rows stay in Arrow and are read one at a time: temporal profiles hold thousands of items.
    """
    import longlamp

    task = config_name(options.task) if options.task is not None else None
    try:
        dataset = longlamp.load_split(options.validation_data, options.split, task=task,
                                      data_dir=options.data_dir, cache_dir=options.cache_dir)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    where = f"{options.validation_data} ({options.split})"
    if options.max_eval_examples is not None:
        dataset = dataset.select(range(min(options.max_eval_examples, len(dataset))))
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


def data_source(options: ZeroShotOptions, rows) -> dict:
    """Where the rows came from, for the record: the data as given, its folder, and datasets' fingerprint of
    the loaded files. A resumed run on other data keeps only the examples whose prompts are unchanged."""
    data_dir = str(Path(options.data_dir).expanduser().resolve()) if options.data_dir else None
    path = Path(options.validation_data).expanduser()
    return {"data": str(path.resolve()) if path.exists() else options.validation_data, "data_dir": data_dir,
            "fingerprint": getattr(rows, "_fingerprint", None)}


def folder_fingerprint(folder: Path) -> str:
    """sha256 over every file's relative path and content: a checkpoint saved again to the same path differs."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def address_fingerprint(address: str) -> str | None:
    """A local folder's content hash, or a Hub model's resolved commit (None when it cannot be told)."""
    if Path(address).expanduser().is_dir():
        return folder_fingerprint(Path(address).expanduser())
    from transformers.utils.hub import cached_file, extract_commit_hash

    try:
        return extract_commit_hash(cached_file(address, "config.json"), None)
    except OSError:
        return None


def model_fingerprint(source: ModelSource) -> dict:
    """What the weights are: the base model's fingerprint, and the adapter's."""
    logger.info("fingerprinting the weights of %s", source.address)
    fingerprint = {"base": address_fingerprint(source.base)}
    if source.adapter:
        fingerprint["adapter"] = address_fingerprint(source.adapter)
    return fingerprint


def prompt_key(token_ids: Sequence[int], seed: int | None) -> str:
    """What one example's generation depends on beyond the run's settings: its prompt ids (and its seed)."""
    text = json.dumps([list(token_ids), seed], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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
    num_retrieved = options.num_retrieved if options.num_retrieved is not None else DEFAULT_NUM_RETRIEVED
    if retriever is not None:
        settings.update(retriever=retriever.signature, num_retrieved=num_retrieved, is_ranked=options.is_ranked)
    records = build_prompts(task, rows, builder, retriever, num_retrieved, options.is_ranked)
    token_ids = [source.encode(r["prompt"], builder.use_chat_template) for r in records]
    seed = options.seed if options.do_sample else None
    keys = [prompt_key(ids, None if seed is None else seed + index) for index, ids in enumerate(token_ids)]
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / "prompts.json", records)
    store = PredictionStore(directory / "progress.jsonl", settings, keys)
    if len(store):
        logger.info("%s: resuming, %d of %d examples already done", directory, len(store), len(records))
    return PreparedRun(directory, settings, [r["id"] for r in records], token_ids, keys, store)


def generate_missing(run: PreparedRun, generator, batch_size: int, seed: int) -> None:
    """Generate every example not yet in the store, batch by batch, saving each batch as it finishes.

    The batch plan depends only on the prompts and `batch_size`, and a batch with any missing example is
    generated whole, so a resumed run computes exactly what an uninterrupted one would have.
    """
    keys = run.keys
    done = sum(key in run.store for key in keys)
    with tqdm(total=len(keys), initial=done, desc=f"generating ({run.output_dir})", unit="ex") as bar:
        for batch in plan_batches([len(t) for t in run.token_ids], batch_size):
            missing = [i for i in batch if keys[i] not in run.store]
            if not missing:
                continue
            outputs = generator.generations([run.token_ids[i] for i in batch], [seed + i for i in batch])
            run.store.add([(keys[i], run.ids[i], output) for i, output in zip(batch, outputs)
                           if keys[i] not in run.store])
            bar.update(len(missing))


def length_summary(records: Sequence[dict], max_new_tokens: int) -> dict:
    """The length distribution of the generations in tokens, and how many ran into max_new_tokens."""
    lengths = sorted(record["tokens"] for record in records)
    deciles = statistics.quantiles(lengths, n=10, method="inclusive") if len(lengths) > 1 else lengths * 9
    return {"min": lengths[0], "median": statistics.median(lengths), "mean": statistics.fmean(lengths),
            "p90": deciles[8], "max": lengths[-1], "max_new_tokens": max_new_tokens,
            "hit_max_new_tokens": sum(record["hit_limit"] for record in records)}


def finish_run(run: PreparedRun, task_name: str, references: Sequence, users: Sequence, options: ZeroShotOptions,
               ignored: str | None = None) -> dict:
    """Write the predictions file, then the golds and scores when every example has a reference output."""
    records = [run.store.records[key] for key in run.keys]
    predictions = [r["output"] if options.keep_reasoning else strip_reasoning(r["output"]) for r in records]
    write_predictions(run.output_dir / "predictions.json", task_name, run.ids, dict(zip(run.ids, predictions)))
    empty = sum(not p.strip() for p in predictions)
    if empty:
        logger.warning("%s: %d of %d predictions are empty (the model produced no text); they are kept and "
                       "score 0", run.output_dir, empty, len(predictions))
    summary = {"task": task_name, "examples": len(run.ids), "empty_predictions": empty,
               "generation_lengths": length_summary(records, options.max_new_tokens),
               "personalised": run.settings["use_profile"], "settings": run.settings, "scores": None}
    if ignored:
        summary["ignored_flags"] = ignored
    missing = sum(not (isinstance(r, str) and r.strip()) for r in references)
    if missing:
        summary["not_scored"] = (f"{missing} of {len(references)} examples of split {options.split!r} have no "
                                 "reference output; predictions were written, scoring was skipped")
        logger.warning("%s: %s", run.output_dir, summary["not_scored"])
    else:
        users = users if all(isinstance(u, str) for u in users) else None
        write_predictions(run.output_dir / "golds.json", task_name, run.ids, dict(zip(run.ids, references)),
                          users=dict(zip(run.ids, users)) if users else None)
        summary["scores"], samples = score_with_samples(predictions, references, user_ids=users, progress=True)
        per_sample.write(run.output_dir / per_sample.FILE_NAME, per_sample.rows(run.ids, predictions, samples, users))
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
