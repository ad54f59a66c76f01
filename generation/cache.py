"""A generator whose every answer is cached on disk by its full input: the LLM judge's calls and per-user
evaluation's profile summaries re-cost nothing when asked again, and a killed run resumes.

A call's key is the sha256 of the generator's identity (model, weights fingerprint, backend, dtype, how prompts are
sent), the exact prompt sent (after the chat template) and the generation settings: change any of them, and the
call is made again, never answered from another's answer. Answers go to an SQLite file (one connection per
process), committed as they arrive, so a kill loses only the calls in flight.

`CachedGenerator.ask` sends only what the cache lacks, in the batches of one plan fixed by the prompts alone (as
zero-shot generation does): a backend whose batch neighbours can change an output regenerates a batch whole, so
a resumed run computes what an uninterrupted one would have. The model is loaded on the first miss only. A caller
may decode one call with other settings (part of the key) and keep answers it cannot use out of the cache (the LLM
judge stores only answers it can read). `cached_generator` builds one for any backend from a prepared model
(`generation.preparation`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from generation.base import Generator
from generation.decoding import plan_batches
from generation.preparation import PreparedModel

logger = logging.getLogger(__name__)


class GenerationCache:
    """key -> answer text, in an SQLite file created on first use."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, request TEXT NOT NULL, "
                             "answer TEXT NOT NULL, tokens INTEGER, hit_limit INTEGER)")
            self._db.commit()
        except sqlite3.DatabaseError as error:
            raise ValueError(f"--cache_file {self.path}: not a judge cache ({error})") from None

    @staticmethod
    def key(identity: dict, request: str) -> str:
        # "judge": the name it had when the judge was its only user; kept, so that existing caches stay valid
        text = json.dumps({"judge": identity, "request": request}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def answers(self, keys: Sequence[str]) -> dict[str, str]:
        """The cached answers among `keys`."""
        found = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite's limit on bound parameters
            chunk = unique[start:start + 500]
            rows = self._db.execute(f"SELECT key, answer FROM calls WHERE key IN ({','.join('?' * len(chunk))})",
                                    chunk)
            found.update(rows)
        return found

    def add(self, rows: Sequence[tuple[str, str, object]]) -> None:
        """(key, request, Generation) rows, committed at once; a key already there keeps its first answer."""
        self._db.executemany("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?)",
                             [(key, request, g.text, g.tokens, int(g.hit_limit)) for key, request, g in rows])
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class CachedGenerator:
    """A model behind the cache. `prepare(message)` gives what the backend is sent and the exact prompt
    text it stands for (the key's request) and its length; `load()` builds the Generator, on the first miss.
    `tokenizer`: the model's own, where it is known (a served model's only with --tokenizer), or None."""

    def __init__(self, cache: GenerationCache, identity: dict, prepare: Callable[[str], tuple[object, str, int]],
                 load: Callable[[], Generator], batch_size: int | None = None, seed: int = 0, tokenizer=None):
        self.cache, self.identity, self.prepare, self.load = cache, identity, prepare, load
        self.tokenizer = tokenizer
        self.batch_size, self.seed = batch_size, seed
        self.generator: Generator | None = None
        self.sent = self.cached = 0  # calls made to the model, and answered from the cache

    def ask(self, messages: Sequence[str], what: str = "judging", settings=None,
            keep: Callable[[str, str], bool] | None = None) -> list[str]:
        """The answer to each message (the same message asked twice is one call). `settings`: decode with these
        GenerationSettings instead of the model's own (the LLM judge's retries sample); they are part of each call's
        key. `keep(message, answer)`: store only the answers it accepts, and never an empty one (a later run asks
        again)."""
        identity = {**self.identity, **settings.record()} if settings is not None else self.identity
        unique = list(dict.fromkeys(messages))
        prepared = [self.prepare(message) for message in unique]
        keys = [self.cache.key(identity, request) for _, request, _ in prepared]
        found = self.cache.answers(keys)
        stored = None if keep is None else (lambda i, text: bool(text.strip()) and keep(unique[i], text))
        if stored is not None:  # an answer stored before it was checked (an older cache) is asked again
            found = {key: found[key] for i, key in enumerate(keys) if key in found and stored(i, found[key])}
        missing = {key for key in keys if key not in found}
        self.cached += len(keys) - len(missing)
        if missing:
            self._generate(prepared, keys, found, missing, what, settings, stored)
        by_message = {message: found[key] for message, key in zip(unique, keys)}
        return [by_message[message] for message in messages]

    def _generate(self, prepared: list, keys: list[str], found: dict, missing: set, what: str, settings=None,
                  stored: Callable[[int, str], bool] | None = None) -> None:
        if self.generator is None:
            logger.info("loading %s", self.identity.get("model"))
            self.generator = self.load()
            self.own_settings = self.generator.settings
        chosen = settings if settings is not None else self.own_settings
        if self.generator.settings != chosen:
            self.generator.use_settings(chosen)
        seed = self.seed if settings is None else settings.seed
        batch_size = self.batch_size or self.generator.default_batch_size
        with tqdm(total=len(missing), desc=f"{what} ({len(keys) - len(missing)} cached)", unit="call") as bar:
            for batch in plan_batches([length for _, _, length in prepared], batch_size):
                todo = [i for i in batch if keys[i] not in found]
                if not todo:
                    continue
                sent = todo if self.generator.independent_requests else batch
                inputs = [prepared[i][0] for i in sent]
                for finished in self.generator.completed(inputs, [seed] * len(sent)):
                    new = [(sent[j], g) for j, g in finished if keys[sent[j]] not in found]
                    self.cache.add([(keys[i], prepared[i][1], g) for i, g in new
                                    if stored is None or stored(i, g.text)])
                    found.update((keys[i], g.text) for i, g in new)
                    self.sent += len(finished)
                    bar.update(len(new))


def cached_generator(cache: GenerationCache, model: PreparedModel, *, use_chat_template: bool | None = None,
                     batch_size: int | None = None) -> CachedGenerator:
    """The prepared `model` behind `cache`: its identity (the cache keys' part that is not the prompt) is known now,
    its weights are loaded on the first call the cache cannot answer. A local model gets each message wrapped in its
    chat template (when it has one) as token ids; a served one gets the message as one chat turn (API mode "chat"),
    or the prompt text ("completions")."""
    source, settings, budget = model.source, model.settings, model.budget
    generator_class, served = model.generator_class, model.served
    builder = model.prompt_builder(None, use_chat_template)
    as_message = served and model.api_mode == "chat"
    record = model.model_settings
    identity = {"model": record.name, "backend": record.backend, "dtype": record.dtype,
                "fingerprint": record.fingerprint, "base_model": record.base_model,
                "chat_template": builder.use_chat_template, "chat_template_kwargs": source.chat_template_kwargs or None,
                **settings.record()}
    if served:
        identity.update(api_mode=record.api_mode, prompt_tokenizer=record.prompt_tokenizer)

    def prepare(message: str) -> tuple[object, str, int]:
        prompt = builder.format(message)
        length = builder.count(prompt)
        if length > budget:
            raise ValueError(f"a prompt takes {length} tokens, more than the budget of {budget} "
                             f"(--max_prompt_length); it begins {message[:120]!r}")
        request = message if as_message else prompt
        sent = request if generator_class.prompt_form == "text" else source.encode(prompt, builder.use_chat_template)
        return sent, request, length

    def load():
        return model.load(budget)

    tokenizer = None if served and model.served_tokenizer is None else source.tokenizer  # not the approximate counter
    return CachedGenerator(cache, identity, prepare, load, batch_size, settings.seed, tokenizer)
