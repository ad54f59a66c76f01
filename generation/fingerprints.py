"""What the weights of a run are, for its record: a local folder's content hash, a Hub model's commit, a
served model's name. A resumed run with other weights is refused instead of mixing two models' outputs."""

from __future__ import annotations

import logging
from pathlib import Path

from generation.source import ModelSource
from longlamp_io import folder_content_digest

logger = logging.getLogger(__name__)


def address_fingerprint(address: str) -> str | None:
    """A local folder's content hash, or a Hub model's resolved commit (None when it cannot be told)."""
    if Path(address).expanduser().is_dir():
        return folder_content_digest(Path(address).expanduser())
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


def served_fingerprint(model_name: str, tokenizer: str | None) -> dict:
    """What is known of a served model: its name, and the tokenizer the prompts were counted with."""
    return {"served": model_name, "tokenizer": address_fingerprint(tokenizer) if tokenizer else None}
