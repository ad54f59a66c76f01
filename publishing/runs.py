"""A run as publishing shows it. The run folder itself is read by `longlamp_runs.read_run`, the one reader that
cards, uploads and the leaderboard share; here are the rules that keep machine paths out of what is published and
the words that say what ran.

Values that name places on this machine (absolute or existing local paths, the home folder) are never carried
into what is published: `public_name` keeps only the last part of such a path (`<local>/final`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from longlamp_runs import RetrievalSettings, RunFolder, RunRecord, Variant
from longlamp_tasks import config_names, parse_config_name

DATASET_ID = "LongLaMP/LongLaMP"
HUB_SPLITS = {"validation": "val"}  # the split names of the Hub dataset, where they differ from the toolkit's
EMBEDDED_PATH = re.compile(r"(?<![\w.:/~])(?:~/|/)(?:[^\s,()'\"=/]+/)+[^\s,()'\"=/]+")
LICENCE_KEYS = ("license", "license_name", "license_link")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "namespace/name"


def public_name(value):
    """A string that names a local path becomes its last part (`<local>/final`); anything else stays."""
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if os.path.isabs(value) or value.startswith(("~", ".")) or path.exists():
        return "<local>/" + path.resolve().name
    # a path inside a value, e.g. a retriever signature "contriever(model_name=<an absolute folder>)"
    return EMBEDDED_PATH.sub(lambda match: "<local>/" + Path(match.group(0)).name, value)


def public_record(record: RunRecord) -> RunRecord:
    """The record with every local path reduced to its last part: what cards show and uploads carry."""
    return record.map_paths(public_name)


@dataclass(frozen=True)
class DatasetIdentity:
    """The data a run was scored on, as the Hub names it: `LongLaMP/LongLaMP` with its config, split name (`val`)
    and revision when the rows came from the Hub, directly or through a local copy whose recorded origin says so
    (`DataSource.origin`: an export of the Hub dataset, its files unchanged); else local data (the bundled sample,
    an email config, any other --data_dir) that cards never present as the Hub dataset."""

    type: str
    name: str
    config: str
    split: str
    revision: str | None
    on_hub: bool


def dataset_identity(record: RunRecord) -> DatasetIdentity:
    config, split, data = record.task.config, record.task.split, record.data
    public = parse_config_name(config)[0].public
    from_hub = data.data_dir is None and data.data in config_names()
    copied = data.origin is not None and data.origin.repo_id == DATASET_ID
    if public and (from_hub or copied):
        return DatasetIdentity(DATASET_ID, f"LongLaMP {config}", config, HUB_SPLITS.get(split, split),
                               data.origin.revision if copied else data.revision, True)
    source = public_name(record.data.data_dir or record.data.data)
    return DatasetIdentity("local", f"LongLaMP {config} (local data {source}, not the Hub dataset)", config, split,
                           None, False)


def is_hub_id(value: str | None) -> bool:
    return bool(value) and public_name(value) == value and bool(HUB_ID.match(value))


def licence_fields(data) -> dict:
    """The licence of a card's metadata (a mapping or CardData): `license`, and with `other` its `license_name` and
    `license_link`, which the Hub needs to show what the licence is."""
    get = data.get if isinstance(data, dict) else lambda key: getattr(data, key, None)
    return {key: get(key) for key in LICENCE_KEYS if get(key)}


def known_license(model: str | None) -> dict:
    """The licence in the YAML of a model's card, read from its local folder or the Hub cache (never fetched; a
    push asks the Hub: publishing.hub.hub_licence)."""
    if not model:
        return {}
    card = Path(model).expanduser() / "README.md"
    if not card.is_file():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "README.md") if HUB_ID.match(model) else None
        card = Path(cached) if isinstance(cached, str) else None
    if card is None:
        return {}
    from huggingface_hub import ModelCard

    try:
        return licence_fields(ModelCard.load(card).data)
    except ValueError:  # a card without (valid) YAML
        return {}


def retrieval_text(retrieval: RetrievalSettings) -> str:
    """How profile items reached the prompt: "bm25, k=4", "contriever(model_name=..., dtype=float32), k=2,
    pre-ranked", or "no profile"."""
    if not retrieval.use_profile:
        return "no profile"
    ranking = public_name(retrieval.signature or retrieval.retriever)
    return f"{ranking}, k={retrieval.num_retrieved}" + (", pre-ranked" if retrieval.is_ranked else "")


def variant_label(variant: Variant) -> str:
    """What one variant of a run is: "with profile (bm25, k=4)", "no profile", "per-user adapters (OPPU), no
    profile", "fine-tuned model's validation generations at step 6, with profile (bm25, k=1)"."""
    record = variant.record
    retrieval = record.retrieval
    label = f"with profile ({retrieval_text(retrieval)})" if retrieval.use_profile else "no profile"
    if record.per_user is not None and record.per_user.methods():
        label = f"{'; '.join(record.per_user.methods())}, {label}"
    if record.kind == "training":
        label = f"validation generations at step {variant.step}, {label}"
    return label


def metric_args(variant: Variant) -> dict:
    """What tells the variants of a run apart in model-index (`metric_args`)."""
    retrieval = variant.record.retrieval
    if not retrieval.use_profile:
        return {"use_profile": False}
    return {"use_profile": True, "retriever": public_name(retrieval.retriever),
            "num_retrieved": retrieval.num_retrieved}


def variant_key(variant: Variant) -> str:
    """A variant in a few safe characters, for ids: "no_profile", "bm25_k4", "oppu_no_profile"."""
    args = metric_args(variant)
    key = f"{args['retriever']}_k{args['num_retrieved']}" if args["use_profile"] else "no_profile"
    methods = variant.record.per_user.methods() if variant.record.per_user is not None else []
    key = "_".join([*methods, key])
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip("-").lower()


def what_ran(run: RunFolder) -> str:
    """The kind of run in a few words, for titles: "zero-shot, with and without profile", "fine-tuned model, no
    profile", "per-user adapters (OPPU), with profile", "fine-tuning"."""
    if run.kind == "training":
        return "fine-tuning"
    record = run.record
    how = "fine-tuned model" if record.model.fine_tuned else "zero-shot"
    if record.per_user is not None and record.per_user.methods():
        how = "; ".join(record.per_user.methods()) + ("" if how == "zero-shot" else f", {how}")
    profiles = {variant.record.retrieval.use_profile for variant in run.variants}
    profile = {frozenset({True}): "with profile", frozenset({False}): "no profile"}.get(
        frozenset(profiles), "with and without profile")
    return f"{how}, {profile}"
