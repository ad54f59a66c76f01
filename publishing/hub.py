"""The only module that talks to the Hub: stage a run's publishable files, then one `upload_folder` commit.

huggingface_hub is imported lazily (cards and exports work without a network), the token comes from the usual
places (`token=`, `HF_TOKEN`, `hf auth login`) and never reaches a file, a log line or an error message, and only
the main process of a multi-process job uploads. A push is one commit of a staged folder: a failed upload
leaves every local file as it was, and the same push again writes the same files (nothing is duplicated).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from longlamp_errors import PublishError
from longlamp_io import write_json_atomic
from longlamp_runs import (
    CARD_FILE,
    COMPARISON_FILE,
    FINAL_DIR,
    PER_SAMPLE_FILE,
    PREDICTIONS_FILE,
    PROMPTS_FILE,
    PUBLISHED_RESULTS_DIR,
    PUBLISHED_SUMMARY_FILE,
    RunFolder,
    Variant,
    read_run,
    write_model_record,
)
from longlamp_tasks import parse_config_name
from publishing.cards import (
    EVAL_RESULTS_FILE,
    PLOT_FILE,
    build_card,
    eval_results_yaml,
    results_table,
    write_results_files,
)
from publishing.runs import public_name, public_record, what_ran

logger = logging.getLogger(__name__)
REPO_TYPES = ("model", "dataset")
CHECKPOINT_PATH = "last-checkpoint"  # where `hub_strategy checkpoint` keeps the newest checkpoint, as HF Trainer
STAGING_MARKER = ".longlamp-staged"  # marks a folder stage_run may replace; never uploaded
ZERO_SHOT_FILES = (PREDICTIONS_FILE, PROMPTS_FILE, PER_SAMPLE_FILE)  # never GOLDS_FILE
LICENCE_WARNING = ("The email task derives from the Avocado Research Email Collection (LDC2015T03), licensed by the "
                   "LDC: its texts (in prompts, predictions and data) may not be redistributed publicly.")


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed job (torchrun and accelerate set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_repo_id(repo_id: str) -> None:
    parts = (repo_id or "").split("/")
    if len(parts) != 2 or not all(parts):
        raise PublishError(f"--hub_model_id {repo_id!r} must be NAMESPACE/NAME (a user or organisation, and a name)")


def _link_or_copy(source: Path, target: Path) -> None:
    """Stage a file without doubling the disk for weights: a hard link where possible, else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # never write through a hard link into the run's own file
    path.write_text(text, encoding="utf-8")


def _results_json(run: RunFolder, variant: Variant) -> dict:
    """A variant's scores.json with its record without machine paths (no golds are in it)."""
    summary = json.loads(variant.summary_file.read_text(encoding="utf-8"))
    summary["settings"] = public_record(variant.record).to_dict()
    summary["data_source"] = {"dataset": "LongLaMP/LongLaMP", "config": run.config,
                              "revision": variant.record.data.revision}
    return summary


def stage_run(run_dir: str | Path, staging: str | Path, repo_id: str | None = None, repo_type: str = "model",
              revision: str | None = None) -> Path:
    """Write into `staging` exactly the files a push of `run_dir` uploads (the card, plot, results, model)."""
    run = read_run(run_dir)
    write_results_files(run)
    staging = Path(staging)
    if staging.exists() and any(staging.iterdir()):
        if not (staging / STAGING_MARKER).is_file():
            raise PublishError(f"{staging} exists and is not a folder staged for upload: choose an empty or new folder")
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    (staging / STAGING_MARKER).touch()
    prefix = ""
    if run.kind != "training" and repo_type == "model":
        prefix = f"{PUBLISHED_RESULTS_DIR}/{run.config}/"  # beside the evaluated model's own files, not over them
    if run.kind == "training":
        if run.model_dir is None:
            raise PublishError(f"{run_dir}: no {FINAL_DIR}/ model to push (a training run not finished yet, or a "
                               "published copy)")
        for path in sorted(p for p in run.model_dir.rglob("*") if p.is_file()):
            _link_or_copy(path, staging / path.relative_to(run.model_dir))
        outcome = dataclasses.replace(run.outcome, merged_from_adapter=public_name(run.outcome.merged_from_adapter))
        write_model_record(staging, public_record(run.record), outcome)  # the record without local paths
        if run.test_predictions is not None:
            _link_or_copy(run.test_predictions, staging / run.test_predictions.name)
    for variant in run.variants:  # results scored from predictions on disk
        sub = "" if variant.folder == run.folder else variant.folder.relative_to(run.folder).as_posix() + "/"
        for name in ZERO_SHOT_FILES:
            if (variant.folder / name).is_file():
                _link_or_copy(variant.folder / name, staging / f"{prefix}{sub}{name}")
        write_json_atomic(staging / f"{prefix}{sub}{PUBLISHED_SUMMARY_FILE}", _results_json(run, variant))
    if (run.folder / COMPARISON_FILE).is_file():
        _link_or_copy(run.folder / COMPARISON_FILE, staging / f"{prefix}{COMPARISON_FILE}")
    plot = None
    if (run.folder / PLOT_FILE).is_file():
        plot = prefix + PLOT_FILE
        _link_or_copy(run.folder / PLOT_FILE, staging / plot)
    source_url = None
    if repo_id:
        from huggingface_hub import constants

        source = prefix + PUBLISHED_SUMMARY_FILE
        source = source if (staging / source).is_file() else CARD_FILE
        kind = "" if repo_type == "model" else "datasets/"
        source_url = f"{constants.ENDPOINT}/{kind}{repo_id}/blob/{revision or 'main'}/{source}"
    card = build_card(run, repo_id if repo_type == "model" else None, source_url, plot)
    _write_text(staging / CARD_FILE, str(card))
    if any(variant.metrics for variant in run.variants):
        name = EVAL_RESULTS_FILE if not prefix else EVAL_RESULTS_FILE.replace(".yaml", f"_{run.config}.yaml")
        _write_text(staging / name, eval_results_yaml(run, source_url))
    return staging


def _failure(action: str, repo_id: str, error: Exception, token: str | None, local: Path) -> PublishError:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if token:
        message = message.replace(token, "***")
    return PublishError(f"{action} {repo_id} failed: {message}. Nothing local was changed ({local} is intact); run "
                        "the same command again to complete the upload")


def _network_errors() -> tuple:
    from huggingface_hub.errors import HfHubHTTPError

    return (OSError, *HfHubHTTPError.__bases__)  # HTTP errors, and httpx's connection errors (its HTTPError base)


def upload(folder: Path, repo_id: str, *, repo_type: str = "model", private: bool = False, revision: str | None = None,
           token: str | None = None, path_in_repo: str | None = None, delete_patterns: str | None = None,
           commit_message: str = "Upload from the LongLaMP toolkit", local: Path | None = None) -> str:
    """Create the repository (and branch) if needed and commit `folder` in one commit; returns the repo URL."""
    check_repo_id(repo_id)
    if repo_type not in REPO_TYPES:
        raise PublishError(f"--hub_repo_type {repo_type!r} is not one of: {', '.join(REPO_TYPES)}")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        # private=None (not False) when not asked: an organisation's default visibility then applies
        url = api.create_repo(repo_id, repo_type=repo_type, private=True if private else None, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type, revision=revision,
                          path_in_repo=path_in_repo, delete_patterns=delete_patterns, commit_message=commit_message,
                          ignore_patterns=[STAGING_MARKER])
    except _network_errors() as error:
        raise _failure("uploading to", repo_id, error, token, local or folder) from None
    logger.info("pushed %s to %s", local or folder, url)
    return str(url)


def push_run(run_dir: str | Path, repo_id: str, *, repo_type: str = "model", private: bool = False,
             revision: str | None = None, token: str | None = None, dry_run_dir: str | Path | None = None,
             public_despite_license: bool = False) -> str:
    """Publish a training or zero-shot run folder: the model (or adapter) or the results, with card and plot.

    `dry_run_dir`: write the folder that would be uploaded there and upload nothing (returns that folder).
    Returns the repository URL; "" on a non-main process, which does nothing.
    """
    if not is_main_process():
        return ""
    check_repo_id(repo_id)
    run = read_run(run_dir)
    if not parse_config_name(run.config)[0].public and not private and not public_despite_license:
        raise PublishError(f"{LICENCE_WARNING} Push it with --private (or hub_private), or accept the licence terms "
                           "yourself with --public_despite_license")
    if dry_run_dir is not None:
        return str(stage_run(run_dir, dry_run_dir, repo_id, repo_type, revision))
    with tempfile.TemporaryDirectory(prefix="longlamp-push-") as staging:
        folder = stage_run(run_dir, Path(staging) / "repo", repo_id, repo_type, revision)
        if run.kind != "training" and repo_type == "model":
            _merge_model_card(folder, run, repo_id, revision, token)
        return upload(folder, repo_id, repo_type=repo_type, private=private, revision=revision, token=token,
                      commit_message=f"LongLaMP {run.kind.replace('_', '-')} run ({run.config})",
                      local=Path(run_dir))


def _merge_model_card(folder: Path, run: RunFolder, repo_id: str, revision: str | None, token: str | None) -> None:
    """Results pushed into an existing model repository keep its card: our results join its model-index
    (replacing earlier ones of the same config, split, metric and variant) and its body gains (or renews) one
    section per config; our full card goes to longlamp/<config>/README.md."""
    from huggingface_hub import ModelCard, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    existing = None
    for where in dict.fromkeys([revision, None]):  # a branch not created yet starts from main's card
        try:
            path = hf_hub_download(repo_id, CARD_FILE, repo_type="model", revision=where, token=token)
            existing = ModelCard.load(path)
            break
        except (EntryNotFoundError, RepositoryNotFoundError):
            return  # a new repository, or one without a card: ours is its card
        except RevisionNotFoundError:
            continue
        except _network_errors() as error:
            raise _failure("reading the card of", repo_id, error, token, run.folder) from None
    if existing is None:
        return
    ours = ModelCard((folder / CARD_FILE).read_text(encoding="utf-8"))
    prefix = f"{PUBLISHED_RESULTS_DIR}/{run.config}/"
    _write_text(folder / prefix / CARD_FILE, str(ours))

    def key(result):
        return (result.dataset_config, result.dataset_split, result.metric_type, str(result.metric_args))

    new = ours.data.eval_results or []
    replaced = {key(r) for r in new}
    existing.data.eval_results = [r for r in existing.data.eval_results or [] if key(r) not in replaced] + new
    if existing.data.model_name is None:
        existing.data.model_name = repo_id
    start, end = f"<!-- longlamp:{run.config} -->", f"<!-- /longlamp:{run.config} -->"
    section = (f"{start}\n## LongLaMP {run.config} ({what_ran(run)})\n\n{results_table(run)}\n\n"
               f"![LongLaMP results]({prefix}{PLOT_FILE})\n\nDetails, predictions and per-sample scores: "
               f"[{prefix}{CARD_FILE}]({prefix}{CARD_FILE})\n{end}")
    text = existing.text
    text = (text[:text.index(start)] + section + text[text.index(end) + len(end):] if start in text and end in text
            else text.rstrip() + "\n\n" + section + "\n")
    existing.text = text
    _write_text(folder / CARD_FILE, str(existing))


def push_checkpoint(checkpoint_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                    token: str | None = None) -> str:
    """Replace `last-checkpoint/` in the model repository with this checkpoint, so a preempted job can resume
    from the Hub (download it, then `--resume_from_checkpoint <folder>`).

    A failed checkpoint push is logged and training goes on: the next checkpoint replaces it anyway.
    """
    if not is_main_process():
        return ""
    checkpoint_dir = Path(checkpoint_dir)
    try:
        return upload(checkpoint_dir, repo_id, private=private, revision=revision, token=token,
                      path_in_repo=CHECKPOINT_PATH, delete_patterns="*",
                      commit_message=f"Checkpoint {checkpoint_dir.name}", local=checkpoint_dir)
    except PublishError as error:
        logger.warning("checkpoint not pushed, training goes on: %s", error)
        return ""


def finish_training_run(output_dir: str | Path, *, push: bool = False, repo_id: str | None = None,
                        private: bool = False, revision: str | None = None, token: str | None = None) -> str | None:
    """End of a training run (main process): write its card into `output_dir`, then push it when asked.

    A failed push leaves the trained model in place; the error says how to push it again.
    """
    from publishing.cards import write_run_card

    write_run_card(output_dir, repo_id)
    if not push:
        return None
    try:
        return push_run(output_dir, repo_id, private=private, revision=revision, token=token)
    except PublishError as error:
        raise PublishError(f"{error} (or: python evaluation/push_results.py --run_dir {output_dir} --hub_model_id "
                           f"{repo_id})") from None
