"""What ranked data says about itself: the retriever that ranked it (`ranked_by`, written by `rank_dataset`) and,
when its ids are the loader's `<config>-<split>-<index>`, the task. Training and zero-shot evaluation read
`--is_ranked` data through `ranked_source`, so neither asks again for what the file already records."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from longlamp_tasks import parse_config_name
from retrieval.ranking import RANKED_BY_COLUMN

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankedSource:
    """retriever: the ranking retriever's name; signature: its full signature; config: the config name the ids
    carry, or None."""

    retriever: str
    signature: str
    config: str | None


def ranked_source(dataset, source: str, task: str | None = None, retriever: str | None = None) -> RankedSource:
    """Read the ranking of `dataset` (loaded from `source`); a task or retriever given as well must agree."""
    if RANKED_BY_COLUMN not in dataset.column_names:
        raise ValueError(f"{source} has no {RANKED_BY_COLUMN!r} column: it is not ranked data "
                         "(write it with retrieval/rank_profiles.py, or drop --is_ranked)")
    signatures = set(dataset.unique(RANKED_BY_COLUMN))
    if len(signatures) != 1 or None in signatures:
        raise ValueError(f"{source}: {RANKED_BY_COLUMN!r} holds {sorted(map(str, signatures))}; ranked data comes "
                         "from one retriever")
    signature = signatures.pop()
    name = signature.split("(")[0]
    if retriever is not None and retriever != name:
        raise ValueError(f"{source} was ranked with {signature!r}, not with --retriever {retriever!r}")
    config = None
    if "id" in dataset.column_names and len(dataset):
        prefix = str(dataset[0]["id"]).split("-")[0]
        try:
            parse_config_name(prefix)
            config = prefix
        except ValueError:
            pass
    if task is not None and config is not None and parse_config_name(task) != parse_config_name(config):
        raise ValueError(f"{source} holds {config} rows, not --task {task!r}")
    return RankedSource(name, signature, config)


def ranked_task_and_retriever(source: str, task: str | None, retriever: str | None) -> tuple[str, str]:
    """For a training run on ranked data: the task (given, else from the ids) and the retriever that ranked it.

    The data's ranking is what the prompts use, so it is what the run records; a different --retriever is
    reported, not followed."""
    import longlamp

    ranked = ranked_source(longlamp.load_split(source, "train", task=task), source, task)
    if retriever is not None and retriever != ranked.retriever:
        logger.warning("%s was ranked with %s: --retriever %s is not used, the run records %s", source,
                       ranked.signature, retriever, ranked.retriever)
    chosen = task or ranked.config
    if chosen is None:
        raise ValueError(f"--task is required: the ids of {source} do not name a LongLaMP config")
    return chosen, ranked.retriever
