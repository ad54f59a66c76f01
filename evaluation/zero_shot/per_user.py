"""A per-user evaluation run (evaluation/evaluate_per_user.py's): each user's examples generated with that user's
adapter, style vector and/or profile summary, into a zero-shot run folder.

The prompts are the zero-shot ones (`PromptBuilder`, optionally with retrieved items and a summary); each user's
examples are generated through the transformers backend with the user's adapter switched in and/or style vector
added, or on vLLM with each prompt carrying its user's LoRA request (multi-LoRA; not with style vectors, which need
the model's activations). The folder holds zero-shot's files (prompts.json, progress.jsonl, predictions.json,
golds.json, scores.json, per_sample.jsonl), so the scorer, the run cards and the leaderboard read it as any run.
Every finished batch is appended to progress.jsonl (`PredictionStore`, keyed by the zero-shot prompt key of the user
and the prompt): a killed run, started again with the same flags, generates only what is missing, and other
settings in the folder are refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from generation import resolve_backend
from longlamp_cli import check_folder
from longlamp_io import RunLock, folder_content_digest, write_json_atomic
from longlamp_runs import (
    PROGRESS_FILE,
    PROMPTS_FILE,
    PerUserSettings,
    ProfileSummary,
    RunRecord,
    StyleVectors,
    UserAdapters,
    data_source,
)
from personalization.prompt_setup import PromptSetup

logger = logging.getLogger(__name__)


VLLM_OPTIONS = ("tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs")


def vllm_refusal(args, source, adapters) -> str | None:
    """Why the vLLM backend cannot run these methods, or None (`source` None: what the flags alone rule out)."""
    from generation.vllm_engine import ADAPTER_ON_ADAPTER
    from personalization.generate import STYLE_NEEDS_ACTIVATIONS

    if args.style_vectors_dir:
        return STYLE_NEEDS_ACTIVATIONS
    if adapters and source is not None and source.adapter:
        return f"--model_name: {ADAPTER_ON_ADAPTER}"
    return None


def choose_backend(args, source, settings, adapters) -> str:
    """--backend: auto is vLLM where it is installed, runs the model and decoding, and the methods asked for."""
    reason = vllm_refusal(args, source, adapters)
    if args.backend == "auto":
        return "transformers" if reason else resolve_backend("auto", settings, source)
    if args.backend == "vllm" and reason:
        raise ValueError(f"--backend vllm: {reason}; use --backend transformers")
    return args.backend


def backend_options(args, backend: str, adapters) -> dict:
    """The backend's options: for vLLM the engine flags given and, with per-user adapters, LoRA serving."""
    if backend != "vllm":
        return {}
    from personalization.user_adapters import vllm_lora_engine_options

    options = {name: getattr(args, name) for name in VLLM_OPTIONS if getattr(args, name) is not None}
    return {**options, **(vllm_lora_engine_options(adapters, args.max_loras) if adapters else {})}


def summary_writer(args, cache_dir: Path):
    """--summary_model on any backend (local or served), greedy, each summary cached by its full input in
    CACHE_DIR/summaries.sqlite: the judge's cached generator (evaluation/judges), which a resumed run asks again
    for nothing it has."""
    from evaluation.judges.judge_model import build_judge, judge_options
    from generation.cache import GenerationCache

    served = {"api_base": args.summary_api_base} if args.summary_api_base else {}
    options = judge_options(args.summary_model, str(cache_dir), backend=args.summary_backend,
                            max_new_tokens=args.summary_max_new_tokens, dtype=args.dtype, **served)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return build_judge(options, GenerationCache(cache_dir / "summaries.sqlite"))


def example_key(token_ids, user: str) -> str:
    """Zero-shot's prompt key of what one example's generation depends on: its user's model and its prompt."""
    from generation.progress import prompt_key

    return prompt_key(json.dumps([user, list(token_ids)], separators=(",", ":")), None)


def run_record(args, setup: PromptSetup, dataset, style) -> RunRecord:
    """What the predictions depend on, recorded in progress.jsonl and scores.json: zero-shot's groups (the same data
    record, so runs of the same split rank together) and the per-user methods with their files' digests."""
    from personalization.user_adapters import AdapterStore

    adapters = style_vectors = summary = None
    if args.adapters_dir:
        folder = Path(args.adapters_dir).resolve()
        adapters = UserAdapters(str(folder), folder_content_digest(AdapterStore(folder).root))
    if style is not None:
        folder = Path(args.style_vectors_dir).resolve()
        style_vectors = StyleVectors(str(folder), folder_content_digest(folder), style.layer, style.scale)
    if args.use_summary:
        summary = ProfileSummary(args.summary_of, args.summary_max_new_tokens, args.summary_model,
                                 args.summary_backend if args.summary_model else None)
    data = data_source(args.data, args.data_dir, args.revision, dataset, args.max_eval_examples)
    return setup.record("per_user", data, PerUserSettings(adapters, style_vectors, summary), strip_reasoning=True)


@dataclass
class PerUserPlan:
    """A per-user run checked and resolved before any prompt is built: its rows, prompt rules and generator (the
    model loaded), the users' adapters and style steering, and its record."""

    dataset: object
    setup: PromptSetup
    adapters: dict | None
    style: object
    record: RunRecord


def prepare(args) -> PerUserPlan:
    """Everything that can refuse the run, then what it will record: the same record for the same flags."""
    import longlamp
    from generation.decoding import GenerationSettings
    from generation.source import resolve_model
    from personalization.style_vectors import style_steering
    from personalization.user_adapters import AdapterStore

    adapters = AdapterStore(args.adapters_dir).adapters() if args.adapters_dir else None
    if args.adapters_dir and not adapters:
        raise ValueError(f"--adapters_dir {args.adapters_dir} holds no finished user adapter")
    style = style_steering(args.style_vectors_dir, args.style_layer, args.style_scale) if args.style_vectors_dir \
        else None
    dataset = longlamp.load_rows(args.data, args.split, task=args.task, data_dir=args.data_dir,
                                 cache_dir=args.cache_dir, revision=args.revision, limit=args.max_eval_examples)
    source = resolve_model(args.model_name)
    backend = choose_backend(args, source, GenerationSettings(max_new_tokens=args.max_new_tokens), adapters)
    own_summaries = args.summary_max_new_tokens if args.use_summary and not args.summary_model else 0
    setup = PromptSetup(args, backend=backend, backend_options=backend_options(args, backend, adapters),
                        longest_new_tokens=own_summaries, source=source)
    return PerUserPlan(dataset, setup, adapters, style, run_record(args, setup, dataset, style))


def run(args) -> dict:
    """Generate, save and score the predictions the parsed flags ask for (evaluate_per_user.py's); returns the
    run's scores.json content."""
    from evaluation.zero_shot.data import column
    from evaluation.zero_shot.results import finish_run
    from generation.predictions import PredictionStore
    from generation.progress import PreparedRun
    from personalization.generate import per_user_generations
    from personalization.summaries import SUMMARY_RECORD_FILE, SummaryPromptBuilder, summaries_for

    root = check_folder(args.output_dir, "--output_dir")
    plan = prepare(args)
    setup, dataset, record = plan.setup, plan.dataset, plan.record
    rows = list(dataset)
    with RunLock(root, "evaluate_per_user.py"):  # taken only now: a refused run leaves no folder behind
        items = [setup.items(row) for row in rows]
        if args.use_summary:
            cache_dir = Path(args.summary_cache_dir or root / "summaries")
            writer = summary_writer(args, cache_dir) if args.summary_model else None
            summaries = summaries_for(args, setup, rows, items, cache_dir, writer, root / SUMMARY_RECORD_FILE)
            with_summary = SummaryPromptBuilder(setup.builder)
            prompts = [with_summary(i, row["input"], s) for i, row, s in zip(items, rows, summaries)]
        else:
            prompts = [setup.builder(i, row["input"]) for i, row in zip(items, rows)]
        ids = [row["id"] for row in rows]
        users = [str(row[setup.task.user_column]) for row in rows]
        token_ids = [setup.encode(p) for p in prompts]
        keys = [example_key(t, user) for t, user in zip(token_ids, users)]
        write_json_atomic(root / PROMPTS_FILE, [{"id": i, "user": u, "prompt": p, "prompt_tokens": len(t)}
                                                for i, u, p, t in zip(ids, users, prompts, token_ids)])
        store = PredictionStore(root / PROGRESS_FILE, record, keys)
        finished = {index for index, key in enumerate(keys) if key in store}
        if finished:
            logger.info("%s: resuming, %d of %d examples already done", root, len(finished), len(keys))

        def save(positions, generations):
            store.add([(keys[i], ids[i], g) for i, g in zip(positions, generations) if keys[i] not in store])

        per_user_generations(setup.generator, token_ids, users, adapters=plan.adapters, style=plan.style,
                             batch_size=setup.batch_size, finished=finished, save=save)
        prepared = PreparedRun(root, record, 0, ids, token_ids, [len(t) for t in token_ids], keys, store)
        summary = finish_run(prepared, column(dataset, "output"), users,
                             from_training_record=args.from_training_record)
    logger.info("wrote %d predictions to %s (%s)", len(ids), root,
                "not scored" if summary["scores"] is None else f"ROUGE-L {summary['scores']['metrics']['rougeL']:.4f}")
    return summary
