"""Shared fixtures: the bundled sample, a prepared-dataset cache per session, tiny models, short training data and a
clean accelerate state (the helpers behind them are in tests/support/)."""

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
    """A tiny random Llama with its tokenizer, saved like a Hub model (see support/tiny_models.py)."""
    from support.tiny_models import make_causal_lm

    return make_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_chat_llama(tmp_path_factory) -> Path:
    """The same with a chat template."""
    from support.tiny_models import make_causal_lm

    return make_causal_lm(tmp_path_factory.mktemp("tiny-chat-llama"), chat=True)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random sentence encoder (the dense retriever's stand-in for all-MiniLM-L6-v2)."""
    from support.tiny_models import make_encoder

    return make_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture
def fresh_accelerate():
    """Each in-process run starts from a clean accelerate state and leaves one behind."""
    from support.training import reset_accelerate

    reset_accelerate()
    yield
    reset_accelerate()


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    from support.tiny_models import make_seq2seq_lm

    return make_seq2seq_lm(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def short_data(tmp_path_factory) -> tuple[Path, Path]:
    """(train, validation) folders: 12 and 5 sample rows with 12-word outputs."""
    from support.training import short_sample

    root = tmp_path_factory.mktemp("short-sample")
    return short_sample(root, "train"), short_sample(root, "validation")
