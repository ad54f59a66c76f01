"""Profile summaries in the prompt: generated once by any backend, cached on disk by their input, counted in
the prompt budget.

Every item's text reaches the summariser (map-reduce): a user's profile (less the items `personalization.users`
leaves out as leaks, and items without text) is packed, whole items in profile order, into chunks whose request fits
the prompt budget, rendered with the task's own item templates and followed by `SUMMARY_REQUEST`; an item too long
for a request of its own is shortened alone. One chunk's summary is the summary; several are summarised each, and
their summaries combined (`COMBINE_REQUEST`, again in chunks that fit) until one is left. Which items each
summary read, which were shortened and which were left out is the summaries' record (`summary_record`). Its cache
key is the digest of a request's token ids and of what generated it (model and decoding settings), so a summary
is computed once per distinct input, by whichever run needs it first, and a changed profile or model gets a new
one. In the task prompt the summary comes before the task input; it is cut (never the task input) to leave the
input room, and the retrieved items share what is left, as `PromptBuilder` shares it. Per-user evaluation and
per-user adapter training with +PAG (training/per_user_run.py) build their summaries and prompts with the same
functions, so that an adapter is trained on the prompts it is evaluated with.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from longlamp_errors import ModelLoadError, PromptBudgetError
from longlamp_io import write_json_atomic
from longlamp_prompts import PromptBuilder
from longlamp_tasks import Task, field_text
from personalization.users import group_users

SUMMARY_REQUEST = ("Summarize, in a few sentences, the topics this author writes about and their writing style "
                   "(tone, length, wording), as seen in the texts above.")
COMBINE_REQUEST = ("The texts above summarise parts of one author's writing. Combine them into one summary, in a few "
                   "sentences, of the topics this author writes about and their writing style (tone, length, wording).")
SUMMARY_PREFIX = "Summary of the author's profile: "
PART_JOINER = "\n\n"
SUMMARY_RECORD_FILE = "summaries.json"  # in a per-user run folder: which items each summary read
SUMMARY_CACHE_DIR = "summaries"  # in a per-user run or adapters folder: the cached summaries (--summary_cache_dir)
MIN_ITEM_WORDS = 8  # an item shortened to fit a request alone keeps at least this much of the user's text


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


@dataclass
class Chunk:
    """One summary request's items: their positions in the set, and those shortened to fit."""

    positions: list[int]
    shortened: list[int]


def has_text(task: Task, item: Mapping) -> bool:
    """Whether the item holds text the user wrote (its output field): only such items are summarised."""
    return bool(field_text(item.get(task.output_field)).strip())


def chunk_items(task: Task, builder: PromptBuilder, items: Sequence[Mapping]) -> list[Chunk]:
    """Items with text packed, whole and in order, into the fewest consecutive chunks whose summary request fits
    `builder`'s budget; an item over the budget alone is a chunk of its own, shortened (refused when not even its
    text's start fits)."""
    chunks: list[Chunk] = []
    current: list[int] = []

    def fits(positions):
        return fits_items(builder, [items[i] for i in positions])

    for position in (i for i, item in enumerate(items) if has_text(task, item)):
        if fits(current + [position]):
            current.append(position)
            continue
        if current:
            chunks.append(Chunk(current, []))
        if fits([position]):
            current = [position]
            continue
        text = field_text(items[position].get(task.output_field))
        start = {**{f: "" for f, kind in task.profile_fields.items() if kind == "string"},
                 task.output_field: " ".join(text.split()[:MIN_ITEM_WORDS])}
        if not fits_items(builder, [{**items[position], **start}]):
            raise PromptBudgetError(f"a summary request of one profile item does not fit the prompt budget of "
                                    f"{builder.max_prompt_tokens} tokens with {MIN_ITEM_WORDS} words of the item's "
                                    "text; raise the budget")
        chunks.append(Chunk([position], [position]))
        current = []
    if current:
        chunks.append(Chunk(current, []))
    return chunks


def fits_items(builder: PromptBuilder, items: Sequence[Mapping]) -> bool:
    """Whether the summary request of `items`, whole, fits the budget."""
    return builder.count(builder.format(builder.task.build_prompt(items, SUMMARY_REQUEST))) <= builder.max_prompt_tokens


def summary_requests(builder: PromptBuilder, items: Sequence[Mapping], chunks: Sequence[Chunk]) -> list[str]:
    """Each chunk's summary request, before the chat template."""
    return [builder.fit([items[i] for i in chunk.positions], SUMMARY_REQUEST) for chunk in chunks]


def combine_request(parts: Sequence[str]) -> str:
    """The request that combines partial summaries, before the chat template."""
    return PART_JOINER.join(parts) + PART_JOINER + COMBINE_REQUEST


def combine_groups(builder: PromptBuilder, summaries: Sequence[str]) -> list[list[str]]:
    """Partial summaries in consecutive groups whose combining request fits the budget. Each is first cut to half
    the room a request leaves, so any two fit together: every group but possibly the last holds two or more, and
    each round of combining leaves fewer summaries."""
    room = builder.max_prompt_tokens - builder.count(builder.format(combine_request(["", ""])))
    if room < 2:
        raise PromptBudgetError(f"the prompt budget of {builder.max_prompt_tokens} tokens cannot hold the request "
                                "that combines partial summaries")
    cut = []
    for summary in summaries:
        ids = builder.tokenizer(summary, add_special_tokens=False, verbose=False)["input_ids"]
        cut.append(summary if len(ids) <= room // 2 else builder.tokenizer.decode(ids[: room // 2 - 1],
                                                                                  skip_special_tokens=True))
    groups: list[list[str]] = []
    for summary in cut:
        fits = groups and builder.count(builder.format(combine_request(groups[-1] + [summary]))) \
            <= builder.max_prompt_tokens
        if fits:
            groups[-1].append(summary)
        else:
            groups.append([summary])
    if len(groups) == len(summaries) > 1:  # no two fit together after all: combining would never end
        raise PromptBudgetError(f"the prompt budget of {builder.max_prompt_tokens} tokens cannot hold two partial "
                                "summaries in one combining request; raise the budget")
    return groups


def map_reduce(task: Task, builder: PromptBuilder, sets: Sequence[Sequence[Mapping]], ask) -> tuple[list[str], list,
                                                                                                   list[int]]:
    """(each set's summary, each set's chunks, each set's number of combining requests): every item with text
    summarised in chunks, then the chunks' summaries combined until one is left per set. `ask(messages)` answers
    requests given before the chat template, all of one round at once. A set without text gets "" (no summary)."""
    chunks = [chunk_items(task, builder, items) for items in sets]
    combined = [0] * len(sets)
    partial: list[list[str]] = [[] for _ in sets]
    requests = [(index, request) for index, items in enumerate(sets)
                for request in summary_requests(builder, items, chunks[index])]
    while requests:
        for (index, _), answer in zip(requests, ask([request for _, request in requests])):
            partial[index].append(answer.strip())
        requests = []
        for index, parts in enumerate(partial):
            if len(parts) > 1:
                groups = combine_groups(builder, parts)
                partial[index] = [group[0] for group in groups if len(group) == 1]
                requests += [(index, combine_request(group)) for group in groups if len(group) > 1]
                combined[index] += sum(len(group) > 1 for group in groups)
    return [parts[0] if parts else "" for parts in partial], chunks, combined


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


@dataclass
class SummarySets:
    """What a run summarises: sets of profile items (a user's profile, or one prompt's retrieved items), each set's
    name in the record (a user id, an example id), how many of its items were left out as leaks, and which set each
    prompt's summary is (`owner`, per prompt)."""

    of: str
    names: list[str]
    sets: list[list[dict]]
    left_out: list[int]
    owner: list[int]


def user_profiles(users: Sequence, owners: Sequence[str]) -> SummarySets:
    """One set per user (`personalization.users.User`: its leak-free profile); `owners`: each prompt's user id."""
    place = {user.user_id: index for index, user in enumerate(users)}
    return SummarySets("profile", [user.user_id for user in users], [user.profile for user in users],
                       [user.left_out for user in users], [place[owner] for owner in owners])


def retrieved_sets(ids: Sequence[str], items: Sequence[Sequence[Mapping]]) -> SummarySets:
    """One set per prompt: its retrieved items."""
    return SummarySets("retrieved", list(ids), [list(chosen) for chosen in items], [0] * len(ids),
                       list(range(len(ids))))


def summary_sets(args, task: Task, rows: Sequence[Mapping], items: Sequence[Sequence[Mapping]]) -> SummarySets:
    """The sets per-user evaluation summarises: each row's user's profile (one per user, never holding a row's
    answer: `group_users`) or each row's retrieved items (`items`), as --summary_of says."""
    if args.summary_of == "profile":
        return user_profiles(group_users(rows, task), [str(row[task.user_column]) for row in rows])
    return retrieved_sets([row["id"] for row in rows], items)


def summary_writer(args, cache_dir: Path, backend: str | None = None, device_map: str | None = None):
    """--summary_model on any backend (`backend`, default --summary_backend: local or served), greedy, every
    summary cached by its full input in CACHE_DIR/summaries.sqlite (`generation.cache`), so that a resumed or later
    run asks again for nothing it has; its weights are loaded on the first summary the cache lacks. `device_map`: a
    local model's placement (per-user training puts it on the process's own device)."""
    from generation import backend_class
    from generation.cache import GenerationCache, cached_generator
    from generation.decoding import GenerationSettings
    from generation.preparation import prepare_model

    backend = backend or args.summary_backend
    served = backend != "auto" and backend_class(backend).served
    options = {"api_base": args.summary_api_base} if served else {"dtype": args.dtype}
    if served:  # a silent server gives up after these (None: the backend's defaults)
        options.update({name: value for name, value in (("request_timeout", args.summary_request_timeout),
                                                        ("max_retries", args.summary_max_retries))
                        if value is not None})
    if device_map and not served:
        options["device_map"] = device_map
    model = prepare_model(args.summary_model, GenerationSettings(max_new_tokens=args.summary_max_new_tokens),
                          backend=backend, options=options, whole_context=True)
    return cached_generator(GenerationCache(Path(cache_dir) / "summaries.sqlite"), model)


SERVED_FLAGS = ("--api_base", "--request_timeout", "--max_retries")


def as_summary_flags(message: str) -> str:
    """A served model's message with its flags named as the summary model's (--summary_request_timeout, ...): the
    run's own --request_timeout is another model's."""
    for flag in SERVED_FLAGS:
        message = message.replace(flag, flag.replace("--", "--summary_", 1))
    return message


def answered(writer, messages: Sequence[str]) -> list[str]:
    """The summary model's answers to `messages`; an empty one (a server answering `"content": null`) is never
    cached and is an error, not a prompt silently left without its summary."""
    try:
        answers = writer.ask(messages, "summarising", keep=lambda message, answer: True)  # empty ones are not kept
    except ModelLoadError as error:
        raise ModelLoadError(as_summary_flags(str(error))) from None
    empty = sum(not answer.strip() for answer in answers)
    if empty:
        raise ModelLoadError(f"--summary_model {writer.identity.get('model')}: {empty} of {len(answers)} summary "
                             "requests were answered with no text; nothing empty was cached, run again when it "
                             "answers")
    return answers


def summaries_for(args, sets: SummarySets, task: Task, tokenizer, budget: int, cache_dir: Path, *, writer=None,
                  generator=None, batch_size: int = 8) -> tuple[list[str], dict]:
    """(each prompt's summary, the summaries' record: `summary_record`). Requests are built with the run's
    `tokenizer` within its prompt `budget`; they are answered by `writer` (`summary_writer`: another model, which
    caches its own answers) or else by the run's own loaded `generator`, its summaries cached in `cache_dir`."""
    builder = PromptBuilder(replace(task, prompt_suffix=". "), tokenizer, budget, args.use_chat_template)
    if writer is not None:
        found, chunks, combined = map_reduce(task, builder, sets.sets, lambda messages: answered(writer, messages))
    else:
        source = generator.source
        settings = replace(generator.settings, max_new_tokens=args.summary_max_new_tokens)
        identity = {"model": source.address, **settings.record()}
        cache = SummaryCache(cache_dir)

        def ask(messages):
            return summarize([builder.format(m) for m in messages], generator, source, cache, identity,
                             builder.use_chat_template, batch_size)

        with generating_with(generator, settings):
            found, chunks, combined = map_reduce(task, builder, sets.sets, ask)
    return [found[index] for index in sets.owner], summary_record(task, sets, found, chunks, combined)


def summary_record(task: Task, sets: SummarySets, found: Sequence[str], chunks, combined) -> dict:
    """Which items each summary read: per user (or per prompt, for retrieved items) the items it had, the positions
    summarised (all with text), shortened, without text, how many requests read items and how many combined
    partial summaries, the items left out as leaks, and the summary."""
    entries = []
    for name, items, summary, set_chunks, combining, leaks in zip(sets.names, sets.sets, found, chunks, combined,
                                                                   sets.left_out):
        entries.append({"user" if sets.of == "profile" else "id": name, "items": len(items),
                        "summarized": [i for chunk in set_chunks for i in chunk.positions],
                        "shortened": [i for chunk in set_chunks for i in chunk.shortened],
                        "without_text": [i for i, item in enumerate(items) if not has_text(task, item)],
                        "requests": len(set_chunks), "combining_requests": combining, "left_out_as_leaks": leaks,
                        "summary": summary})
    return {"of": sets.of, "sets": entries}


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
