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

from longlamp_cli import limit_hub_requests
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
    blob_url,
    build_card,
    build_results_dataset_card,
    entries_yaml,
    eval_result_entries,
    licensed_model,
    model_shown,
    plot_rows,
    results_table,
)
from publishing.plots import plot_comparison
from publishing.runs import (
    dataset_identity,
    is_hub_id,
    known_license,
    licence_fields,
    public_name,
    public_record,
    what_ran,
)
from publishing.samples import write_per_sample_scores

logger = logging.getLogger(__name__)
REPO_TYPES = ("model", "dataset")
CHECKPOINT_PATH = "last-checkpoint"  # where `hub_strategy checkpoint` keeps the newest checkpoint, as HF Trainer
STAGING_MARKER = ".longlamp-staged"  # marks a folder stage_run may replace; never uploaded
ADAPTER_CONFIG_FILE = "adapter_config.json"  # PEFT's name
ADAPTER_ONLY_KEY = "longlamp_trainable_only"  # safetensors metadata of a pushed checkpoint's adapter-only weights
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
    """A variant's scores.json with its record without machine paths (no golds are in it), and the data it was
    scored on as the Hub names it (`dataset_identity`: LongLaMP/LongLaMP only for rows from the Hub)."""
    summary = json.loads(variant.summary_file.read_text(encoding="utf-8"))
    summary["settings"] = public_record(variant.record).to_dict()
    data = dataset_identity(variant.record)
    summary["data_source"] = {"dataset": data.type, "name": data.name, "config": data.config, "split": data.split,
                              "revision": data.revision}
    return summary


def _portable_adapter_config(source: Path, target: Path) -> None:
    """adapter_config.json with the base model named by its Hub id, or not at all when it was a local folder: the
    local path stays in the run's own copy (the merged export reads it)."""
    config = json.loads(source.read_text(encoding="utf-8"))
    if not is_hub_id(config.get("base_model_name_or_path")):
        config.pop("base_model_name_or_path", None)
    write_json_atomic(target, config)


def _stage_model_file(path: Path, target: Path) -> None:
    if path.name == ADAPTER_CONFIG_FILE:
        _portable_adapter_config(path, target)
    else:
        _link_or_copy(path, target)


def stage_run(run_dir: str | Path, staging: str | Path, repo_id: str | None = None, repo_type: str = "model",
              revision: str | None = None, path_in_repo: str | None = None, model_at: str | None = "") -> Path:
    """Write into `staging` exactly the files a push of `run_dir` uploads (the card, plot, results, model); the
    run folder itself is only read.

    `path_in_repo`: the folder of the repository the staging goes to, one run's own (an experiment's): its files
    then lie in it as they are (no `longlamp/<config>/`), source URLs name them there, and it holds no
    `.eval_results` (the Hub reads those at the root only). `model_at`: where the repository holds the card's model
    (`cards.usage`); a training run's model is the staging's own."""
    run = read_run(run_dir)
    staging = Path(staging)
    if staging.exists() and any(staging.iterdir()):
        if not (staging / STAGING_MARKER).is_file():
            raise PublishError(f"{staging} exists and is not a folder staged for upload: choose an empty or new folder")
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    (staging / STAGING_MARKER).touch()
    prefix = ""
    if run.kind != "training" and repo_type == "model" and path_in_repo is None:
        prefix = f"{PUBLISHED_RESULTS_DIR}/{run.config}/"  # beside the evaluated model's own files, not over them
    if run.kind == "training":
        if run.model_dir is None:
            raise PublishError(f"{run_dir}: no {FINAL_DIR}/ model to push (a training run not finished yet, or a "
                               "published copy)")
        for path in sorted(p for p in run.model_dir.rglob("*") if p.is_file()):
            _stage_model_file(path, staging / path.relative_to(run.model_dir))
        outcome = dataclasses.replace(run.outcome, merged_from_adapter=public_name(run.outcome.merged_from_adapter))
        write_model_record(staging, public_record(run.record), outcome)  # the record without local paths
        if run.test_predictions is not None:
            _link_or_copy(run.test_predictions, staging / run.test_predictions.name)
    for variant in run.variants:  # results scored from predictions on disk
        sub = "" if variant.folder == run.folder else variant.folder.relative_to(run.folder).as_posix() + "/"
        for name in (PREDICTIONS_FILE, PROMPTS_FILE):
            if (variant.folder / name).is_file():
                _link_or_copy(variant.folder / name, staging / f"{prefix}{sub}{name}")
        write_per_sample_scores(variant, staging / f"{prefix}{sub}{PER_SAMPLE_FILE}")
        write_json_atomic(staging / f"{prefix}{sub}{PUBLISHED_SUMMARY_FILE}", _results_json(run, variant))
    if (run.folder / COMPARISON_FILE).is_file():
        _link_or_copy(run.folder / COMPARISON_FILE, staging / f"{prefix}{COMPARISON_FILE}")
    plot = None
    rows = plot_rows(run)
    if rows:
        plot = prefix + PLOT_FILE
        plot_comparison(rows, staging / plot, f"{model_shown(run)} on LongLaMP {run.config}")
    source_url = None
    if repo_id:
        source = prefix + PUBLISHED_SUMMARY_FILE
        source = source if (staging / source).is_file() else CARD_FILE
        source_url = blob_url(repo_id, f"{path_in_repo}/{source}" if path_in_repo else source, revision, repo_type)
    if repo_type == "dataset":
        card = build_results_dataset_card(run, repo_id, source_url, plot)
    else:
        licence = hub_licence(licensed_model(run)) if repo_id else None
        card = build_card(run, repo_id, source_url, plot, licence,
                          path_in_repo if run.kind == "training" and path_in_repo else model_at)
    _write_text(staging / CARD_FILE, str(card))
    if repo_type == "model" and path_in_repo is None and any(variant.metrics for variant in run.variants):
        name = EVAL_RESULTS_FILE if not prefix else EVAL_RESULTS_FILE.replace(".yaml", f"_{run.config}.yaml")
        _write_text(staging / name, entries_yaml(eval_result_entries(run, source_url)))
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


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def hub_api(token: str | None):
    """An HfApi whose every request gives up after the toolkit's Hub timeout (longlamp_cli.limit_hub_requests): a
    server that accepts and never answers would otherwise hang the command for good."""
    from huggingface_hub import HfApi

    limit_hub_requests()
    return HfApi(token=token)


def hub_licence(model: str | None) -> dict | None:
    """The licence of a Hub model as the Hub's `model_info` has it (licence_fields), when nothing local says: a
    plain Hub base model has no local card. None when it cannot be asked (then the card says what is known)."""
    if known_license(model) or not is_hub_id(model):
        return None
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = hub_api(None).model_info(model)
    except (*_network_errors(), HfHubHTTPError) as error:
        logger.info("licence of %s not read from the Hub: %s", model, str(error).splitlines()[0] if str(error) else
                    type(error).__name__)
        return None
    return licence_fields(info.card_data or {})


def _check_card(api, folder: Path, repo_id: str, repo_type: str) -> None:
    """Ask the Hub whether it accepts the card's metadata before anything is created or uploaded."""
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers

    card = folder / CARD_FILE
    if not card.is_file():
        return
    response = get_session().post(f"{api.endpoint}/api/validate-yaml", headers=build_hf_headers(token=api.token),
                                  json={"content": card.read_text(encoding="utf-8"), "repoType": repo_type})
    if response.status_code == 400:
        errors = "; ".join(str(e.get("message")) for e in _json_answer(response).get("errors", [])) or "no reason"
        raise PublishError(f"the Hub refuses the metadata of the card (README.md) for {repo_id}: {errors}. Nothing "
                           "was uploaded and no repository was created")
    response.raise_for_status()
    _json_answer(response)


def _json_answer(response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        raise PublishError(f"{response.request.url.host} did not answer like the Hub ({response.status_code} with "
                           f"{response.headers.get('content-type') or 'no content type'}, not JSON): is HF_ENDPOINT "
                           "right? Nothing was uploaded") from None
    return answer if isinstance(answer, dict) else {}


def _destination(api, repo_id: str, repo_type: str, private: bool, create_pr: bool, public_ok: bool) -> bool:
    """Make sure the repository can take the upload as asked; returns whether it is private.

    The visibility is the repository's own (`repo_info`), never the one asked for: `private=` is ignored by the Hub
    when the repository exists, so asking for a private push into an existing public repository is refused.
    """
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.repo_info(repo_id, repo_type=repo_type)
    except RepositoryNotFoundError:
        info = None
    if info is not None:
        if private and not info.private:
            raise PublishError(f"{repo_id} exists and is public, but this push must be private"
                               f"{'' if public_ok else ' (' + LICENCE_WARNING + ')'}: make the repository private "
                               "first, or choose another")
        return bool(info.private)
    if create_pr:
        raise PublishError(f"{repo_id} does not exist (or your token cannot see it): a pull request needs an "
                           "existing repository")
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=True if private else None)
    except Exception as error:
        if _status(error) == 409:  # it exists, but this token cannot see it
            raise PublishError(f"{repo_id} exists but your token cannot see it: ask its owner for access") from None
        if _status(error) in (401, 403):
            raise PublishError(f"your token may not create {repo_id} (HTTP {_status(error)}): use a namespace you "
                               "can write to, or a token with write access") from None
        raise
    # private=None (not False) when not asked: an organisation's default visibility then applies
    return bool(api.repo_info(repo_id, repo_type=repo_type).private)


def upload(folder: Path, repo_id: str, *, repo_type: str = "model", private: bool = False, revision: str | None = None,
           token: str | None = None, path_in_repo: str | None = None, delete_patterns: str | None = None,
           commit_message: str = "Upload from the LongLaMP toolkit", local: Path | None = None,
           create_pr: bool = False, public_ok: bool = False, pull_request_if_refused: bool = True) -> str:
    """Check the card's metadata with the Hub, make sure the repository (and branch) exists with the visibility
    asked for (creating it if needed), and commit `folder` in one commit; returns the repository URL, or the pull
    request's when one was opened (`create_pr`, or chosen because the token may not write to the repository, unless
    `pull_request_if_refused` is False). `public_ok`: the caller's licence check passed for a public push (a
    refusal names the licence otherwise)."""
    check_repo_id(repo_id)
    if repo_type not in REPO_TYPES:
        raise PublishError(f"--hub_repo_type {repo_type!r} is not one of: {', '.join(REPO_TYPES)}")
    if create_pr and revision not in (None, "main"):
        raise PublishError(f"--create_pr opens a pull request against main: give no --hub_revision ({revision})")
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    local = local or folder
    api = hub_api(token)
    try:
        _check_card(api, folder, repo_id, repo_type)
        is_private = _destination(api, repo_id, repo_type, private, create_pr, public_ok)
        refused_branch = PublishError(f"your token may not write to {repo_id}, and a pull request (what others' "
                                      f"repositories take) goes to main, not to --hub_revision {revision}")
        if revision and not create_pr:
            try:
                api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
            except Exception as error:
                if _status(error) == 403:
                    raise refused_branch from None
                raise
        arguments = dict(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type, path_in_repo=path_in_repo,
                         delete_patterns=delete_patterns, commit_message=commit_message,
                         ignore_patterns=[STAGING_MARKER])
        try:
            commit = api.upload_folder(**arguments, revision=revision, create_pr=create_pr)
        except Exception as error:
            if _status(error) != 403 or create_pr or not pull_request_if_refused:
                raise
            if revision not in (None, "main"):
                raise refused_branch from None
            logger.warning("your token may not write to %s: opening a pull request (community contribution) "
                           "instead; its owner can merge it", repo_id)
            commit = api.upload_folder(**arguments, create_pr=True)
    except PublishError:
        raise
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise PublishError(f"uploading to {repo_id} failed: {str(error).splitlines()[0]}. Nothing local was changed "
                           f"({local} is intact)") from None
    except _network_errors() as error:
        if _status(error) in (401, 403):
            raise PublishError(f"uploading to {repo_id} failed: the Hub refused the token (HTTP {_status(error)}): "
                               "log in with a token that may write there (hf auth login or HF_TOKEN). Nothing local "
                               f"was changed ({local} is intact)") from None
        raise _failure("uploading to", repo_id, error, token, local) from None
    except json.JSONDecodeError:
        raise PublishError(f"uploading to {repo_id} failed: {api.endpoint} did not answer like the Hub (not JSON): is "
                           f"HF_ENDPOINT right? Nothing local was changed ({local} is intact)") from None
    url = commit.pr_url or str(commit.repo_url)
    logger.info("pushed %s to %s (%s)", local, url, "private" if is_private else "public")
    return str(url)


def push_run(run_dir: str | Path, repo_id: str, *, repo_type: str = "model", private: bool = False,
             revision: str | None = None, token: str | None = None, dry_run_dir: str | Path | None = None,
             public_despite_license: bool = False, create_pr: bool = False) -> str:
    """Publish a training or zero-shot run folder: the model (or adapter) or the results, with card and plot.

    `dry_run_dir`: write the folder that would be uploaded there and upload nothing (returns that folder).
    Returns the repository URL (the pull request's, with `create_pr`); "" on a non-main process, which does nothing.
    """
    if not is_main_process():
        return ""
    check_repo_id(repo_id)
    run = read_run(run_dir)
    licensed = not parse_config_name(run.config)[0].public
    if licensed and not private and not public_despite_license:
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
                      local=Path(run_dir), create_pr=create_pr, public_ok=not licensed or public_despite_license)


def _merge_model_card(folder: Path, run: RunFolder, repo_id: str, revision: str | None, token: str | None) -> None:
    """Results pushed into an existing model repository keep its card: our results join its model-index
    (replacing earlier ones of the same config, split, metric and variant) and its body gains (or renews) one
    section per config; our full card goes to longlamp/<config>/README.md."""
    from huggingface_hub import ModelCard, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    existing = None
    hub_api(token)  # its timeouts
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


def stage_checkpoint(checkpoint_dir: Path, staging: Path, trainable: set[str] | None = None) -> Path:
    """The files of a checkpoint push: the run state with its record made portable, optimizer, scheduler and
    random states as saved, and the model weights, only the `trainable` tensors of them when given (a LoRA or QLoRA
    run: the adapter, never the frozen base, which the resumed run loads from its base model). Such a weights file
    says so in its metadata (`ADAPTER_ONLY_KEY`), so a resume loads it as the adapter it is."""
    from safetensors.torch import load_file, save_file

    from longlamp_runs import STATE_FILE, RunRecord

    staging.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in checkpoint_dir.rglob("*") if p.is_file()):
        target = staging / path.relative_to(checkpoint_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name == STATE_FILE:
            state = json.loads(path.read_text(encoding="utf-8"))
            state["config"] = public_record(RunRecord.from_dict(state["config"], str(path))).to_dict()
            write_json_atomic(target, state, sort_keys=True)
        elif trainable is not None and path.suffix == ".safetensors":
            tensors = {name: tensor for name, tensor in load_file(path).items() if name in trainable}
            if not tensors:
                raise PublishError(f"{path}: none of the model's trainable tensors are in it: nothing to push")
            save_file(tensors, target, metadata={"format": "pt", ADAPTER_ONLY_KEY: "true"})
        else:
            _link_or_copy(path, target)
    return staging


def push_checkpoint(checkpoint_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                    token: str | None = None, trainable: set[str] | None = None) -> str:
    """Replace `last-checkpoint/` in the model repository with this checkpoint (stage_checkpoint's files), so a
    preempted job can resume from the Hub (download it, then `--resume_from_checkpoint <folder>`).

    A failed checkpoint push is logged and training goes on: the next checkpoint replaces it anyway.
    """
    if not is_main_process():
        return ""
    checkpoint_dir = Path(checkpoint_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="longlamp-checkpoint-") as scratch:
            folder = stage_checkpoint(checkpoint_dir, Path(scratch) / checkpoint_dir.name, trainable)
            return upload(folder, repo_id, private=private, revision=revision, token=token,
                          path_in_repo=CHECKPOINT_PATH, delete_patterns="*", pull_request_if_refused=False,
                          commit_message=f"Checkpoint {checkpoint_dir.name}", local=checkpoint_dir)
    except PublishError as error:
        logger.warning("checkpoint not pushed, training goes on: %s", error)
        return ""


def finish_training_run(output_dir: str | Path, *, push: bool = False, repo_id: str | None = None,
                        private: bool = False, revision: str | None = None, token: str | None = None,
                        create_pr: bool = False) -> str | None:
    """End of a training run (main process): write its card into `output_dir`, then push it when asked.

    A failed push leaves the trained model in place; the error says how to push it again.
    """
    from publishing.cards import write_run_card

    write_run_card(output_dir, repo_id)
    if not push:
        return None
    try:
        return push_run(output_dir, repo_id, private=private, revision=revision, token=token, create_pr=create_pr)
    except PublishError as error:
        raise PublishError(f"{error} (or: python evaluation/push_results.py --run_dir {output_dir} --hub_model_id "
                           f"{repo_id})") from None
