"""Shared fixtures: the bundled sample and a prepared-dataset cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"

# Nothing in the tests may reach the network: huggingface_hub and datasets fail fast instead of retrying.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory) -> str:
    """One datasets cache for the session, so each sample config is prepared once."""
    return str(tmp_path_factory.mktemp("datasets-cache"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny random Llama with its tokenizer, saved like a Hub model (see tiny_models.py)."""
    from tiny_models import make_causal_lm

    return make_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_chat_llama(tmp_path_factory) -> Path:
    """The same with a chat template."""
    from tiny_models import make_causal_lm

    return make_causal_lm(tmp_path_factory.mktemp("tiny-chat-llama"), chat=True)
