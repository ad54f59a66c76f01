"""Model cards built from what a run wrote on disk: pure functions returning `huggingface_hub.ModelCard`.

Everything a card says comes from `longlamp_runs.read_run`: the run's record (every setting, in the settings
table), its scores and its files. The card's YAML carries the Hub metadata (base model, datasets, library,
pipeline, tags) and the scores as `model-index` (`EvalResult`), exactly the numbers of `scores.json`;
`eval_result_entries` gives the same numbers as `.eval_results/` entries. The body is rendered from
`card_template.md`: what ran (zero-shot or fine-tuned, with or without profile, the per-user method), the setting,
every recorded setting, the results table with intervals and the paired difference, the plot, how to load it and
the command that reproduces it, built from the record so that it parses into the same settings. No machine paths
and no tokens reach a card (see `runs.public_name`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from longlamp_io import write_text_atomic
from longlamp_runs import (
    CARD_FILE,
    PER_SAMPLE_FILE,
    PREDICTIONS_FILE,
    RECORD_VERSION,
    RunFolder,
    RunRecord,
    Variant,
    flags_of,
    read_run,
)
from longlamp_tasks import CITATION, parse_config_name, scorer_task_name
from publishing.plots import plot_comparison
from publishing.runs import (
    DATASET_ID,
    dataset_identity,
    is_hub_id,
    known_license,
    metric_args,
    public_name,
    public_record,
    variant_key,
    variant_label,
    what_ran,
)
from publishing.samples import paired_difference, write_per_sample_scores
from scoring.significance import DEFAULT_RESAMPLES

TEMPLATE = Path(__file__).with_name("card_template.md")
PLOT_FILE = "results.png"
EVAL_RESULTS_FILE = ".eval_results/longlamp.yaml"
METRIC_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum",
                "meteor": "METEOR", "sacrebleu": "SacreBLEU"}
METRIC_IDS = {"rouge1": "rouge", "rouge2": "rouge", "rougeL": "rouge", "rougeLsum": "rouge", "meteor": "meteor",
              "sacrebleu": "sacrebleu"}  # the Hub's metric ids (evaluate's metric names) for the card's `metrics`


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def model_shown(run: RunFolder) -> str:
    """The model as a card names it: the evaluated model, or the fine-tuned base (local folders by their last part)."""
    return public_name(run.record.model.name)


def base_model(run: RunFolder) -> str | None:
    """The model a card's model is made from: a training run's base, an evaluated adapter's base."""
    return run.record.model.name if run.kind == "training" else run.record.model.base_model


def eval_results(run: RunFolder, source_url: str | None = None, system: str | None = None) -> list:
    """One `EvalResult` per variant and metric, with the values exactly as scored (model-index), on the data each
    variant was scored on (`dataset_identity`: the Hub dataset's config, `val` split and revision, or local data).

    huggingface_hub groups model-index results by task, dataset, config, split and revision, so the variants
    (with profile, without) are told apart per metric: by `metric_args` (use_profile, retriever, k) and the name;
    `system` (an experiment's name for the run's model, where one card covers several models) joins both.
    """
    from huggingface_hub import EvalResult

    results = []
    for variant in run.variants:
        data = dataset_identity(variant.record)
        label = f"{system}: {variant_label(variant)}" if system else variant_label(variant)
        results += [
            EvalResult(task_type="text-generation", task_name="Personalized long-text generation",
                       dataset_type=data.type, dataset_name=data.name, dataset_config=data.config,
                       dataset_split=data.split, dataset_revision=data.revision, metric_type=metric,
                       metric_name=f"{metric_name(metric)} ({label})",
                       metric_args={**({"system": system} if system else {}), **metric_args(variant)},
                       metric_value=value, source_name="LongLaMP toolkit scorer" if source_url else None,
                       source_url=source_url)
            for metric, value in variant.metrics.items()]
    return results


def eval_result_entries(run: RunFolder, source_url: str | None = None, system: str | None = None) -> list:
    """The same numbers as huggingface_hub `EvalResultEntry`s for `.eval_results/`, for the variants scored on the
    Hub dataset (an entry names a Hub dataset; local data has none).

    One value per entry, its task id saying which: `<config>/<split>/<metric>/[<system>/]<variant>`
    (`variant_key`; `system` as in `eval_results`), so that no two different measures share an id.
    LongLaMP/LongLaMP is not a registered Hub benchmark: these entries reach a leaderboard only once it is.
    """
    from huggingface_hub import EvalResultEntry

    entries = []
    for variant in run.variants:
        data = dataset_identity(variant.record)
        if not data.on_hub:
            continue
        key = f"{system}/{variant_key(variant)}" if system else variant_key(variant)
        label = f"{system}: {variant_label(variant)}" if system else variant_label(variant)
        entries += [
            EvalResultEntry(dataset_id=data.type, task_id=f"{data.config}/{data.split}/{metric}/{key}",
                            value=value, dataset_revision=data.revision, source_url=source_url,
                            source_name="LongLaMP toolkit scorer" if source_url else None,
                            notes=f"{metric_name(metric)}; {label}; n={variant.scores.num_samples}")
            for metric, value in variant.metrics.items()]
    return entries


def entries_yaml(entries: list) -> str:
    """The content of a `.eval_results/*.yaml` file holding `entries`."""
    import yaml
    from huggingface_hub import eval_result_entries_to_yaml

    return yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False)


def blob_url(repo_id: str, path: str, revision: str | None = None, repo_type: str = "model") -> str:
    """Where the Hub shows the file `path` of a repository (a `source_url`)."""
    from huggingface_hub import constants

    kind = "" if repo_type == "model" else "datasets/"
    return f"{constants.ENDPOINT}/{kind}{repo_id}/blob/{revision or 'main'}/{path}"


def plot_rows(run: RunFolder) -> list[dict]:
    """The rows of the results plot: one bar per variant and metric, grouped by metric."""
    rows = []
    for variant in run.variants:
        for metric, value in variant.metrics.items():
            interval = variant.scores.intervals.get(metric, {})
            rows.append({"label": variant_label(variant), "group": metric_name(metric), "value": value,
                         "low": interval.get("low"), "high": interval.get("high")})
    return rows


def _value(variant: Variant, metric: str) -> str:
    if metric not in variant.metrics:
        return "-"
    interval = variant.scores.intervals.get(metric)
    shown = f"{variant.metrics[metric]:.4f}"
    return f"{shown} [{interval['low']:.4f}, {interval['high']:.4f}]" if interval else shown


def results_table(run: RunFolder) -> str:
    metrics = list(dict.fromkeys(m for v in run.variants for m in v.metrics))
    if not metrics:
        return "Not scored (see the note below)." if any(v.not_scored for v in run.variants) else "Not scored."
    header = ["variant", "split", "examples"] + [metric_name(m) for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant in run.variants:
        examples = str(variant.scores.num_samples) if variant.scores else "-"
        cells = [shown(variant_label(variant)), variant.record.task.split, examples] + [_value(variant, m)
                                                                                         for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(run: RunFolder) -> str:
    if len(run.variants) < 2:
        return ""
    differences = paired_difference(run.variants[0], run.variants[1])
    if not differences:
        gains = (run.comparison or {}).get("gain") or {}
        if not gains:
            return ""
        differences = {m: {"difference": v} for m, v in gains.items()}
    lines = ["| metric | difference | 95% interval | p-value |", "|---|---|---|---|"]
    for metric, d in differences.items():
        interval = f"[{d['low']:+.4f}, {d['high']:+.4f}]" if "low" in d else "-"
        p_value = f"{d['p_value']:.3g}" if "p_value" in d else "-"
        lines.append(f"| {metric_name(metric)} | {d['difference']:+.4f} | {interval} | {p_value} |")
    if any("p_value" in d for d in differences.values()):
        lines += ["", f"{DEFAULT_RESAMPLES:,} bootstrap resamples and sign patterns, seed 0."]
    return "\n".join(lines)


def shown(text: str) -> str:
    """Text for Markdown: a `<local>/NAME` placeholder inside a code span, where it is not taken for an HTML tag
    (and hidden)."""
    return f"`{text}`" if "<local>" in text else text


def cell(value) -> str:
    """A setting's value in the settings table: a string as it is, anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    return shown(text).replace("|", "\\|")


def settings_table(run: RunFolder) -> str:
    """Every setting of the run's record (local paths by their last part), one row per dotted name and one column
    per variant; a training run's outcome below its settings."""
    records = [public_record(v.record) for v in run.variants] if run.kind != "training" else [public_record(
        run.record)]
    labels = [shown(variant_label(v)) for v in run.variants] if run.kind != "training" else ["value"]
    flats = [record.flat() for record in records]
    if run.outcome is not None:
        outcome = {f"outcome.{key}": value for key, value in dataclasses.asdict(run.outcome).items()}
        flats = [{**flat, **outcome} for flat in flats]
    names = list(dict.fromkeys(name for flat in flats for name in flat))
    lines = ["| setting | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {name} | " + " | ".join(cell(flat.get(name)) for flat in flats) + " |" for name in names]
    return "\n".join(lines)


def command_line(program: str, options: list[tuple[str, object]]) -> str:
    """`program` with each flag: alone when True, with its value when set (a mapping as JSON)."""
    parts = program.split()
    for flag, value in options:
        if value is True:
            parts.append(flag)
        elif value is not None and value is not False:
            parts += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    return " ".join(shlex.quote(part) for part in parts)


def _chat_template_flag(value: bool | None) -> tuple[str, bool]:
    """The resolved chat-template choice, always explicit (its default depends on the tokenizer)."""
    return ("--use_chat_template" if value else "--no-use_chat_template", value is not None)


def _retrieval_options(record: RunRecord) -> list[tuple[str, object]]:
    retrieval = record.retrieval
    if not retrieval.use_profile:
        return []
    return [("--use_profile", True), ("--retriever", retrieval.retriever),
            ("--retriever_model", retrieval.retriever_model), ("--num_retrieved", retrieval.num_retrieved),
            ("--is_ranked", retrieval.is_ranked)]


def _data_options(record: RunRecord, data_flag: str) -> list[tuple[str, object]]:
    return [(data_flag, record.data.data), ("--task", record.task.config), ("--split", record.task.split),
            ("--data_dir", record.data.data_dir), ("--revision", record.data.revision),
            ("--max_eval_examples", record.data.limit)]


def zero_shot_command(run: RunFolder, record: RunRecord) -> str:
    """evaluate_llm.py's command line that repeats a zero-shot run (both variants with --compare_no_profile)."""
    from generation.served_model import APPROXIMATION

    model, prompt, decoding = record.model, record.prompt, record.generation
    endpoint = run.variants[0].endpoint
    options = [*_data_options(record, "--validation_data"),
               ("--model_name", model.name), ("--base_model", model.base_model), ("--backend", model.backend),
               ("--dtype", model.dtype), ("--api_base", endpoint), ("--api_mode", model.api_mode),
               ("--tokenizer", model.prompt_tokenizer if model.prompt_tokenizer != APPROXIMATION else None),
               *_retrieval_options(record), ("--compare_no_profile", len(run.variants) > 1),
               ("--max_prompt_length", prompt.max_prompt_length), _chat_template_flag(prompt.chat_template),
               ("--chat_template_kwargs", prompt.chat_template_kwargs),
               ("--max_new_tokens", decoding.max_new_tokens), ("--do_sample", decoding.do_sample),
               ("--temperature", decoding.temperature), ("--top_p", decoding.top_p),
               ("--num_beams", decoding.num_beams), ("--seed", decoding.seed),
               ("--keep_reasoning", not decoding.strip_reasoning), ("--output_dir", "runs/" + run.config)]
    return command_line("python evaluation/evaluate_llm.py", options)


def per_user_command(record: RunRecord) -> str:
    """evaluate_per_user.py's command line that repeats a per-user run."""
    model, methods = record.model, record.per_user
    adapters, style, summary = methods.adapters, methods.style_vectors, methods.profile_summary
    options = [*_data_options(record, "--data"), ("--model_name", model.name), ("--backend", model.backend),
               ("--dtype", model.dtype), *_retrieval_options(record),
               ("--max_prompt_length", record.prompt.max_prompt_length),
               _chat_template_flag(record.prompt.chat_template),
               ("--max_new_tokens", record.generation.max_new_tokens),
               ("--adapters_dir", adapters.folder if adapters else None),
               ("--style_vectors_dir", style.folder if style else None),
               ("--style_layer", style.layer if style else None), ("--style_scale", style.scale if style else None),
               ("--use_summary", summary is not None), ("--summary_of", summary.of if summary else None),
               ("--summary_max_new_tokens", summary.max_new_tokens if summary else None),
               ("--summary_model", summary.model if summary else None),
               ("--summary_backend", summary.backend if summary else None),
               ("--output_dir", "runs/" + record.task.config)]
    return command_line("python evaluation/evaluate_per_user.py", options)


def training_command(record: RunRecord) -> str:
    """train.py's command line that repeats a training run: every recorded setting as its flag."""
    lines = ["accelerate launch training/train.py"]
    for name, value in flags_of(record).items():
        if name == "use_chat_template":
            lines.append(_chat_template_flag(value)[0])
        elif value is True:
            lines.append(f"--{name}")
        elif value is not False:
            lines.append(f"--{name} {shlex.quote(str(value))}")
    lines.append(f"--output_dir runs/{record.task.config}")
    return " \\\n    ".join(lines)


def reproduce_command(run: RunFolder) -> str:
    """The command that repeats the run, from its record (local paths shown by their last part)."""
    record = public_record(run.record)
    if run.kind == "training":
        return training_command(record)
    return per_user_command(record) if run.kind == "per_user" else zero_shot_command(run, record)


def trained_on_hub_data(run: RunFolder) -> bool:
    """`datasets:` in a model card says what the model was trained on: the Hub dataset only for a fine-tuning run
    on its rows (never for zero-shot results, nor for local data such as the bundled sample)."""
    return run.kind == "training" and dataset_identity(run.record).on_hub


def _is_seq2seq(run: RunFolder) -> bool:
    """An encoder-decoder model (its config.json), or an adapter of one (its adapter_config.json's task_type: an
    adapter folder holds no config.json)."""
    folder = run.model_dir
    if folder is None:
        return False
    if (folder / "adapter_config.json").is_file():
        return json.loads((folder / "adapter_config.json").read_text()).get("task_type") == "SEQ_2_SEQ_LM"
    config = folder / "config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("is_encoder_decoder"))


def usage(run: RunFolder, repo_id: str | None, model_at: str | None = "") -> str:
    """How to load the card's model. `model_at`: where `repo_id` holds it: "" at its root (a pushed model, or results
    pushed into the evaluated model's repository), a folder (`subfolder=`), or None when the repository holds no
    model (results of a model that lives elsewhere: its Hub id, or a placeholder for a local one)."""
    model, base = model_shown(run), public_name(base_model(run))
    fallback = model if run.kind != "training" and is_hub_id(model) else "path/to/the/model"
    name = (repo_id if model_at is not None else None) or fallback
    where = f"{name!r}, subfolder={model_at!r}" if model_at and name == repo_id else repr(name)
    auto = "AutoModelForSeq2SeqLM" if _is_seq2seq(run) else "AutoModelForCausalLM"
    if run.is_adapter:
        base = base if is_hub_id(base) else "BASE_MODEL"
        return (f"from peft import PeftModel\nfrom transformers import {auto}, AutoTokenizer\n\n"
                f"base = {auto}.from_pretrained({base!r})\nmodel = PeftModel.from_pretrained(base, {where})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({where})")
    return (f"from transformers import {auto}, AutoTokenizer\n\nmodel = {auto}.from_pretrained({where})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({where})")


def title(run: RunFolder) -> str:
    """What ran, in the card's title: "<model> on LongLaMP <config> (zero-shot, with and without profile)", "<base>
    fine-tuned for LongLaMP <config> (LoRA adapter, with profile)"."""
    if run.kind == "training":
        kind = "LoRA adapter" if run.is_adapter else "all weights"
        profile = "with profile" if run.record.retrieval.use_profile else "no profile"
        return f"{shown(model_shown(run))} fine-tuned for LongLaMP {run.config} ({kind}, {profile})"
    return f"{shown(model_shown(run))} on LongLaMP {run.config} ({what_ran(run)})"


def summary_text(run: RunFolder) -> str:
    task_title = parse_config_name(run.config)[0].title
    setting = parse_config_name(run.config)[1]
    model = model_shown(run)
    if run.kind == "training":
        kind = "a LoRA adapter for" if run.is_adapter else "a fine-tuned version of"
        items = " and items retrieved from one user's profile" if run.record.retrieval.use_profile else ""
        return (f"This model is {kind} `{model}` trained for the LongLaMP benchmark's {task_title} task ({setting} "
                f"setting): given a task input{items}, it writes the long text that this user would write.")
    how = "Results of the fine-tuned model" if run.record.model.fine_tuned else "Zero-shot results of"
    profiles = [v.record.retrieval.use_profile for v in run.variants]
    personalised = ("with retrieval-augmented personalization from the user's profile, and without it for "
                    "comparison" if len(set(profiles)) > 1 else
                    "with retrieval-augmented personalization from the user's profile" if profiles[0] else
                    "without the user's profile (the non-personalised baseline)")
    methods = run.record.per_user.methods() if run.record.per_user else []
    if methods:
        personalised = f"personalised per user with {'; '.join(methods)}, " + (
            "with retrieved profile items" if profiles[0] else "without retrieved profile items")
    return f"{how} `{model}` on the LongLaMP benchmark's {task_title} task ({setting} setting), {personalised}."


def licensed_model(run: RunFolder) -> str | None:
    """The model whose licence the card carries: the base of a fine-tuned model or adapter, else the model."""
    return base_model(run) or run.record.model.name


def card_data(run: RunFolder, source_url: str | None = None, licence: dict | None = None):
    """The card's metadata; `licence` (licence_fields) as the Hub has it for the model, else what is known locally."""
    from huggingface_hub import ModelCardData

    base = base_model(run)
    base = base if is_hub_id(base) else None  # a local base cannot be linked on the Hub
    model = model_shown(run)
    kind_tag = "fine-tuned" if run.kind == "training" or run.record.model.fine_tuned else "zero-shot"
    results = eval_results(run, source_url)
    name = (f"LongLaMP {run.config}: {model}" if run.kind != "training"
            else f"{model} fine-tuned on LongLaMP {run.config}")
    return ModelCardData(
        model_name=name if results else None,  # the name of model-index: alone, it is a stray top-level key
        base_model=base, datasets=[DATASET_ID] if trained_on_hub_data(run) else None, language=["en"],
        **(licence or known_license(licensed_model(run))),
        library_name="peft" if run.is_adapter else "transformers",
        pipeline_tag="text2text-generation" if _is_seq2seq(run) else "text-generation",
        tags=["longlamp", "personalization", parse_config_name(run.config)[0].name, run.config, kind_tag,
              *(["per-user"] if run.kind == "per_user" else [])],
        metrics=list(dict.fromkeys(METRIC_IDS.get(m, m) for v in run.variants for m in v.metrics)) or None,
        eval_results=results or None,
    )


def notes(run: RunFolder) -> str:
    lines = [f"Note: {variant_label(v)}: {v.not_scored}." for v in run.variants if v.not_scored]
    lines += [f"Note: scored during training at step {v.step} on the first {v.scores.num_samples} validation "
              "examples." for v in run.variants if v.record.kind == "training" and v.scores]
    return "\n".join(lines)


FRAMEWORKS = ("transformers", "peft", "torch", "datasets", "huggingface_hub")


def versions() -> str:
    """The installed versions of the libraries a run used (those installed), as a list."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in FRAMEWORKS:
        try:
            found.append(f"- {name} {version(name)}")
        except PackageNotFoundError:
            continue
    return "\n".join(found)


def intended_use(*runs: RunFolder) -> str:
    """What the numbers of `runs` are for and what they do not say; local data (the bundled sample) said so
    plainly."""
    text = ("For research on personalized long-text generation, and to compare with other LongLaMP results on the "
            "same config and split. The scores are automatic (ROUGE, METEOR) against the one text the user wrote: "
            "they measure overlap with it, not fluency, faithfulness or safety. A model that writes in a user's "
            "style can imitate real people: do not use it to impersonate anyone.")
    local = {dataset_identity(v.record).name for run in runs for v in run.variants
             if not dataset_identity(v.record).on_hub}
    local |= {dataset_identity(run.record).name for run in runs
              if run.kind == "training" and not dataset_identity(run.record).on_hub}
    if local:
        text += (f" Data: {shown('; '.join(sorted(local)))}, not the LongLaMP dataset on the Hub: these numbers "
                 "are not comparable with published LongLaMP results.")
    return text


def _setting_text(run: RunFolder) -> str:
    task, setting = parse_config_name(run.config)
    split_rule = ("test users are unseen in training" if setting == "user"
                  else "each user's latest items are the targets, earlier ones the profile")
    return (f"LongLaMP config `{run.config}` (`{scorer_task_name(task, setting)}` in prediction files): "
            f"{split_rule}. Every setting of the run (its run record, version {RECORD_VERSION}; "
            "docs/runs.md of the LongLaMP toolkit describes each):")


def build_card(run: RunFolder, repo_id: str | None = None, source_url: str | None = None,
               plot_file: str | None = None, licence: dict | None = None, model_at: str | None = ""):
    """The card of `run` (longlamp_runs.read_run's), its model in `repo_id` at `model_at` (`usage`); pure: reads
    files, writes nothing."""
    from huggingface_hub import ModelCard

    return ModelCard.from_template(
        card_data(run, source_url, licence), template_path=str(TEMPLATE), title=title(run), summary=summary_text(run),
        setting_text=_setting_text(run), settings_table=settings_table(run), results_table=results_table(run),
        comparison_table=comparison_table(run), plot_file=plot_file, results_note=notes(run),
        usage=usage(run, repo_id, model_at), command=reproduce_command(run), citation=CITATION,
        intended_use=intended_use(run), versions=versions(),
    )


def results_configs(run: RunFolder) -> list[dict]:
    """The `configs:` of a results dataset repository: each scored variant's per-sample scores and predictions,
    so that `load_dataset(repo, config)` and the viewer read them (the other files are not tables)."""
    configs = []
    for variant in run.variants:
        sub = "" if variant.folder == run.folder else variant.folder.relative_to(run.folder).as_posix()
        suffix = "_" + sub.replace("/", "_") if sub else ""
        folder = sub + "/" if sub else ""
        split = variant.record.task.split
        if variant.metrics:
            configs.append({"config_name": f"per_sample{suffix}",
                            "data_files": [{"split": split, "path": f"{folder}{PER_SAMPLE_FILE}"}]})
        configs.append({"config_name": f"predictions{suffix}", "field": "golds",
                        "data_files": [{"split": split, "path": f"{folder}{PREDICTIONS_FILE}"}]})
    configs[0]["default"] = True
    return configs


def build_results_dataset_card(run: RunFolder, repo_id: str | None = None, source_url: str | None = None,
                               plot_file: str | None = None):
    """The card of a results repository of type dataset: a dataset card (no model metadata, which the Hub refuses
    there) whose `configs:` make the predictions and per-sample scores loadable; pure."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from publishing.dataset_export import license_fields

    configs = results_configs(run)
    name = repo_id or "NAMESPACE/NAME"
    loading = "\n".join(f"{c['config_name']} = load_dataset({name!r}, {c['config_name']!r})" for c in configs)
    data = DatasetCardData(
        language=["en"], pretty_name=title(run), task_categories=["text-generation"],
        tags=["longlamp", "personalization", "results", parse_config_name(run.config)[0].name, run.config],
        configs=configs, **license_fields(not parse_config_name(run.config)[0].public),
    )
    source = f"\n\nThe numbers, with their record: [{source_url}]({source_url})" if source_url else ""
    return DatasetCard.from_template(
        data, template_path=str(TEMPLATE), title=title(run), summary=summary_text(run) + source,
        setting_text=_setting_text(run), settings_table=settings_table(run), results_table=results_table(run),
        comparison_table=comparison_table(run), plot_file=plot_file, results_note=notes(run),
        usage=f"from datasets import load_dataset\n\n{loading}", command=reproduce_command(run), citation=CITATION,
        intended_use=intended_use(run), versions=versions(),
    )


def build_run_card(run_dir: str | Path, repo_id: str | None = None, source_url: str | None = None):
    """The card of the training or zero-shot run in `run_dir` (the kind is detected from its files)."""
    run = read_run(run_dir)
    plot = PLOT_FILE if (Path(run_dir) / PLOT_FILE).is_file() else None
    return build_card(run, repo_id, source_url, plot)


def write_results_files(run: RunFolder) -> None:
    """Per-sample scores of each scored variant and the results plot, written into the run folder."""
    for variant in run.variants:
        write_per_sample_scores(variant)
    rows = plot_rows(run)
    if rows:
        plot_comparison(rows, run.folder / PLOT_FILE, f"{model_shown(run)} on LongLaMP {run.config}")


def write_run_card(run_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write `README.md` (with the plot and per-sample scores it refers to) into the run folder."""
    run_dir = Path(run_dir)
    write_results_files(read_run(run_dir))
    card = build_run_card(run_dir, repo_id)
    path = run_dir / CARD_FILE
    write_text_atomic(path, str(card))
    return path
