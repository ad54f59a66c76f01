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
from longlamp_tasks import parse_config_name
from personalization.prompt_setup import PromptSetup

logger = logging.getLogger(__name__)


ENGINE_OPTIONS = ("tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs")


def foreign_engine_flags(args) -> str | None:
    """The refusal of engine flags given that --backend does not take (`auto`: any backend may), naming the
    backends that do, or None."""
    from generation import accepted_options, backends_taking

    if args.backend == "auto":
        return None
    given = [name for name in ENGINE_OPTIONS if getattr(args, name) is not None]
    foreign = [name for name in given if name not in accepted_options(args.backend)]
    if not foreign:
        return None
    owners = sorted({owner for name in foreign for owner in backends_taking(name)})
    flags = ", ".join(f"--{name}" for name in foreign)
    return f"{flags} {'is' if len(foreign) == 1 else 'are'} for {' or '.join(f'--backend {o}' for o in owners)}"


def method_refusal(args) -> str | None:
    """What the flags alone rule out on an explicitly named --backend (before anything is loaded), or None."""
    from generation import backend_class
    from generation.preparation import backend_refusal

    if args.backend == "auto":
        return None
    reason = backend_class(args.backend).unsupported_methods(steering=bool(args.style_vectors_dir),
                                                             user_adapters=bool(args.adapters_dir))
    return backend_refusal(args.backend, reason) if reason else None


def prepare_generation(args, adapters):
    """The evaluated model prepared for generation (`generation.preparation`) with the methods asked for: the
    engine flags given and, where the backend serves per-user adapters per prompt, their LoRA serving options."""
    from generation.decoding import GenerationSettings
    from generation.preparation import prepare_model
    from generation.source import resolve_model

    options = {"dtype": args.dtype, **{name: getattr(args, name) for name in ENGINE_OPTIONS
                                       if getattr(args, name) is not None}}
    model = prepare_model(args.model_name, GenerationSettings(max_new_tokens=args.max_new_tokens),
                          backend=args.backend, options=options, source=resolve_model(args.model_name),
                          max_prompt_length=args.max_prompt_length, steering=bool(args.style_vectors_dir),
                          user_adapters=bool(adapters))
    if adapters and model.generator_class.per_prompt_adapters:  # read only once the backend is known to serve them
        from personalization.user_adapters import vllm_lora_engine_options

        model.options.update(vllm_lora_engine_options(adapters, args.max_loras))
    return model


def example_key(token_ids, user: str) -> str:
    """Zero-shot's prompt key of what one example's generation depends on: its user's model and its prompt."""
    from generation.progress import prompt_key

    return prompt_key(json.dumps([user, list(token_ids)], separators=(",", ":")), None)


def run_record(args, setup: PromptSetup, dataset, style) -> RunRecord:
    """What the predictions depend on, recorded in progress.jsonl and scores.json: zero-shot's groups (the same data
    record, so runs of the same split rank together) and the per-user methods with their files' digests."""
    from personalization.user_adapters import AdapterStore

    adapters = style_vectors = None
    if args.adapters_dir:
        folder = Path(args.adapters_dir).resolve()
        adapters = UserAdapters(str(folder), folder_content_digest(AdapterStore(folder).root))
    if style is not None:
        folder = Path(args.style_vectors_dir).resolve()
        style_vectors = StyleVectors(str(folder), folder_content_digest(folder), style.layer, style.scale)
    data = data_source(args.data, args.data_dir, args.revision, dataset, args.max_eval_examples)
    methods = PerUserSettings(adapters, style_vectors, ProfileSummary.from_flags(vars(args)))
    return setup.record("per_user", data, methods, strip_reasoning=True)


# What per-user adapters must be evaluated with as they were trained (besides the model they were trained on): the
# retrieval, chat template and profile summary (+PAG) that built their training prompts. The prompt budget is not
# among them: the runner trains adapters with a shorter one than it evaluates with, and a longer budget only adds
# text of the same items.
ADAPTER_SETTINGS = ("retrieval.use_profile", "retrieval.retriever", "retrieval.retriever_model",
                    "retrieval.num_retrieved", "prompt.chat_template", "per_user.profile_summary.of",
                    "per_user.profile_summary.max_new_tokens", "per_user.profile_summary.model",
                    "per_user.profile_summary.backend")


def trained_adapters_record(adapters_dir: str) -> RunRecord:
    """The record train_per_user.py wrote in `adapters_dir` (per_user_config.json), read through longlamp_runs."""
    from longlamp_runs import PER_USER_RECORD_FILE, read_record

    path = Path(adapters_dir) / PER_USER_RECORD_FILE
    if not path.is_file():
        raise ValueError(f"--adapters_dir {adapters_dir} has no {PER_USER_RECORD_FILE}: not a "
                         "training/train_per_user.py output folder (which records the model and settings the "
                         "adapters were trained with)")
    record = read_record(path)
    if record.kind != "per_user_adapters":
        raise ValueError(f"--adapters_dir {adapters_dir}: {PER_USER_RECORD_FILE} records {record.kind}, not per-user "
                         "adapters")
    return record


def same_model(given: str, trained: str) -> bool:
    """Whether two model names mean the same model: the same folder when either is a local one, else the same id."""
    paths = [Path(name).expanduser() for name in (given, trained)]
    if any(path.exists() for path in paths):
        return all(path.exists() for path in paths) and paths[0].resolve() == paths[1].resolve()
    return given == trained


def merged_from(model_name: str) -> str | None:
    """The adapter a merged model was exported from (its training record's outcome), or None."""
    from longlamp_runs import TRAINING_RECORD_FILE, read_model_record

    path = Path(model_name).expanduser() / TRAINING_RECORD_FILE
    return read_model_record(path)[1].merged_from_adapter if path.is_file() else None


def check_adapters_model(args, trained: RunRecord) -> None:
    """Refuse --model_name other than the one the adapters were trained on: the task adapter they started from
    (train_per_user.py --task_adapter) or its merged export (what vLLM takes), else the base model alone."""
    task_adapter, base = trained.training.task_adapter, trained.model.name
    expected = task_adapter or base
    merged = merged_from(args.model_name) if task_adapter else None
    if not same_model(args.model_name, expected) and not (merged and same_model(merged, task_adapter)):
        on = f"the task adapter {task_adapter} (on {base})" if task_adapter else f"the base model {base} alone"
        merged_too = " or its merged export" if task_adapter else ""
        raise ValueError(f"--model_name {args.model_name}: the adapters of --adapters_dir {args.adapters_dir} were "
                         f"trained on {on}; evaluate them with --model_name {expected}{merged_too}")


def check_adapters_weights(args, trained: RunRecord, record: RunRecord) -> None:
    """Refuse weights other than those the adapters were trained on, a model folder changed in place included: the
    fingerprint train_per_user.py recorded (`generation.fingerprints`: each folder's content digest, a Hub model's
    commit) against the evaluated model's now. A merged export's own digest is new, so for it the task adapter it
    was merged from and that adapter's base are fingerprinted again; records written before fingerprints were
    recorded are refused (retrain)."""
    from generation import model_source
    from generation.fingerprints import model_fingerprint
    from longlamp_runs import PER_USER_RECORD_FILE

    recorded, task_adapter = trained.model.fingerprint, trained.training.task_adapter
    if recorded is None:
        raise ValueError(f"--adapters_dir {args.adapters_dir}: its {PER_USER_RECORD_FILE} records no fingerprint of "
                         "the weights the adapters were trained on (written before this toolkit recorded one), so "
                         "they cannot be matched to the model; retrain them with training/train_per_user.py")
    now, where = record.model.fingerprint or {}, args.model_name
    merged = merged_from(args.model_name) if task_adapter else None
    if merged is not None:
        now = model_fingerprint(model_source(merged, base_model=trained.model.name))
        where = f"{args.model_name} (merged from {merged})"
    changed = [key for key in sorted(set(recorded) | set(now)) if recorded.get(key) != now.get(key)]
    if changed:
        folders = {"base": trained.model.name, "adapter": task_adapter}
        named = ", ".join(f"{key} {folders.get(key) or '?'}" for key in changed)
        raise ValueError(f"--model_name {where}: the weights differ from those the adapters of --adapters_dir "
                         f"{args.adapters_dir} were trained on ({named} changed: fingerprint {recorded} at training, "
                         f"{now} now); retrain the adapters on the model as it is, or evaluate them on the weights "
                         "they were trained on")


def check_adapters_settings(args, trained: RunRecord, record: RunRecord) -> None:
    """Refuse retrieval or prompt settings (ADAPTER_SETTINGS) other than those the adapters were trained with,
    naming each (as trained -> as asked)."""
    from longlamp_runs import describe_differences

    before, after = trained.flat(), record.flat()
    changes = {name: (before.get(name), after.get(name)) for name in ADAPTER_SETTINGS
               if before.get(name) != after.get(name)}
    if changes:
        raise ValueError(f"--adapters_dir {args.adapters_dir}: the adapters were trained with other settings than "
                         f"this run's ({describe_differences(changes)}); evaluate with the settings they were trained "
                         "with")


def adapter_coverage(args, adapters: dict, users) -> dict:
    """How many of the evaluated users have an adapter (the others get the model alone): for scores.json, with a
    warning when some have none; adapters for none of them are refused."""
    evaluated = sorted(set(users))
    served = [user for user in evaluated if user in adapters]
    if not served:
        raise ValueError(f"--adapters_dir {args.adapters_dir}: its {len(adapters)} adapters were trained for none of "
                         f"the {len(evaluated)} users evaluated (--data {args.data}, --split {args.split}); train "
                         "them on this split's users")
    coverage = {"users": len(evaluated), "users_with_adapter": len(served)}
    if len(served) < len(evaluated):
        coverage["warning"] = (f"{len(evaluated) - len(served)} of {len(evaluated)} evaluated users have no adapter "
                               "(no usable profile item, or not trained: train_per_user.py --max_users); they are "
                               "generated by the model alone")
        logger.warning("%s", coverage["warning"])
    return coverage


@dataclass
class PerUserPlan:
    """A per-user run checked and resolved before any prompt is built: its rows, prompt rules and generator (the
    model loaded), the users' adapters and style steering, and its record."""

    dataset: object
    setup: PromptSetup
    adapters: dict | None
    style: object
    record: RunRecord
    coverage: dict | None  # with per-user adapters: how many evaluated users have one (adapter_coverage)


def prepare(args) -> PerUserPlan:
    """Everything that can refuse the run, then what it will record: the same record for the same flags."""
    import longlamp
    from personalization.style_vectors import style_steering
    from personalization.user_adapters import AdapterStore

    adapters = AdapterStore(args.adapters_dir).adapters() if args.adapters_dir else None
    if args.adapters_dir and not adapters:
        raise ValueError(f"--adapters_dir {args.adapters_dir} holds no finished user adapter")
    style = style_steering(args.style_vectors_dir, args.style_layer, args.style_scale) if args.style_vectors_dir \
        else None
    dataset = longlamp.load_rows(args.data, args.split, task=args.task, data_dir=args.data_dir,
                                 cache_dir=args.cache_dir, revision=args.revision, limit=args.max_eval_examples)
    model = prepare_generation(args, adapters)
    trained = trained_adapters_record(args.adapters_dir) if adapters else None
    coverage = None
    if trained is not None:
        check_adapters_model(args, trained)
        from evaluation.zero_shot.data import column

        users = column(dataset, parse_config_name(args.task)[0].user_column)
        coverage = adapter_coverage(args, adapters, [str(user) for user in users])
    own_summaries = args.summary_max_new_tokens if args.use_summary and not args.summary_model else 0
    setup = PromptSetup(args, model, longest_new_tokens=own_summaries)
    record = run_record(args, setup, dataset, style)
    if trained is not None:
        check_adapters_weights(args, trained, record)
        check_adapters_settings(args, trained, record)
    return PerUserPlan(dataset, setup, adapters, style, record, coverage)


def run(args) -> dict:
    """Generate, save and score the predictions the parsed flags ask for (evaluate_per_user.py's); returns the
    run's scores.json content."""
    from evaluation.zero_shot.data import column
    from evaluation.zero_shot.results import finish_run
    from generation.predictions import PredictionStore
    from generation.progress import PreparedRun
    from personalization.generate import per_user_generations
    from personalization.summaries import (
        SUMMARY_CACHE_DIR,
        SUMMARY_RECORD_FILE,
        SummaryPromptBuilder,
        summaries_for,
        summary_sets,
        summary_writer,
    )

    root = check_folder(args.output_dir, "--output_dir")
    plan = prepare(args)
    setup, dataset, record = plan.setup, plan.dataset, plan.record
    rows = list(dataset)
    with RunLock(root, "evaluate_per_user.py"):  # taken only now: a refused run leaves no folder behind
        items = [setup.items(row) for row in rows]
        if args.use_summary:
            cache_dir = Path(args.summary_cache_dir or root / SUMMARY_CACHE_DIR)
            writer = summary_writer(args, cache_dir) if args.summary_model else None
            summaries, summary_record = summaries_for(
                args, summary_sets(args, setup.task, rows, items), setup.task, setup.source.tokenizer,
                setup.builder.max_prompt_tokens, cache_dir, writer=writer, generator=setup.generator,
                batch_size=setup.batch_size)
            write_json_atomic(root / SUMMARY_RECORD_FILE, summary_record)
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
                             from_training_record=args.from_training_record, user_adapters=plan.coverage)
    logger.info("wrote %d predictions to %s (%s)", len(ids), root,
                "not scored" if summary["scores"] is None else f"ROUGE-L {summary['scores']['metrics']['rougeL']:.4f}")
    return summary
