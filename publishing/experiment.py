"""The card of an experiment's repository (scripts/run_benchmark.py --push_to_hub): a pure function of the runs'
records, like a run's card (cards.py), whose pieces it reuses.

The repository holds every run of the grid in its own folder (`runs/<config>/<model>/<variant>/`: `evaluation/`,
and `model/` for a fine-tuned model); the root README.md is what the Hub reads. Its metadata covers the whole grid:
one model-index result per run and metric (each run's `cards.eval_results`, told apart by the experiment's name for
its model), the base model when the repository holds fine-tuned models of exactly one (several would read as a
merge), the licence the evaluated models share, the Hub dataset as training data only when a model here was trained
on its rows. The root holds no model, so it names no library or pipeline, and its snippets load each model from its
own folder (`subfolder=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from longlamp_runs import CARD_FILE, PREDICTIONS_FILE, PUBLISHED_SUMMARY_FILE, RunFolder
from longlamp_tasks import CITATION, parse_config_name
from publishing.cards import (
    METRIC_IDS,
    base_model,
    eval_result_entries,
    eval_results,
    intended_use,
    licensed_model,
    model_shown,
    shown,
    trained_on_hub_data,
    usage,
    versions,
)
from publishing.runs import DATASET_ID, is_hub_id, known_license

TEMPLATE = Path(__file__).with_name("experiment_card_template.md")
EVALUATION_DIR = "evaluation"  # in a run's folder of the repository: its generations, scores and card
MODEL_DIR = "model"  # in a fine-tuned run's folder: the model or adapter


@dataclass(frozen=True)
class PublishedRun:
    """One run of the grid as the repository holds it: `folder` its folder there, `system` the experiment's name for
    its model, `setting` how it personalises ("bm25 k=2", "no profile"), `evaluation` its generation run and
    `training` the fine-tuning run whose model lies in `folder/model/` (None for a model that is not here)."""

    folder: str
    system: str
    setting: str
    evaluation: RunFolder
    training: RunFolder | None = None

    def path(self, name: str) -> str:
        return evaluation_file(self.folder, name)

    @property
    def model_folder(self) -> str | None:
        return f"{self.folder}/{MODEL_DIR}" if self.training is not None else None

    @property
    def licensed_model(self) -> str | None:
        """The model whose licence applies: a fine-tuned model's base, else the model evaluated."""
        return licensed_model(self.training or self.evaluation)


def evaluation_file(folder: str, name: str = PUBLISHED_SUMMARY_FILE) -> str:
    """A file of the run in `folder` of the repository: by default the one its numbers come from (its scores with
    their record)."""
    return f"{folder}/{EVALUATION_DIR}/{name}"


def root_eval_results(runs: list[PublishedRun], urls: dict[str, str]) -> list:
    """Every run's model-index results (`urls`: each run's folder -> its source URL)."""
    return [result for run in runs for result in eval_results(run.evaluation, urls.get(run.folder), run.system)]


def root_eval_result_entries(runs: list[PublishedRun], urls: dict[str, str]) -> list:
    """Every run's `.eval_results` entries (those scored on the Hub dataset), for the root's file."""
    return [entry for run in runs for entry in eval_result_entries(run.evaluation, urls.get(run.folder), run.system)]


def shared_licence(runs: list[PublishedRun], licences: dict[str, dict]) -> dict:
    """The licence of the models the runs evaluate (a fine-tuned model's base), when they share one: `licences` as
    the Hub has them (publishing.hub.hub_licence), else what is known locally."""
    found = [licences.get(model) or known_license(model) for model in dict.fromkeys(run.licensed_model
                                                                                     for run in runs)]
    return found[0] if found and all(licence and licence == found[0] for licence in found) else {}


def card_data(name: str, runs: list[PublishedRun], urls: dict[str, str], licences: dict[str, dict]):
    from huggingface_hub import ModelCardData

    trained = [run.training for run in runs if run.training is not None]
    bases = list(dict.fromkeys(base_model(run) for run in trained))
    configs = list(dict.fromkeys(run.evaluation.config for run in runs))
    kinds = ["fine-tuned" if run.evaluation.record.model.fine_tuned else "zero-shot" for run in runs]
    results = root_eval_results(runs, urls)
    return ModelCardData(
        model_name=f"LongLaMP {name}" if results else None, language=["en"],
        base_model=bases[0] if len(bases) == 1 and is_hub_id(bases[0]) else None,
        datasets=[DATASET_ID] if any(trained_on_hub_data(run) for run in trained) else None,
        **shared_licence(runs, licences),
        tags=["longlamp", "personalization", "results",
              *dict.fromkeys(parse_config_name(config)[0].name for config in configs), *configs,
              *dict.fromkeys(kinds), *(["per-user"] if any(run.evaluation.kind == "per_user" for run in runs) else [])],
        metrics=list(dict.fromkeys(METRIC_IDS.get(m, m) for run in runs for v in run.evaluation.variants
                                   for m in v.metrics)) or None,
        eval_results=results or None,
    )


def runs_table(runs: list[PublishedRun]) -> str:
    lines = ["| config | model | setting | evaluated model | card | model files |", "|---|---|---|---|---|---|"]
    for run in runs:
        files = f"[{MODEL_DIR}/]({run.model_folder}/{CARD_FILE})" if run.model_folder else "-"
        evaluated = shown(model_shown(run.training or run.evaluation))
        kind = "fine-tuned " if run.evaluation.record.model.fine_tuned else ""
        lines.append(f"| {run.evaluation.config} | {run.system} | {run.setting} | {kind}{evaluated} | "
                     f"[{CARD_FILE}]({run.path(CARD_FILE)}) | {files} |")
    return "\n".join(lines)


def usage_text(repo_id: str, runs: list[PublishedRun]) -> str:
    """The results, then each model this repository holds, loaded from its own folder."""
    from huggingface_hub import constants

    first = runs[0]
    text = ("The results of every run (`results.json`) and one run's predictions:\n\n```python\nimport json\n\n"
            "from huggingface_hub import hf_hub_download\n\n"
            f"results = json.load(open(hf_hub_download({repo_id!r}, {PUBLISHED_SUMMARY_FILE!r})))\n"
            f"predictions = json.load(open(hf_hub_download({repo_id!r}, {first.path(PREDICTIONS_FILE)!r})))\n```")
    for run in runs:
        if run.training is None:
            continue
        text += (f"\n\n{run.system}, {run.setting} (`{run.model_folder}`):\n\n```python\n"
                 f"{usage(run.training, repo_id, run.model_folder)}\n```")
    elsewhere = sorted({model_shown(run.evaluation) for run in runs if run.training is None})
    if elsewhere:
        hub = [f"[{model}]({constants.ENDPOINT}/{model})" for model in elsewhere if is_hub_id(model)]
        local = [shown(model) for model in elsewhere if not is_hub_id(model)]
        text += ("\n\nThe models evaluated as they are (not fine-tuned here) are not in this repository: "
                 + ", ".join(hub + [f"{model} (a local folder)" for model in local]) + ".")
    return text


REPRODUCE = ("Each run's card gives the exact command that repeats it (local paths as `<local>/NAME`). The whole grid "
             "is one command of the LongLaMP toolkit, `python scripts/run_benchmark.py --config EXPERIMENT.yaml`, with "
             "the experiment file that names these models, retrievers and settings.")


def build_experiment_card(name: str, runs: list[PublishedRun], results: str, repo_id: str, urls: dict[str, str],
                          licences: dict[str, dict] | None = None):
    """The root card of an experiment's repository; `results` the results table in Markdown (with its legend and
    plots), `urls` each run's source URL by folder, `licences` the Hub's licence of each evaluated model; pure."""
    from huggingface_hub import ModelCard

    configs = sorted({run.evaluation.config for run in runs})
    systems = list(dict.fromkeys(run.system for run in runs))
    summary = (f"{len(runs)} runs of the LongLaMP benchmark: {', '.join(systems)} on {', '.join(configs)}, each "
               "without profile and with each personalization setting, with every number's 95% interval and the "
               "paired difference against the same model without profile.")
    return ModelCard.from_template(
        card_data(name, runs, urls, licences or {}), template_path=str(TEMPLATE),
        title=f"LongLaMP experiment {name}", summary=summary, results=results, runs_table=runs_table(runs),
        usage=usage_text(repo_id, runs), reproduce=REPRODUCE,
        intended_use=intended_use(*[run.evaluation for run in runs], *[run.training for run in runs if run.training]),
        versions=versions(), citation=CITATION,
    )
