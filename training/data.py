"""LongLaMP rows to token ids: retrieved profile items, the official prompt within budget, and the target.

A training example is the prompt followed by the target and the end-of-sequence token; only the target
tokens (EOS included) carry a label. Neither the task input nor the target is ever cut: the prompt budget
is met by shortening profile items (`longlamp_prompts.PromptBuilder`), and a target longer than
`max_target_length` is an error (or skipped, when asked), so that a model never learns truncated text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from longlamp_errors import DataError, PromptBudgetError
from longlamp_io import replace_folder
from longlamp_prompts import PromptBuilder
from longlamp_tasks import Task

if TYPE_CHECKING:  # imported where used: the collator and the loss need no datasets
    import datasets

IGNORE_INDEX = -100
REPO = Path(__file__).resolve().parent.parent
# The code that turns rows into token ids: a change to it invalidates encoded data cached by an earlier version.
ENCODING_CODE = ("longlamp_prompts.py", "longlamp_tasks.py", "training/data.py", "retrieval")
logger = logging.getLogger(__name__)


@dataclass
class ExampleEncoder:
    """Turns one LongLaMP row into model inputs for a decoder-only or an encoder-decoder model."""

    task: Task
    tokenizer: object
    is_encoder_decoder: bool
    max_prompt_length: int
    max_target_length: int
    num_retrieved: int = 0
    retriever: object | str | None = None  # a retrieval.Retriever, or with is_ranked the name to check against
    is_ranked: bool = False
    use_chat_template: bool | None = None

    def __post_init__(self):
        if self.tokenizer.eos_token_id is None:
            raise DataError("the tokenizer has no end-of-sequence token; training needs one to end targets")
        self.prompts = PromptBuilder(self.task, self.tokenizer, self.max_prompt_length, self.use_chat_template)

    def retrieved(self, row: Mapping) -> list[dict]:
        """The row's profile items that go in its prompt (none without retrieval)."""
        if not self.num_retrieved:
            return []
        from retrieval import top_k_items

        return top_k_items(self.task, row, self.num_retrieved, retriever=self.retriever, is_ranked=self.is_ranked)

    def prompt(self, row: Mapping) -> str:
        """The formatted prompt (chat template applied when used) for a row, within the prompt budget."""
        return self.prompts(self.retrieved(row), row["input"])

    def prompt_ids(self, prompt: str) -> list[int]:
        # Chat templates write their own special tokens; plain prompts get the tokenizer's (as PromptBuilder counts).
        return self.tokenizer(prompt, add_special_tokens=not self.prompts.use_chat_template)["input_ids"]

    def target_ids(self, target: str) -> list[int]:
        return self.tokenizer(target, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def encode(self, row: Mapping, with_target: bool = True) -> dict:
        """input_ids, labels (IGNORE_INDEX on prompt tokens), prompt_length, length (tokens the model processes)."""
        prompt = self.prompt_ids(self.prompt(row))
        if not prompt:  # the first target token would have nothing to be predicted from
            raise ValueError("the prompt is empty (an empty input, and a tokenizer that adds no special tokens)")
        target = self.target_ids(row["output"]) if with_target else []
        if self.is_encoder_decoder:
            input_ids, labels = prompt, target
        else:
            input_ids, labels = prompt + target, [IGNORE_INDEX] * len(prompt) + target
        return {
            "input_ids": input_ids,
            "labels": labels,
            "prompt_length": len(prompt),
            "target_length": len(target),
            "length": len(input_ids) + (len(labels) if self.is_encoder_decoder else 0),
        }


def check_rows(dataset: datasets.Dataset, source: str, with_target: bool, needs_profile: bool) -> None:
    """Fail early, naming the source, row and field, on rows the run cannot use."""
    required = ["id", "input"] + (["output"] if with_target else []) + (["profile"] if needs_profile else [])
    missing = [name for name in required if name not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: no {', '.join(missing)} column (columns: {', '.join(dataset.column_names)})")
    if len(dataset) == 0:
        raise DataError(f"{source}: no rows")
    for column in ("input", "output") if with_target else ("input",):
        for row_id, value in zip(dataset["id"], dataset[column]):
            if value is None:
                what = "training and validation need outputs" if column == "output" else "every row needs an input"
                raise DataError(f"{source}: row {row_id!r} has no {column!r} ({what})")


def encode_dataset(
    dataset: datasets.Dataset,
    encoder: ExampleEncoder,
    source: str,
    with_target: bool = True,
    skip_long_targets: bool = False,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Encode every row (keeping `id` and `output`); raise on prompts or targets that cannot fit."""
    check_rows(dataset, source, with_target, needs_profile=encoder.num_retrieved > 0)

    def encode(row):
        try:
            encoded = encoder.encode(row, with_target)
        except PromptBudgetError as error:
            raise DataError(f"{source}: row {row['id']!r}: {error}; the budget is --max_prompt_length "
                            f"{encoder.max_prompt_length}") from None
        except ValueError as error:  # e.g. ranked data whose ranking is not the requested retriever's
            raise DataError(f"{source}: row {row['id']!r}: {error}") from None
        if encoded["target_length"] > encoder.max_target_length and not skip_long_targets:
            raise DataError(
                f"{source}: row {row['id']!r}: the output takes {encoded['target_length']} tokens with "
                f"end-of-sequence, more than --max_target_length {encoder.max_target_length}; raise it or pass "
                "--long_targets skip (targets are never cut)"
            )
        return encoded

    keep = {"id", "output"} & set(dataset.column_names)
    encoded = dataset.map(
        encode,
        remove_columns=[name for name in dataset.column_names if name not in keep],
        num_proc=num_proc,
        keep_in_memory=True,
        desc=f"Building prompts ({source})",
    )
    if skip_long_targets:
        kept = encoded.filter(lambda n: n <= encoder.max_target_length, input_columns="target_length",
                              keep_in_memory=True)
        if len(kept) < len(encoded):
            logger.warning("%s: skipped %d of %d rows whose output is longer than %d tokens", source,
                           len(encoded) - len(kept), len(encoded), encoder.max_target_length)
        if len(kept) == 0:
            raise DataError(f"{source}: every output is longer than --max_target_length {encoder.max_target_length}")
        encoded = kept
    logger.info("encoded %d rows of %s", len(encoded), source)
    return encoded


def encoding_key(rows: datasets.Dataset, tokenizer, settings: Mapping) -> str:
    """A digest of everything encoded rows depend on: the rows, the encoding settings, the tokenizer, the code."""
    from datasets.fingerprint import Hasher

    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else Hasher.hash(tokenizer)
    digest.update(json.dumps({
        "rows": rows._fingerprint, "settings": dict(settings), "tokenizer": vocabulary,
        "special_tokens": tokenizer.special_tokens_map, "chat_template": getattr(tokenizer, "chat_template", None),
    }, sort_keys=True, default=str).encode())
    for name in ENCODING_CODE:
        path = REPO / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:20]


def encoded_cache_dir(cache_dir: str | None) -> Path:
    """Where encoded data is kept: longlamp-encoded/ in the datasets cache (--cache_dir, else datasets' default)."""
    import datasets

    return Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "longlamp-encoded"


def cached_encoding(folder: Path, encode) -> datasets.Dataset:
    """The encoded data saved in `folder`, or `encode()` saved there first (under a temporary name, renamed when
    whole), so that the other processes of a run, and the run's restarts, read it instead of encoding again."""
    import datasets

    if (folder / "state.json").is_file():
        logger.info("reusing the encoded data in %s", folder)
        return datasets.load_from_disk(str(folder))
    data = encode()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    data.save_to_disk(str(tmp))
    replace_folder(tmp, folder, if_absent=True)  # another process may have saved the same encoding first
    return datasets.load_from_disk(str(folder))
