"""Profile summaries in the prompt: generated once by any backend, cached on disk by their input, counted in
the prompt budget.

A summary request is the task's own rendering of the profile items (the same templates and the same
shortening to the budget as every prompt) followed by `SUMMARY_REQUEST`. Its cache key is the digest of the
request's token ids and of what generated it (model and decoding settings), so a summary is computed once per
distinct input, by whichever run needs it first, and a changed profile or model gets a new one.
In the task prompt the summary comes before the task input; it is cut (never the task input) to leave the
input room, and the retrieved items share what is left, as `PromptBuilder` shares it.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from longlamp_errors import PromptBudgetError
from longlamp_io import write_json_atomic
from longlamp_prompts import PromptBuilder
from longlamp_tasks import Task
from personalization.users import group_users

SUMMARY_REQUEST = ("Summarize, in a few sentences, the topics this author writes about and their writing style "
                   "(tone, length, wording), as seen in the texts above.")
SUMMARY_PREFIX = "Summary of the author's profile: "


class SummaryCache:
    """Summaries on disk, one JSON file per key (written atomically), so runs and restarts share them."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @staticmethod
    def key(request_ids: Sequence[int], generator_identity: Mapping) -> str:
        text = json.dumps([list(request_ids), dict(generator_identity)], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key: str) -> str | None:
        path = self.folder / f"{key}.json"
        return json.loads(path.read_text())["summary"] if path.is_file() else None

    def put(self, key: str, summary: str, request: str) -> None:
        write_json_atomic(self.folder / f"{key}.json", {"summary": summary, "request": request})


def summary_requests(task: Task, tokenizer, budget: int, profiles: Sequence[Sequence[Mapping]],
                     use_chat_template: bool | None = None, formatted: bool = True) -> list[str]:
    """The summary request of each profile (or set of retrieved items), shortened to `budget` tokens; with
    `formatted` False, before the chat template (the message another model formats with its own)."""
    builder = PromptBuilder(replace(task, prompt_suffix=". "), tokenizer, budget, use_chat_template)
    if not formatted:
        return [builder.fit(list(items), SUMMARY_REQUEST) for items in profiles]
    return [builder(list(items), SUMMARY_REQUEST) for items in profiles]


def summarize(requests: Sequence[str], generator, source, cache: SummaryCache, identity: Mapping,
              chat_formatted: bool, batch_size: int = 8) -> list[str]:
    """Each request's summary: from the cache, else generated (in batches) and cached. Identical requests are
    generated once."""
    ids = [source.encode(request, chat_formatted) for request in requests]
    keys = [cache.key(i, identity) for i in ids]
    missing = list(dict.fromkeys(k for k in keys if cache.get(k) is None))
    first = {key: keys.index(key) for key in missing}
    for start in range(0, len(missing), batch_size):
        chunk = missing[start:start + batch_size]
        outputs = generator.generate([ids[first[k]] for k in chunk], [0] * len(chunk))
        for key, text in zip(chunk, outputs):
            cache.put(key, text.strip(), requests[first[key]])
    return [cache.get(key) for key in keys]


@dataclass
class SummaryPromptBuilder:
    """A task prompt with the user's summary before the task input, within the builder's budget."""

    builder: PromptBuilder

    def __call__(self, items: Sequence[Mapping], task_input: str, summary: str) -> str:
        builder = self.builder
        room = builder.max_prompt_tokens - builder.count(builder.format(SUMMARY_PREFIX + "\n" + task_input))
        ids = builder.tokenizer(summary, add_special_tokens=False, verbose=False)["input_ids"]
        while True:
            cut = builder.tokenizer.decode(ids[:max(room, 0)], skip_special_tokens=True)
            try:
                return builder(items, f"{SUMMARY_PREFIX}{cut}\n{task_input}" if cut.strip() else task_input)
            except PromptBudgetError:
                if room <= 0:
                    raise  # the task input alone does not fit: the builder's own message says so
                room -= max(1, (room + 9) // 10)  # tokens merge differently once joined: give back some and retry


def summaries_for(args, setup, rows, items, cache_dir: Path, writer=None) -> list[str]:
    """Each row's summary: of its user's profile (one per user) or of its retrieved items (`items`), from the
    cache in `cache_dir` or written by `setup`'s model; `writer`: another model writes them instead (a
    `generation.cache.CachedGenerator`, which caches its own answers)."""
    if args.summary_of == "profile":
        profiles = {user.user_id: user.profile for user in group_users(rows, setup.task)}
        sets = [profiles[str(row[setup.task.user_column])] for row in rows]
    else:
        sets = items
    if writer is not None:
        messages = summary_requests(setup.task, setup.source.tokenizer, setup.builder.max_prompt_tokens,
                                    [sets[i] for i in wanted_items(sets)], args.use_chat_template, formatted=False)
        found = writer.ask(messages, "summarising")
        return place_summaries(sets, [text.strip() for text in found])
    generator = setup.generator  # the loaded weights, with the summary's length for the time being
    settings = replace(generator.settings, max_new_tokens=args.summary_max_new_tokens)
    wanted = wanted_items(sets)
    requests = summary_requests(setup.task, setup.source.tokenizer, setup.builder.max_prompt_tokens,
                                [sets[i] for i in wanted], args.use_chat_template)
    identity = {"model": setup.source.address, **settings.record()}
    with generating_with(generator, settings):
        found = summarize(requests, generator, setup.source, SummaryCache(cache_dir), identity,
                          setup.builder.use_chat_template, setup.batch_size)
    return place_summaries(sets, found)


@contextmanager
def generating_with(generator, settings):
    """The loaded generator with other generation settings for the block (where transformers reads them: the
    settings, and the model's generation config)."""
    config = getattr(getattr(generator, "model", None), "generation_config", None)
    before = generator.settings
    generator.settings = settings
    if config is not None:
        config.max_new_tokens = settings.max_new_tokens
    try:
        yield generator
    finally:
        generator.settings = before
        if config is not None:
            config.max_new_tokens = before.max_new_tokens


def wanted_items(sets) -> list[int]:
    """The rows with items to summarise (nothing to summarise: no summary)."""
    return [index for index, items in enumerate(sets) if items]


def place_summaries(sets, found: list[str]) -> list[str]:
    """One summary per row: the generated ones in the rows that had items, empty in the others."""
    summaries = [""] * len(sets)
    for index, summary in zip(wanted_items(sets), found):
        summaries[index] = summary
    return summaries
