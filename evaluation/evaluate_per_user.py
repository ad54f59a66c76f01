"""Predictions of the per-user methods: each user's adapter (OPPU), style vector, and/or profile summary.

    python evaluation/evaluate_per_user.py --model_name BASE_OR_TASK_ADAPTER --data product_review_user \
        --split test --adapters_dir runs/oppu --output_dir runs/oppu/test

The prompts are the zero-shot ones (`PromptBuilder`, optionally with retrieved items and a summary); each user's
examples are generated with that user's adapter switched in and/or style vector added, through the transformers
backend, or on vLLM (`--backend vllm`, a GPU) with each prompt carrying its user's LoRA request, several users'
adapters in one batch (multi-LoRA; not with style vectors, which need the model's activations). OUTPUT_DIR is a
zero-shot run folder (evaluation/zero_shot/'s files: prompts.json, progress.jsonl, predictions.json with each
example's user, golds.json, scores.json, per_sample.jsonl), so the scorer, the run cards and
evaluation/leaderboard.py read it as they read any run. Every finished batch is appended to progress.jsonl
(`PredictionStore`, keyed by the zero-shot prompt key of the user and the prompt): a killed run, started again
with the same flags, generates only what is missing, and other settings in the folder are refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from generation import BACKENDS, backend_class, resolve_backend  # noqa: E402
from longlamp_cli import ArgumentParser, add_flag, check_folder, positive_int  # noqa: E402
from longlamp_prompts import PromptBuilder, prompt_budget  # noqa: E402
from longlamp_io import RunLock, write_json_atomic  # noqa: E402
from longlamp_tasks import parse_config_name, scorer_task_name  # noqa: E402

logger = logging.getLogger(__name__)
SELECTION_FILE = "style_selection.json"


def add_model_and_prompt_flags(p: argparse.ArgumentParser) -> None:
    """The flags shared with training/train_style_vectors.py (model, data, prompt), from longlamp_cli.FLAGS."""
    add_flag(p, "model_name", required=True, help="base model or task adapter folder")
    p.add_argument("--data", required=True, help="a LongLaMP config name or a file/folder")
    add_flag(p, "task", help="task or config name (default: --data when it is a config name)")
    add_flag(p, "split", default="test", choices=("train", "validation", "test"), help="which split of --data is read")
    add_flag(p, "data_dir")
    add_flag(p, "cache_dir")
    add_flag(p, "revision")
    add_flag(p, "max_eval_examples", "--limit", type=positive_int)
    add_flag(p, "use_profile")
    add_flag(p, "retriever")
    add_flag(p, "retriever_model")
    add_flag(p, "num_retrieved", type=positive_int, default=1)
    add_flag(p, "max_prompt_length", type=positive_int)
    add_flag(p, "max_new_tokens", type=positive_int, default=512)
    add_flag(p, "batch_size", type=positive_int, help="prompts per generate call (default: the backend's, 8 "
             "transformers, 256 vLLM)")
    add_flag(p, "dtype")
    add_flag(p, "use_chat_template")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    add_model_and_prompt_flags(p)
    p.add_argument("--adapters_dir", help="a training/train_per_user.py output folder: each user's adapter")
    p.add_argument("--style_vectors_dir", help="a training/train_style_vectors.py output folder")
    p.add_argument("--style_layer", type=positive_int, help="steered layer (default: the folder's chosen one)")
    p.add_argument("--style_scale", type=float, help="steering scale (default: the folder's chosen one)")
    p.add_argument("--use_summary", action="store_true", help="put a summary of the user's profile in the prompt")
    p.add_argument("--summary_of", choices=("profile", "retrieved"), default="profile",
                   help="summarise the whole profile (once per user) or each example's retrieved items")
    p.add_argument("--summary_cache_dir", help="where summaries are cached (default: OUTPUT_DIR/summaries)")
    p.add_argument("--summary_max_new_tokens", type=positive_int, default=128, help="summary length")
    p.add_argument("--summary_model", help="write the summaries with this model instead of the evaluated one: a "
                   "Hub id or folder, or with --summary_backend openai the name a server knows")
    p.add_argument("--summary_backend", default="auto", choices=("auto", *BACKENDS),
                   help="the backend of --summary_model (evaluate_llm.py's --backend)")
    p.add_argument("--summary_api_base", help="with --summary_backend openai: the server's API, e.g. "
                   "http://localhost:8000/v1 (its key: OPENAI_API_KEY)")
    add_flag(p, "output_dir", required=True, help="the run folder (zero-shot's files); a restart resumes from it")
    p.add_argument("--backend", default="auto", choices=("auto", "transformers", "vllm"),
                   help="auto: vLLM when it is installed with a GPU (or as a CPU build) and runs the model and the "
                   "methods asked for (not style vectors, not per-user adapters on a task adapter), else transformers")
    add_vllm_flags(p)
    return p


def add_vllm_flags(p: argparse.ArgumentParser) -> None:
    """evaluate_llm.py's vLLM engine flags (ZeroShotOptions' vllm group), and how many users' adapters mix."""
    import dataclasses

    from evaluation.zero_shot import ZeroShotOptions
    from evaluation.zero_shot.options import add_option_flag

    group = p.add_argument_group("vllm")
    for spec in dataclasses.fields(ZeroShotOptions):
        if spec.metadata["group"] == "vllm":
            add_option_flag(group, spec)
    group.add_argument("--max_loras", type=positive_int, default=8,
                       help="vLLM: users' adapters one batch may mix (each holds GPU memory; default: 8)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.task = args.task or args.data
    parse_config_name(args.task)
    if args.summary_of == "retrieved" and not args.use_profile:
        raise ValueError("--summary_of retrieved summarises the retrieved items: add --use_profile")
    if (args.summary_model or args.summary_api_base) and not args.use_summary:
        raise ValueError("--summary_model and --summary_api_base choose who writes the summaries: add --use_summary")
    if (args.style_layer or args.style_scale is not None) and not args.style_vectors_dir:
        raise ValueError("--style_layer and --style_scale need --style_vectors_dir")
    if args.backend == "transformers":
        given = [f"--{name}" for name in VLLM_OPTIONS if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --backend vllm")
    if args.backend == "vllm":
        choose_backend(args, None, None, None)  # what the flags alone rule out, before anything is loaded
    return args


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


class PromptSetup:
    """The model, backend and prompt rules of a run, and the prompts of its rows. `longest_new_tokens`: the most
    tokens any generation of the run asks for (a summary's may exceed the task's), which sizes a vLLM engine."""

    def __init__(self, args, max_new_tokens: int | None = None, backend: str = "transformers",
                 backend_options: dict | None = None, longest_new_tokens: int = 0, source=None):
        from generation import get_backend
        from generation.decoding import GenerationSettings
        from generation.source import resolve_model

        self.args, self.task = args, parse_config_name(args.task)[0]
        self.source = source or resolve_model(args.model_name)
        new_tokens = max_new_tokens or args.max_new_tokens
        budget = prompt_budget(args.max_prompt_length, self.source.context_length(), new_tokens,
                               self.source.is_encoder_decoder)
        self.builder = PromptBuilder(self.task, self.source.tokenizer, budget, args.use_chat_template)
        generator_class = backend_class(backend)
        run_options = generator_class.run_options(budget, max(new_tokens, longest_new_tokens))  # no prompt is longer
        self.generator = get_backend(backend, self.source, GenerationSettings(max_new_tokens=new_tokens),
                                     dtype=args.dtype, **(backend_options or {}), **run_options)
        self.batch_size = args.batch_size or generator_class.default_batch_size
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


def load_split(args):
    """The split's rows as a `datasets.Dataset` (its fingerprint is part of the run's record)."""
    from training.data import load_rows as load

    return load(args.data, args.split, args.task, args.data_dir, args.cache_dir, args.max_eval_examples, args.revision)


def load_rows(args) -> list[dict]:
    return list(load_split(args))


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
    if args.summary_model:
        messages = summary_requests(setup.task, setup.source.tokenizer, setup.builder.max_prompt_tokens,
                                    [sets[i] for i in wanted_items(sets)], args.use_chat_template, formatted=False)
        found = summary_writer(args, cache_dir).ask(messages, "summarising")
        return place_summaries(sets, [text.strip() for text in found])
    generator = setup.generator  # the loaded weights, with the summary's length for the time being
    settings = replace(generator.settings, max_new_tokens=args.summary_max_new_tokens)
    wanted = wanted_items(sets)
    requests = summary_requests(setup.task, setup.source.tokenizer, setup.builder.max_prompt_tokens,
                                [sets[i] for i in wanted], args.use_chat_template)
    identity = {"model": setup.source.address, **settings.record()}
    with generating_with(generator, settings):
        found = summarize(requests, generator, setup.source, SummaryCache(cache_dir), identity,
                          setup.builder.use_chat_template, setup.batch_size)
    return place_summaries(sets, found)


@contextmanager
def generating_with(generator, settings):
    """The loaded generator with other generation settings for the block (where transformers reads them: the
    settings, and the model's generation config)."""
    config = getattr(getattr(generator, "model", None), "generation_config", None)
    before = generator.settings
    generator.settings = settings
    if config is not None:
        config.max_new_tokens = settings.max_new_tokens
    try:
        yield generator
    finally:
        generator.settings = before
        if config is not None:
            config.max_new_tokens = before.max_new_tokens


def wanted_items(sets) -> list[int]:
    """The rows with items to summarise (nothing to summarise: no summary)."""
    return [index for index, items in enumerate(sets) if items]


def place_summaries(sets, found: list[str]) -> list[str]:
    """One summary per row: the generated ones in the rows that had items, empty in the others."""
    summaries = [""] * len(sets)
    for index, summary in zip(wanted_items(sets), found):
        summaries[index] = summary
    return summaries


def summary_writer(args, cache_dir: Path):
    """--summary_model on any backend (local or served), greedy, each summary cached by its full input in
    CACHE_DIR/summaries.sqlite: the judge's cached generator (evaluation/judges), which a resumed run asks again
    for nothing it has."""
    from generation.cache import GenerationCache
    from evaluation.judges.judge_model import build_judge, judge_options

    served = {"api_base": args.summary_api_base} if args.summary_api_base else {}
    options = judge_options(args.summary_model, str(cache_dir), backend=args.summary_backend,
                            max_new_tokens=args.summary_max_new_tokens, dtype=args.dtype, **served)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return build_judge(options, GenerationCache(cache_dir / "summaries.sqlite"))


def zero_shot_options(args, output_dir: Path):
    """The run as zero-shot evaluation's options: its data record and its files are written by the same code."""
    from evaluation.zero_shot import ZeroShotOptions

    return ZeroShotOptions(validation_data=args.data, model_name=args.model_name, output_dir=str(output_dir),
                           task=args.task, split=args.split, data_dir=args.data_dir, cache_dir=args.cache_dir,
                           revision=args.revision, max_eval_examples=args.max_eval_examples,
                           max_new_tokens=args.max_new_tokens, dtype=args.dtype)


def example_key(token_ids, user: str) -> str:
    """Zero-shot's prompt key of what one example's generation depends on: its user's model and its prompt."""
    from generation.progress import prompt_key

    return prompt_key(json.dumps([user, list(token_ids)], separators=(",", ":")), None)


def run_settings(args, setup: PromptSetup, options, dataset, style) -> dict:
    """What the predictions depend on, recorded in progress.jsonl and scores.json: zero-shot's settings (the same
    data record, so runs of the same split rank together) and the per-user methods with their files' digests."""
    from evaluation.zero_shot.data import data_source
    from generation.fingerprints import model_fingerprint
    from longlamp_io import folder_content_digest

    task, setting = parse_config_name(args.task)
    source = setup.source
    settings = {"task": task.name, "setting": setting, "split": args.split, "model": args.model_name,
                "base_model": source.base if source.adapter else None, "model_fingerprint": model_fingerprint(source),
                "backend": setup.generator.name, "dtype": type(setup.generator).dtype_name(args.dtype),
                "max_prompt_length": setup.builder.max_prompt_tokens, "chat_template": setup.builder.use_chat_template,
                "strip_reasoning": True, **setup.generator.settings.record(), "data": data_source(options, dataset),
                "use_profile": args.use_profile}
    if args.use_profile:
        settings.update(retriever=setup.retriever.signature, num_retrieved=args.num_retrieved, is_ranked=False)
    methods = {}
    if args.adapters_dir:
        folder = Path(args.adapters_dir).resolve()
        methods["per_user_adapters"] = {"folder": str(folder), "fingerprint": folder_content_digest(folder / "users")}
    if style is not None:
        folder = Path(args.style_vectors_dir).resolve()
        methods["style_vectors"] = {"folder": str(folder), "fingerprint": folder_content_digest(folder),
                                    "layer": style.layer, "scale": style.scale}
    if args.use_summary:
        methods["profile_summary"] = {"of": args.summary_of, "max_new_tokens": args.summary_max_new_tokens,
                                      "model": args.summary_model,
                                      "backend": args.summary_backend if args.summary_model else None}
    settings["personalization"] = methods
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    from generation.decoding import GenerationSettings
    from generation.source import resolve_model
    from evaluation.zero_shot.data import column
    from generation.predictions import PredictionStore
    from generation.progress import PreparedRun
    from evaluation.zero_shot.results import finish_run
    from personalization.generate import per_user_generations
    from personalization.summaries import SummaryPromptBuilder
    from personalization.user_adapters import AdapterStore

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = check_folder(args.output_dir, "--output_dir")
    adapters = AdapterStore(args.adapters_dir).adapters() if args.adapters_dir else None
    if args.adapters_dir and not adapters:
        raise ValueError(f"--adapters_dir {args.adapters_dir} holds no finished user adapter")
    style = style_steering(args.style_vectors_dir, args.style_layer, args.style_scale) if args.style_vectors_dir \
        else None
    dataset = load_split(args)
    rows = list(dataset)
    source = resolve_model(args.model_name)
    backend = choose_backend(args, source, GenerationSettings(max_new_tokens=args.max_new_tokens), adapters)
    own_summaries = args.summary_max_new_tokens if args.use_summary and not args.summary_model else 0
    setup = PromptSetup(args, backend=backend, backend_options=backend_options(args, backend, adapters),
                        longest_new_tokens=own_summaries, source=source)
    options = zero_shot_options(args, root)
    with RunLock(root, "evaluate_per_user.py"):  # taken only now: a refused run leaves no folder behind
        items = [setup.items(row) for row in rows]
        if args.use_summary:
            summaries = summaries_for(args, setup, rows, items, Path(args.summary_cache_dir or root / "summaries"))
            with_summary = SummaryPromptBuilder(setup.builder)
            prompts = [with_summary(i, row["input"], s) for i, row, s in zip(items, rows, summaries)]
        else:
            prompts = [setup.builder(i, row["input"]) for i, row in zip(items, rows)]
        ids = [row["id"] for row in rows]
        users = [str(row[setup.task.user_column]) for row in rows]
        token_ids = [setup.encode(p) for p in prompts]
        keys = [example_key(t, user) for t, user in zip(token_ids, users)]
        settings = run_settings(args, setup, options, dataset, style)
        write_json_atomic(root / "prompts.json", [{"id": i, "user": u, "prompt": p, "prompt_tokens": len(t)}
                                                  for i, u, p, t in zip(ids, users, prompts, token_ids)])
        store = PredictionStore(root / "progress.jsonl", settings, keys)
        finished = {index for index, key in enumerate(keys) if key in store}
        if finished:
            logger.info("%s: resuming, %d of %d examples already done", root, len(finished), len(keys))

        def save(positions, generations):
            store.add([(keys[i], ids[i], g) for i, g in zip(positions, generations) if keys[i] not in store])

        per_user_generations(setup.generator, token_ids, users, adapters=adapters, style=style,
                             batch_size=setup.batch_size, finished=finished, save=save)
        run = PreparedRun(root, settings, 0, ids, token_ids, [len(t) for t in token_ids], keys, store)
        _, setting = parse_config_name(args.task)
        summary = finish_run(run, scorer_task_name(setup.task, setting), column(dataset, "output"), users, options)
    logger.info("wrote %d predictions to %s (%s)", len(ids), root,
                "not scored" if summary["scores"] is None else f"ROUGE-L {summary['scores']['metrics']['rougeL']:.4f}")
    return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
