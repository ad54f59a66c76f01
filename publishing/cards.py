"""Model cards built from what a run wrote on disk: pure functions returning `huggingface_hub.ModelCard`.

The card's YAML carries the Hub metadata (base model, datasets, library, pipeline, tags) and the scores as
`model-index` (`EvalResult`), exactly the numbers of `scores.json`; `eval_result_entries` gives the same
numbers as `.eval_results/` entries. The body is rendered from `card_template.md`: what the model is for,
the setting, the results table with intervals and the paired difference, the plot, how to load it and how to
reproduce it. No machine paths and no tokens reach a card (see `runs.public_name`).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from longlamp_io import write_text_atomic
from longlamp_runs import CARD_FILE
from longlamp_tasks import CITATION, scorer_task_name
from publishing.plots import plot_comparison
from publishing.runs import DATASET_ID, Result, Run, is_hub_id, public_name, read_run
from publishing.samples import paired_difference, write_per_sample_scores
from scoring.significance import DEFAULT_RESAMPLES

TEMPLATE = Path(__file__).with_name("card_template.md")
PLOT_FILE = "results.png"
EVAL_RESULTS_FILE = ".eval_results/longlamp.yaml"
METRIC_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum",
                "meteor": "METEOR", "sacrebleu": "SacreBLEU"}
METRIC_IDS = {"rouge1": "rouge", "rouge2": "rouge", "rougeL": "rouge", "rougeLsum": "rouge", "meteor": "meteor",
              "sacrebleu": "sacrebleu"}  # the Hub's metric ids (evaluate's metric names) for the card's `metrics`
# Training settings that describe the run's outcome or its machine, not how to repeat it.
NOT_FLAGS = {"global_step", "best_metric", "best_step", "metrics", "output_dir", "resume_from_checkpoint",
             "push_to_hub", "hub_model_id", "hub_private", "hub_revision", "hub_strategy", "hub_token",
             "merged_from_adapter"}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def eval_results(run: Run, source_url: str | None = None) -> list:
    """One `EvalResult` per variant and metric, with the values exactly as scored (model-index).

    huggingface_hub groups model-index results by task, dataset, config, split and revision, so the variants
    (with profile, without) are told apart per metric: by `metric_args` (use_profile, retriever, k) and the name.
    """
    from huggingface_hub import EvalResult

    revision = run.settings.get("revision")
    return [
        EvalResult(task_type="text-generation", task_name="Personalized long-text generation", dataset_type=DATASET_ID,
                   dataset_name=f"LongLaMP {run.config_name}", dataset_config=run.config_name,
                   dataset_split=result.split, dataset_revision=revision, metric_type=metric,
                   metric_name=f"{metric_name(metric)} ({result.label})", metric_args=result.retrieval,
                   metric_value=value,
                   source_name="LongLaMP toolkit scorer" if source_url else None, source_url=source_url)
        for result in run.results for metric, value in result.metrics.items()
    ]


def eval_result_entries(run: Run, source_url: str | None = None) -> list:
    """The same numbers as huggingface_hub `EvalResultEntry`s for `.eval_results/longlamp.yaml`.

    LongLaMP is not a registered Hub benchmark, so `task_id` is the config name and `notes` say which metric,
    split and variant each value is.
    """
    from huggingface_hub import EvalResultEntry

    return [
        EvalResultEntry(dataset_id=DATASET_ID, task_id=run.config_name, value=value,
                        dataset_revision=run.settings.get("revision"), source_url=source_url,
                        source_name="LongLaMP toolkit scorer" if source_url else None,
                        notes=f"{metric}; split {result.split}; {result.label}; n={result.num_samples}")
        for result in run.results for metric, value in result.metrics.items()
    ]


def eval_results_yaml(run: Run, source_url: str | None = None) -> str:
    import yaml
    from huggingface_hub import eval_result_entries_to_yaml

    return yaml.safe_dump(eval_result_entries_to_yaml(eval_result_entries(run, source_url)), sort_keys=False)


def plot_rows(run: Run) -> list[dict]:
    """The rows of the results plot: one bar per variant and metric, grouped by metric."""
    rows = []
    for result in run.results:
        for metric, value in result.metrics.items():
            interval = result.intervals.get(metric, {})
            rows.append({"label": result.label, "group": metric_name(metric), "value": value,
                         "low": interval.get("low"), "high": interval.get("high")})
    return rows


def _value(result: Result, metric: str) -> str:
    if metric not in result.metrics:
        return "-"
    interval = result.intervals.get(metric)
    shown = f"{result.metrics[metric]:.4f}"
    return f"{shown} [{interval['low']:.4f}, {interval['high']:.4f}]" if interval else shown


def results_table(run: Run) -> str:
    metrics = list(dict.fromkeys(m for r in run.results for m in r.metrics))
    if not metrics:
        return "Not scored (see the note below)." if any(r.note for r in run.results) else "Not scored."
    header = ["variant", "split", "examples"] + [metric_name(m) for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in run.results:
        cells = [result.label, result.split, str(result.num_samples or "-")] + [_value(result, m) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(run: Run) -> str:
    if len(run.results) < 2:
        return ""
    differences = paired_difference(run.results[0], run.results[1])
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


def personalization_text(settings: dict) -> str | None:
    """The per-user methods of an evaluate_per_user.py run (its settings' `personalization`), in words."""
    described = []
    for name, details in (settings.get("personalization") or {}).items():
        if name == "style_vectors":
            described.append(f"style vectors (layer {details.get('layer')}, scale {details.get('scale')})")
        elif name == "profile_summary":
            described.append(f"a summary of the {details.get('of')} in the prompt")
        else:
            described.append("one LoRA adapter per user (OPPU)")
    return "; ".join(described) or None


def _settings_rows(run: Run) -> dict:
    s = run.settings
    retrieval = "none (no profile)"
    if s.get("use_profile"):
        retrieval = f"{s.get('retriever')}, k={s.get('num_retrieved')}" + (", pre-ranked" if s.get("is_ranked") else "")
    if run.kind == "zero_shot":
        return {"model": run.model, "retrieval": retrieval, "per-user personalisation": personalization_text(s),
                "prompt budget (tokens)": s.get("max_prompt_tokens"),
                "chat template": s.get("chat_template"), "backend / dtype": f"{s.get('backend')} / {s.get('dtype')}",
                "generation": ", ".join(f"{k}={s[k]}" for k in ("max_new_tokens", "do_sample", "temperature",
                                                                "top_p", "num_beams", "seed") if k in s)}
    tuning = (f"LoRA r={s.get('lora_r')}, alpha={s.get('lora_alpha')}, dropout={s.get('lora_dropout')}"
              + (", 4-bit base (QLoRA)" if s.get("load_in_4bit") else "") if s.get("use_lora") else "all weights")
    return {"base model": run.base_model, "fine-tuning": tuning, "retrieval": retrieval,
            "prompt / target budget (tokens)": f"{s.get('max_prompt_length')} / {s.get('max_target_length')}",
            "optimisation": (f"lr {s.get('learning_rate')} ({s.get('lr_scheduler')}), batch "
                             f"{s.get('per_device_train_batch_size')} x {s.get('gradient_accumulation_steps')} "
                             f"accumulation per process, {s.get('num_train_epochs')} epoch(s), max_steps "
                             f"{s.get('max_steps')}, weight decay {s.get('weight_decay')}, seed {s.get('seed')}"),
            "steps trained": s.get("global_step"),
            "hardware": (f"{s.get('num_processes', 1)} process(es), mixed precision "
                         f"{s.get('mixed_precision') or 'as configured'}, dtype {s.get('model_dtype')}"),
            "best checkpoint": f"{s.get('metric_for_best_model')} {s.get('best_metric')} at step {s.get('best_step')}"}


def per_user_command(run: Run) -> str:
    """evaluate_per_user.py's command line for a per-user run (its adapter and vector folders by their last part)."""
    s, methods = run.settings, run.settings["personalization"]
    retriever = s.get("retriever")
    options = [("--data", s.get("data")), ("--split", s.get("split")), ("--model_name", run.model),
               ("--max_prompt_length", s.get("max_prompt_tokens")), ("--max_new_tokens", s.get("max_new_tokens")),
               ("--use_profile", s.get("use_profile")),
               ("--retriever", (retriever.get("name") if isinstance(retriever, dict) else retriever)
                if s.get("use_profile") else None),
               ("--num_retrieved", s.get("num_retrieved") if s.get("use_profile") else None),
               ("--adapters_dir", methods.get("per_user_adapters", {}).get("folder")),
               ("--style_vectors_dir", methods.get("style_vectors", {}).get("folder")),
               ("--style_layer", methods.get("style_vectors", {}).get("layer")),
               ("--style_scale", methods.get("style_vectors", {}).get("scale")),
               ("--use_summary", "profile_summary" in methods),
               ("--summary_of", methods.get("profile_summary", {}).get("of")),
               ("--backend", s.get("backend")), ("--output_dir", "runs/" + run.config_name)]
    return command_line("python evaluation/evaluate_per_user.py", options)


def command_line(program: str, options: list[tuple[str, object]]) -> str:
    """`program` with each flag: alone when True, with its value (a local path by its last part) when set."""
    parts = program.split()
    for flag, value in options:
        if value is True:
            parts.append(flag)
        elif value is not None and value is not False:
            parts += [flag, public_name(value)]
    return " ".join(shlex.quote(str(p)) for p in parts)


def _table(rows: dict) -> str:
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows.items() if value not in (None, "")]
    return "\n".join(lines)


def reproduce_command(run: Run) -> str:
    """The command that repeats the run, from its recorded settings (local paths shown by their last part)."""
    s = run.settings
    if s.get("personalization"):
        return per_user_command(run)
    if run.kind == "zero_shot":
        retriever = s.get("retriever")
        options = [("--validation_data", s.get("data")), ("--split", s.get("split")), ("--model_name", run.model),
                   ("--base_model", s.get("base_model")), ("--max_prompt_length", s.get("max_prompt_tokens")),
                   ("--max_new_tokens", s.get("max_new_tokens")), ("--num_beams", s.get("num_beams")),
                   ("--do_sample", s.get("do_sample")), ("--temperature", s.get("temperature") if s.get("do_sample")
                                                         else None),
                   ("--top_p", s.get("top_p") if s.get("do_sample") else None), ("--seed", s.get("seed")),
                   ("--use_profile", s.get("use_profile")),
                   ("--retriever", (retriever.get("name") if isinstance(retriever, dict) else retriever)
                    if s.get("use_profile") else None),
                   ("--num_retrieved", s.get("num_retrieved") if s.get("use_profile") else None),
                   ("--is_ranked", s.get("is_ranked")), ("--compare_no_profile", len(run.results) > 1),
                   ("--no_use_chat_template", s.get("chat_template") is False),
                   ("--output_dir", "runs/" + run.config_name)]
        return command_line("python evaluation/evaluate_llm.py", options)
    lines = ["accelerate launch training/train.py"]
    for key, value in s.items():
        if key in NOT_FLAGS or value is None or value is False or isinstance(value, (dict, list)):
            continue  # False: every boolean flag defaults to off
        lines.append(f"--{key}" if value is True else f"--{key} {shlex.quote(str(value))}")
    lines.append(f"--output_dir runs/{run.config_name}")
    return " \\\n    ".join(lines)


def _is_seq2seq(run: Run) -> bool:
    config = run.model_dir / "config.json" if run.model_dir else None
    return bool(config and config.is_file() and json.loads(config.read_text()).get("is_encoder_decoder"))


def usage(run: Run, repo_id: str | None) -> str:
    fallback = run.model if run.kind == "zero_shot" and is_hub_id(run.model) else "path/to/the/model"
    name = repo_id or fallback
    auto = "AutoModelForSeq2SeqLM" if _is_seq2seq(run) else "AutoModelForCausalLM"
    if run.is_adapter:
        base = run.base_model if is_hub_id(run.base_model) else "BASE_MODEL"
        return (f"from peft import PeftModel\nfrom transformers import {auto}, AutoTokenizer\n\n"
                f"base = {auto}.from_pretrained({base!r})\nmodel = PeftModel.from_pretrained(base, {name!r})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({name!r})")
    return (f"from transformers import {auto}, AutoTokenizer\n\nmodel = {auto}.from_pretrained({name!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({name!r})")


def card_data(run: Run, source_url: str | None = None):
    from huggingface_hub import ModelCardData

    base = run.base_model if is_hub_id(run.base_model) else None  # a local base cannot be linked on the Hub
    return ModelCardData(
        model_name=f"LongLaMP {run.config_name}: {run.model}" if run.kind == "zero_shot"
        else f"{run.model} fine-tuned on LongLaMP {run.config_name}",
        base_model=base, datasets=[DATASET_ID], language=["en"], license=run.license,
        library_name="peft" if run.is_adapter else "transformers",
        pipeline_tag="text2text-generation" if _is_seq2seq(run) else "text-generation",
        tags=["longlamp", "personalization", run.task.name, run.config_name], metrics=list(
            dict.fromkeys(METRIC_IDS.get(m, m) for r in run.results for m in r.metrics)) or None,
        eval_results=eval_results(run, source_url) or None,
    )


def build_card(run: Run, repo_id: str | None = None, source_url: str | None = None, plot_file: str | None = None):
    """The card of `run` (a `publishing.runs.Run`); pure: reads files, writes nothing."""
    from huggingface_hub import ModelCard

    task_title = run.task.title
    if run.kind == "zero_shot":
        title = f"{run.model} on LongLaMP {run.config_name} (zero-shot)"
        summary = (f"Zero-shot results of `{run.model}` on the LongLaMP benchmark's {task_title} task "
                   f"({run.setting} setting), with retrieval-augmented personalization from the user's profile.")
    else:
        kind = "a LoRA adapter for" if run.is_adapter else "a fine-tuned version of"
        title = f"{run.model} fine-tuned for LongLaMP {run.config_name}"
        summary = (f"This model is {kind} `{run.base_model}` trained for the LongLaMP benchmark's {task_title} "
                   f"task ({run.setting} setting): given a task input and items retrieved from one user's "
                   "profile, it writes the long text that this user would write.")
    split_rule = ("test users are unseen in training" if run.setting == "user"
                  else "each user's latest items are the targets, earlier ones the profile")
    setting_text = (f"LongLaMP config `{run.config_name}` (`{scorer_task_name(run.task, run.setting)}` in prediction "
                    f"files): {split_rule}.")
    notes = [f"Note: {r.label}: {r.note}." for r in run.results if r.note]
    return ModelCard.from_template(
        card_data(run, source_url), template_path=str(TEMPLATE), title=title, summary=summary,
        setting_text=setting_text, settings_table=_table(_settings_rows(run)), results_table=results_table(run),
        comparison_table=comparison_table(run), plot_file=plot_file, results_note="\n".join(notes),
        usage=usage(run, repo_id), command=reproduce_command(run), citation=CITATION,
    )


def build_run_card(run_dir: str | Path, repo_id: str | None = None, source_url: str | None = None):
    """The card of the training or zero-shot run in `run_dir` (the kind is detected from its files)."""
    run = read_run(run_dir)
    plot = PLOT_FILE if (Path(run_dir) / PLOT_FILE).is_file() else None
    return build_card(run, repo_id, source_url, plot)


def write_results_files(run: Run) -> None:
    """Per-sample scores of each scored variant and the results plot, written into the run folder."""
    for result in run.results:
        write_per_sample_scores(result)
    rows = plot_rows(run)
    if rows:
        plot_comparison(rows, run.folder / PLOT_FILE, f"{run.model} on LongLaMP {run.config_name}")


def write_run_card(run_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write `README.md` (with the plot and per-sample scores it refers to) into the run folder."""
    run_dir = Path(run_dir)
    write_results_files(read_run(run_dir))
    card = build_run_card(run_dir, repo_id)
    path = run_dir / CARD_FILE
    write_text_atomic(path, str(card))
    return path
