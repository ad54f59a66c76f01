"""The prompts of a zero-shot run: each row's retrieved items and input within the budget, and what the backend is
sent for each (token ids, or a served model's prompt text)."""

from __future__ import annotations

from typing import Sequence

from tqdm.auto import tqdm

from generation import backend_class
from generation.source import ModelSource
from longlamp_errors import PromptBudgetError
from longlamp_prompts import PromptBuilder
from longlamp_runs import RunRecord
from longlamp_tasks import Task
from retrieval import Retriever, top_k_items


def build_prompts(task: Task, rows: Sequence[dict], builder: PromptBuilder, retriever: Retriever | None,
                  num_retrieved: int = 0, is_ranked: bool = False, as_message: bool = False) -> list[dict]:
    """One audit record per row: id, the prompt text, its token count and how many profile items it holds.

    Without a retriever the prompt is the task input alone (the non-personalised baseline). `as_message`: the
    prompt is a chat endpoint's user message, before the template (the server applies it); it is counted with it.
    """
    records = []
    for index, row in enumerate(tqdm(rows, desc="building prompts", unit="ex", total=len(rows))):
        items = [] if retriever is None else top_k_items(task, row, num_retrieved, retriever, is_ranked)
        try:
            message = builder.fit(items, row["input"])
        except PromptBudgetError as error:
            raise PromptBudgetError(f"example {row['id']!r} (row {index}): {error}") from None
        prompt = builder.format(message)
        records.append({"id": row["id"], "prompt": message if as_message else prompt,
                        "prompt_tokens": builder.count(prompt), "profile_items": len(items)})
    return records


def prepare_prompts(task: Task, rows: Sequence[dict], source: ModelSource, builder: PromptBuilder, record: RunRecord,
                    retriever: Retriever | None, num_retrieved: int, is_ranked: bool) -> tuple[list[dict], list]:
    """Build the prompts of one variant (no retriever: no profile): the audit records, and what the backend is
    sent for each (token ids, or a served model's prompt text). The seeds of a `--seeds` run share them."""
    generator_class = backend_class(record.model.backend)
    as_message = generator_class.served and record.model.api_mode == "chat"
    records = build_prompts(task, rows, builder, retriever, num_retrieved, is_ranked, as_message)
    if generator_class.prompt_form == "text":
        return records, [r["prompt"] for r in records]
    return records, [source.encode(r["prompt"], builder.use_chat_template) for r in records]
