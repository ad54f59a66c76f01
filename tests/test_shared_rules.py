"""Rules training and zero-shot evaluation share: the prompt budget, ranked data read once, the profile warning."""

from __future__ import annotations

import logging

import pytest

from longlamp_errors import PromptBudgetError
from longlamp_prompts import DEFAULT_PROMPT_BUDGET, prompt_budget


def test_one_default_budget_for_training_and_zero_shot(tiny_llama):
    """The same model gets the same budget in both (zero-shot used context minus new tokens: 2,036 here)."""
    from generation.source import resolve_model
    from training.config import TrainConfig

    source = resolve_model(str(tiny_llama))
    zero_shot = prompt_budget(None, source.context_length(), 512, False)
    assert zero_shot == DEFAULT_PROMPT_BUDGET
    trained = TrainConfig(model_name="m", output_dir="o", train_data="product_review_user")
    assert trained.max_prompt_length is None  # training leaves the default to the same prompt_budget
    assert prompt_budget(None, 1000, 200, False) == 800  # lowered to what a small model's positions leave
    assert prompt_budget(None, 1000, 200, True) == 1000  # an encoder's input has its positions alone
    assert prompt_budget(3000, None, 200, False) == 3000  # no known limit: nothing to check against


def test_budget_beyond_the_position_limit_is_refused_before_work():
    with pytest.raises(PromptBudgetError, match=r"--max_prompt_length 1024 \+ --max_target_length 1025 is more than "
                                                "the model's position limit of 2048"):
        prompt_budget(1024, 2048, 1025, False, new_tokens_flag="--max_target_length")


def test_training_refuses_a_budget_the_model_cannot_hold(tiny_llama, tmp_path, sample_dir):
    from training.config import TrainConfig
    from training.loop import train

    config = TrainConfig(model_name=str(tiny_llama), train_data="product_review_user", data_dir=str(sample_dir),
                         output_dir=str(tmp_path / "run"), max_prompt_length=1500, max_target_length=1000,
                         report_to="none")
    with pytest.raises(PromptBudgetError, match="more than the model's position limit of 2048"):
        train(config)
    assert not (tmp_path / "run" / "final").exists()


def test_training_reads_task_and_retriever_from_ranked_data(tmp_path, sample_dir, sample_cache, caplog):
    import longlamp
    from retrieval import rank_dataset
    from training.config import TrainConfig

    rows = longlamp.load("product_review_user", split="train", data_dir=str(sample_dir), cache_dir=sample_cache)
    ranked = rank_dataset(rows, "product_review", "recency", tmp_path / "ranked.parquet", progress=False)
    config = TrainConfig(model_name="m", train_data=str(ranked), output_dir=str(tmp_path / "o"), use_profile=True,
                         is_ranked=True, report_to="none").validate()
    assert (config.task, config.retriever) == ("product_review_user", "recency")
    assert "is not used" not in caplog.text  # no --retriever given: the data's ranking is the run's
    config = TrainConfig(model_name="m", train_data=str(ranked), output_dir=str(tmp_path / "o"), use_profile=True,
                         is_ranked=True, retriever="bm25", report_to="none").validate()
    assert (config.task, config.retriever) == ("product_review_user", "recency")
    assert "was ranked with recency: --retriever bm25 is not used" in caplog.text


def test_training_warns_when_profile_flags_do_nothing(caplog):
    from training.config import TrainConfig

    with caplog.at_level(logging.WARNING):
        TrainConfig(model_name="m", train_data="product_review_user", output_dir="o", retriever="contriever",
                    report_to="none").validate()
    assert "--retriever given without --use_profile: this run is the NON-PERSONALISED baseline" in caplog.text


def bibtex_of(markdown: str) -> str:
    """The text of a Markdown file's ```bibtex block."""
    start = markdown.index("```bibtex\n") + len("```bibtex\n")
    return markdown[start:markdown.index("```", start)].rstrip("\n")


def test_the_citation_is_the_readmes_everywhere(tmp_path):
    """One citation (longlamp_tasks.CITATION): the README's, the metric card's, the dataset builder's."""
    from pathlib import Path

    import longlamp
    from longlamp_tasks import CITATION

    repo = Path(__file__).resolve().parents[1]
    assert bibtex_of((repo / "README.md").read_text(encoding="utf-8")) == CITATION
    assert bibtex_of((repo / "evaluation" / "longlamp_metric" / "README.md").read_text(encoding="utf-8")) == CITATION
    assert longlamp.LongLaMP(config_name="product_review_user", cache_dir=str(tmp_path)).info.citation == CITATION


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "bf16-gpu"])
def test_one_meaning_of_auto_keeps_every_default_dtype(gpu, monkeypatch):
    """generation.dtypes gives each run the dtype it had before "auto" had one meaning: the backends' rule (bfloat16
    on a GPU that has it, else float32) and training's (float32 for trained weights, the mixed-precision dtype for a
    frozen LoRA base)."""
    import torch

    from generation.dtypes import torch_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: gpu)
    assert torch_dtype("auto") == (torch.bfloat16 if gpu else torch.float32)  # generation, per-user adapters
    mixed = {"bf16": torch.bfloat16, "fp16": torch.float16}
    for lora in (False, True):
        for precision in ("no", "bf16", "fp16", "fp8"):
            for name in ("auto", "float32", "bfloat16", "float16"):
                before = (getattr(torch, name) if name != "auto" else
                          mixed.get(precision, torch.float32) if lora else torch.float32)
                assert torch_dtype(name, trained=not lora, mixed_precision=precision) == before
