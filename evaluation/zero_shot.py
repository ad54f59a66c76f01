"""Zero-shot evaluation of an LLM on one LongLaMP split, with or without retrieved profile items.

Every prompt is built (and checked against the budget) before any weights are loaded, so bad input fails in
seconds, not hours. Generation then appends each finished batch (a served model: each answer) to a progress
file; a restarted run skips what is done. Under `accelerate launch` each process generates its share of the
batches into a progress file of its own, which the main process merges (`share`). At the end each run
directory holds:

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
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from evaluation import per_sample
from evaluation.backends import BACKENDS, backend_class, get_backend, resolve_backend
from evaluation.backends import check_options as check_backend_options
from evaluation.backends.http_api import check_request_settings, public_url, read_api_key
from evaluation.generation import GenerationSettings, ModelSource, plan_batches, resolve_model, strip_reasoning
from evaluation.metrics import score_with_samples
from evaluation.predictions import PredictionStore, read_progress, write_predictions
from evaluation.served_model import APPROXIMATION, served_model
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
    revision: str | None = _option("", "data")
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
    batch_size: int | None = _option("examples per batch (default: the backend's, 8 transformers, 256 vLLM, "
                                     "1024 openai)", "model")
    dtype: str = _option("auto: bfloat16 on a GPU that supports it, float32 on CPU", "model", default="auto")
    device_map: str | None = _option("transformers device map (default: auto with a GPU, else CPU)", "model")
    tensor_parallel_size: int | None = _option("vLLM: GPUs to split the model over (default: 1)", "vllm")
    gpu_memory_utilization: float | None = _option("vLLM: share of GPU memory it may take (default: 0.9)", "vllm")
    enforce_eager: bool | None = _option("vLLM: no CUDA graphs (less memory, slower)", "vllm")
    max_num_seqs: int | None = _option("vLLM: sequences decoded at once (default: vLLM's)", "vllm")
    api_base: str | None = _option("--backend openai: the server's OpenAI-compatible API, e.g. "
                                   "http://localhost:8000/v1 (--model_name is the model it serves)", "served")
    api_mode: str | None = _option("chat: the prompt as one user message, the server applies its chat template; "
                                   "completions: the prompt text as built here (default: chat)", "served",
                                   choices=("chat", "completions"))
    api_key_env: str | None = _option("environment variable holding the API key (default: OPENAI_API_KEY, "
                                      "none sent when unset); the key is never written or logged", "served")
    tokenizer: str | None = _option("tokenizer of the served model (Hub id or folder), to count the prompt budget "
                                    "exactly; default: an approximation of 4 characters per token", "served")
    max_concurrency: int | None = _option("requests in flight at most (default: 16)", "served")
    request_timeout: float | None = _option("seconds one request may take before it is retried (default: 600)",
                                            "served")
    max_retries: int | None = _option("tries after the first on 429, 5xx, timeouts and dropped connections, with "
                                      "exponential backoff and jitter or the server's Retry-After (default: 8)",
                                      "served")
    retry_backoff: float | None = _option("seconds before the first retry, doubled each time (default: 1)", "served")
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

    def backend_options(self, served: bool = False) -> dict:
        """The backend options given (the others keep the backend's defaults; one it does not take is refused).
        A served model has no dtype and runs no code here: those two are passed only when set."""
        given = {} if served else {"dtype": self.dtype, "trust_remote_code": self.trust_remote_code}
        if served and self.dtype != "auto":
            given["dtype"] = self.dtype
        for name in ("device_map", "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs",
                     *SERVED_OPTIONS):
            if getattr(self, name) is not None:
                given[name] = getattr(self, name)
        return given


SERVED_OPTIONS = ("api_base", "api_mode", "api_key_env", "max_concurrency", "request_timeout", "max_retries",
                  "retry_backoff")


@dataclass
class PreparedRun:
    """One run's prompts and progress, ready for generation (one per profile / no-profile variant)."""

    output_dir: Path
    settings: dict
    ids: list[str]
    inputs: list  # what the backend takes: token ids, or the prompt text (a served model)
    lengths: list[int]  # prompt tokens, as the builder counted them
    keys: list[str]
    store: PredictionStore  # this process's progress file
    elsewhere: dict = field(default_factory=dict)  # finished in other processes' progress files (see `share`)

    def finished(self, key: str) -> bool:
        return key in self.store or key in self.elsewhere

    @property
    def done(self) -> bool:
        return all(self.finished(key) for key in self.keys)


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
    check_served_options(options, is_served(options))


def is_served(options: ZeroShotOptions) -> bool:
    """Whether the backend asked for runs the model elsewhere (`auto` never chooses one)."""
    return options.backend != "auto" and backend_class(options.backend).served


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
    generation = options.generation()
    served = is_served(options)
    if served:
        source = served_model(options.model_name, options.tokenizer, options.trust_remote_code,
                              options.template_kwargs())
    else:
        source = resolve_model(options.model_name, options.base_model, options.trust_remote_code,
                               options.template_kwargs())
    backend = resolve_backend(options.backend, generation, source)
    generator_class = backend_class(backend)
    check_backend_options(backend, {**options.backend_options(served), **generator_class.run_options(0, 0)})
    reason = generator_class.unsupported(source, generation) if served else None
    if reason:
        raise ValueError(f"the {backend} backend {reason}")
    budget = prompt_budget(options.max_prompt_length, source.context_length(), generation.max_new_tokens,
                           source.is_encoder_decoder)
    builder = PromptBuilder(task, source.tokenizer, budget, options.use_chat_template, options.template_kwargs())
    common = {
        "task": task.name, "setting": setting, "split": options.split,
        "model": options.model_name, "base_model": source.base if source.adapter else None,
        "model_fingerprint": served_fingerprint(options) if served else model_fingerprint(source),
        "backend": backend, "dtype": generator_class.dtype_name(options.dtype),
        "max_prompt_length": builder.max_prompt_tokens,
        "chat_template": builder.use_chat_template, "chat_template_kwargs": options.template_kwargs() or None,
        "strip_reasoning": not options.keep_reasoning, **generation.record(),
        "data": data_source(options, rows), **({"ranked_by": ranked_by} if ranked_by else {}),
    }
    if served:  # what decides the prompts sent; not the URL or the concurrency, which may change on resume
        common.update(api_mode=api_mode(options), prompt_tokenizer=options.tokenizer or APPROXIMATION)
    handed_over = [retriever]  # the callee takes the only reference, so that it can free the retriever's memory
    del retriever
    if share()[0] != 0:  # another process of an `accelerate launch`: the main one holds the folder's lock
        return _generate_and_score(options, root, task, setting, rows, source, builder, common, handed_over)
    with RunLock(root, "evaluate_llm.py"):  # taken only now: a refused run leaves no folder behind
        return _generate_and_score(options, root, task, setting, rows, source, builder, common, handed_over)


def api_mode(options: ZeroShotOptions) -> str:
    return options.api_mode or "chat"


def check_served_options(options: ZeroShotOptions, served: bool) -> None:
    """--api_base and a served backend go together; chat mode always gets the server's template."""
    if not served:
        given = [f"--{name}" for name in (*SERVED_OPTIONS, "tokenizer") if getattr(options, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a served model; add "
                             "--backend openai")
        return
    if options.api_base is None:
        raise ValueError(f"--backend {options.backend} needs --api_base, e.g. http://localhost:8000/v1")
    check_request_settings(**{name: getattr(options, name) for name in SERVED_OPTIONS if name not in ("api_mode",
                                                                                                     "api_key_env")})
    read_api_key(options.api_key_env)  # a variable named but unset fails here, before any work
    if options.base_model:
        raise ValueError("--base_model is for a model loaded here; a served model is only named (--model_name)")
    if api_mode(options) == "chat" and options.use_chat_template is False:
        raise ValueError("--api_mode chat: the server wraps the message in its chat template; for prompts without "
                         "it use --api_mode completions --no-use_chat_template")
    if share()[1] > 1:
        raise ValueError("a served model takes the run's requests from one process (--max_concurrency); run it "
                         "without accelerate launch")


def served_fingerprint(options: ZeroShotOptions) -> dict:
    """What is known of a served model: its name, and the tokenizer the prompts were counted with."""
    return {"served": options.model_name,
            "tokenizer": address_fingerprint(options.tokenizer) if options.tokenizer else None}


def share() -> tuple[int, int]:
    """(rank, number of processes) under `accelerate launch` or torchrun (their RANK and WORLD_SIZE), else (0, 1).

    Each process generates every `world`-th batch of the one length-sorted plan (`plan_batches`), so its batches
    are the very batches of a one-process run and the merged predictions equal it; the main process merges."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is not below WORLD_SIZE {world}")
    return rank, world


def progress_path(directory: Path, rank: int) -> Path:
    """This process's progress file: the main one's is progress.jsonl, the others' progress.rank<N>.jsonl."""
    return directory / ("progress.jsonl" if rank == 0 else f"progress.rank{rank}.jsonl")


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
    rank, world = share()
    if pending:
        logger.info("loading %s with the %s backend", options.model_name, backend)
        longest = max(length for run in pending for length in run.lengths)
        device = {"device_map": f"cuda:{os.environ.get('LOCAL_RANK', rank)}"} if (
            world > 1 and backend == "transformers" and options.device_map is None and cuda_available()) else {}
        generator = get_backend(backend, source, generation, **{**options.backend_options(generator_class.served),
                                                                **device},
                                **generator_class.run_options(longest, generation.max_new_tokens))
        batch_size = options.batch_size or generator_class.default_batch_size
        for run in pending:
            generate_missing(run, generator, batch_size, generation.seed, rank, world)
    if rank != 0:
        return []  # the main process merges the progress files and writes the results
    for run in prepared:
        collect_other_processes(run)
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


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


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
                                      data_dir=options.data_dir, cache_dir=options.cache_dir,
                                      revision=options.revision)
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
    """Where the rows came from, for the record: the data as given, its folder, the Hub revision asked for, and
    datasets' fingerprint of the loaded files. A resumed run on other data keeps only the examples whose prompts are unchanged."""
    data_dir = str(Path(options.data_dir).expanduser().resolve()) if options.data_dir else None
    path = Path(options.validation_data).expanduser()
    return {"data": str(path.resolve()) if path.exists() else options.validation_data, "data_dir": data_dir,
            "revision": options.revision, "fingerprint": getattr(rows, "_fingerprint", None)}


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


def prompt_key(prompt: Sequence[int] | str, seed: int | None) -> str:
    """What one example's generation depends on beyond the run's settings: what the backend is sent (prompt ids,
    or a served model's prompt text) and its seed."""
    text = json.dumps([prompt if isinstance(prompt, str) else list(prompt), seed], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build_prompts(task: Task, rows: Sequence[dict], builder: PromptBuilder, retriever: Retriever | None,
                  num_retrieved: int = 0, is_ranked: bool = False, as_message: bool = False) -> list[dict]:
    """One audit record per row: id, the prompt text, its token count and how many profile items it holds.

    Without a retriever the prompt is the task input alone (the non-personalised baseline). `as_message`: the
    prompt is a chat endpoint's user message, before the template (the server applies it); it is counted with it.
    """
    records = []
    for index, row in enumerate(tqdm(rows, desc="building prompts", unit="ex", total=len(rows))):
        items = [] if retriever is None else top_k_items(task, row, num_retrieved, retriever, is_ranked)
        try:
            message = builder.fit(items, row["input"])
        except PromptBudgetError as error:
            raise PromptBudgetError(f"example {row['id']!r} (row {index}): {error}") from None
        prompt = builder.format(message)
        records.append({"id": row["id"], "prompt": message if as_message else prompt,
                        "prompt_tokens": builder.count(prompt), "profile_items": len(items)})
    return records


def prepare_run(task: Task, rows: Sequence[dict], source: ModelSource, builder: PromptBuilder, directory: Path,
                common: dict, options: ZeroShotOptions, retriever: Retriever | None) -> PreparedRun:
    """Build and save the prompts of one run (no retriever: no profile), and open or resume its progress file."""
    settings = {**common, "use_profile": retriever is not None}
    num_retrieved = options.num_retrieved if options.num_retrieved is not None else DEFAULT_NUM_RETRIEVED
    if retriever is not None:
        settings.update(retriever=retriever.signature, num_retrieved=num_retrieved, is_ranked=options.is_ranked)
    generator_class = backend_class(common["backend"])
    as_message = generator_class.served and settings.get("api_mode") == "chat"
    records = build_prompts(task, rows, builder, retriever, num_retrieved, options.is_ranked, as_message)
    if generator_class.prompt_form == "text":
        inputs = [r["prompt"] for r in records]
    else:
        inputs = [source.encode(r["prompt"], builder.use_chat_template) for r in records]
    seed = options.seed if options.do_sample else None
    keys = [prompt_key(prompt, None if seed is None else seed + index) for index, prompt in enumerate(inputs)]
    directory.mkdir(parents=True, exist_ok=True)
    rank = share()[0]
    if rank == 0:
        write_json_atomic(directory / "prompts.json", records)
    store = PredictionStore(progress_path(directory, rank), settings, keys)
    elsewhere = {}
    for path in sorted(directory.glob("progress*.jsonl")):
        if path != store.path:
            elsewhere.update(read_progress(path, settings, keys))
    done = len(set(store.records) | set(elsewhere))
    if done:
        logger.info("%s: resuming, %d of %d examples already done", directory, done, len(records))
    return PreparedRun(directory, settings, [r["id"] for r in records], inputs, [r["prompt_tokens"] for r in records],
                       keys, store, elsewhere)


def generate_missing(run: PreparedRun, generator, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
    """Generate every example of this process's share not yet done, saving each answer as it comes in.

    The batch plan depends only on the prompts and `batch_size`, and process `rank` takes every `world`-th batch
    of it. A batch with any missing example is generated whole (a padded batch's outputs can depend on its
    neighbours), so a resumed run computes exactly what an uninterrupted one would have; a backend whose
    requests are independent (a server) is sent only the missing ones.
    """
    keys = run.keys
    batches = plan_batches(run.lengths, batch_size)[rank::world]
    mine = [i for batch in batches for i in batch]
    done = sum(run.finished(keys[i]) for i in mine)
    desc = f"generating ({run.output_dir}{f', process {rank} of {world}' if world > 1 else ''})"
    with tqdm(total=len(mine), initial=done, desc=desc, unit="ex") as bar:
        for batch in batches:
            missing = [i for i in batch if not run.finished(keys[i])]
            if not missing:
                continue
            sent = missing if generator.independent_requests else batch
            for finished in generator.completed([run.inputs[i] for i in sent], [seed + i for i in sent]):
                new = [(keys[sent[j]], run.ids[sent[j]], output) for j, output in finished
                       if not run.finished(keys[sent[j]])]
                run.store.add(new)
                bar.update(len(new))


def collect_other_processes(run: PreparedRun, poll_seconds: float = 1.0) -> None:
    """Main process: wait until the other processes' progress files hold the rest, copy it into progress.jsonl,
    then delete them (a run killed in between merges them again when resumed)."""
    others = [path for path in sorted(run.output_dir.glob("progress*.jsonl")) if path != run.store.path]
    missing = [key for key in run.keys if key not in run.store]
    announced = False
    while missing:
        found = {}
        for path in others:
            found.update(read_progress(path, run.settings, missing))
        run.store.add_records([found[key] for key in missing if key in found])
        missing = [key for key in missing if key not in found]
        if missing:
            if not announced:
                logger.info("%s: waiting for %d examples from the other processes", run.output_dir, len(missing))
                announced = True
            time.sleep(poll_seconds)
            others = [path for path in sorted(run.output_dir.glob("progress*.jsonl")) if path != run.store.path]
    for path in others:
        path.unlink()


def length_summary(records: Sequence[dict], max_new_tokens: int) -> dict:
    """The length distribution of the generations in tokens, and how many ran into max_new_tokens."""
    lengths = sorted(record["tokens"] for record in records)
    deciles = statistics.quantiles(lengths, n=10, method="inclusive") if len(lengths) > 1 else lengths * 9
    return {"min": lengths[0], "median": statistics.median(lengths), "mean": statistics.fmean(lengths),
            "p90": deciles[8], "max": lengths[-1], "max_new_tokens": max_new_tokens,
            "hit_max_new_tokens": sum(record["hit_limit"] for record in records)}


def finish_reasons(records: Sequence[dict]) -> dict:
    """How each generation ended: a server's finish reasons, or for a local model "stop" and "length"."""
    return dict(sorted(Counter(r.get("finish_reason") or ("length" if r["hit_limit"] else "stop")
                               for r in records).items()))


def usage(records: Sequence[dict]) -> dict:
    """Prompt and completion tokens summed over a served model's answers (what it bills), or nothing."""
    if not any("prompt_tokens" in r for r in records):
        return {}
    return {"usage": {"prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in records),
                      "completion_tokens": sum(r["tokens"] for r in records), "requests": len(records)}}


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
               "finish_reasons": finish_reasons(records), **usage(records),
               "personalised": run.settings["use_profile"], "settings": run.settings, "scores": None}
    if options.api_base:
        summary["endpoint"] = public_url(options.api_base)
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
