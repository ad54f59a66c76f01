"""Progress of one generation run: its prompts saved, each keyed by a hash of what the backend is sent, and
generation of what is missing into a progress file per process (merged by the main one)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from generation.decoding import plan_batches
from generation.predictions import PredictionStore, read_progress
from longlamp_io import write_json_atomic
from longlamp_runs import PROGRESS_FILE, PROMPTS_FILE, RunRecord

logger = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """One run's prompts and progress, ready for generation (one per profile / no-profile variant and seed)."""

    output_dir: Path
    record: RunRecord
    seed: int  # example i is generated with seed + i
    ids: list[str]
    inputs: list  # what the backend takes: token ids, or the prompt text (a served model)
    lengths: list[int]  # prompt tokens, as the builder counted them
    keys: list[str]
    store: PredictionStore  # this process's progress file
    elsewhere: dict = field(default_factory=dict)  # finished in other processes' progress files (see `share`)

    def finished(self, key: str) -> bool:
        return key in self.store or key in self.elsewhere

    @property
    def done(self) -> bool:
        return all(self.finished(key) for key in self.keys)


def share() -> tuple[int, int]:
    """(rank, number of processes) under `accelerate launch` or torchrun (their RANK and WORLD_SIZE), else (0, 1).

    Each process generates every `world`-th batch of the one length-sorted plan (`plan_batches`), so its batches
    are the very batches of a one-process run and the merged predictions equal it; the main process merges."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is not below WORLD_SIZE {world}")
    return rank, world


def progress_path(directory: Path, rank: int) -> Path:
    """This process's progress file: the main one's is progress.jsonl, the others' progress.rank<N>.jsonl."""
    return directory / (PROGRESS_FILE if rank == 0 else f"progress.rank{rank}.jsonl")


def prompt_key(prompt: Sequence[int] | str, seed: int | None) -> str:
    """What one example's generation depends on beyond the run's settings: what the backend is sent (prompt ids,
    or a served model's prompt text) and its seed."""
    text = json.dumps([prompt if isinstance(prompt, str) else list(prompt), seed], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def prepare_run(directory: Path, record: RunRecord, records: list[dict], inputs: list, seed: int,
                sampling: bool) -> PreparedRun:
    """Save one run's prompts and open or resume its progress file. Example i is generated with seed + i; when
    sampling, that seed is part of its key (greedy outputs do not depend on it)."""
    keys = [prompt_key(prompt, seed + index if sampling else None) for index, prompt in enumerate(inputs)]
    directory.mkdir(parents=True, exist_ok=True)
    rank = share()[0]
    if rank == 0:
        write_json_atomic(directory / PROMPTS_FILE, records)
    store = PredictionStore(progress_path(directory, rank), record, keys)
    elsewhere = {}
    for path in sorted(directory.glob("progress*.jsonl")):
        if path != store.path:
            elsewhere.update(read_progress(path, record, keys))
    done = len(set(store.records) | set(elsewhere))
    if done:
        logger.info("%s: resuming, %d of %d examples already done", directory, done, len(records))
    return PreparedRun(directory, record, seed, [r["id"] for r in records], inputs,
                       [r["prompt_tokens"] for r in records], keys, store, elsewhere)


def generate_missing(run: PreparedRun, generator, batch_size: int, rank: int = 0, world: int = 1) -> None:
    """Generate every example of this process's share not yet done, saving each answer as it comes in.

    The batch plan depends only on the prompts and `batch_size`, and process `rank` takes every `world`-th batch
    of it. A batch with any missing example is generated whole (a padded batch's outputs can depend on its
    neighbours), so a resumed run computes exactly what an uninterrupted one would have; a backend whose
    requests are independent (a server) is sent only the missing ones.
    """
    keys = run.keys
    batches = plan_batches(run.lengths, batch_size)[rank::world]
    mine = [i for batch in batches for i in batch]
    done = sum(run.finished(keys[i]) for i in mine)
    desc = f"generating ({run.output_dir}{f', process {rank} of {world}' if world > 1 else ''})"
    with tqdm(total=len(mine), initial=done, desc=desc, unit="ex") as bar:
        for batch in batches:
            missing = [i for i in batch if not run.finished(keys[i])]
            if not missing:
                continue
            sent = missing if generator.independent_requests else batch
            for finished in generator.completed([run.inputs[i] for i in sent], [run.seed + i for i in sent]):
                new = [(keys[sent[j]], run.ids[sent[j]], output) for j, output in finished
                       if not run.finished(keys[sent[j]])]
                run.store.add(new)
                bar.update(len(new))


def collect_other_processes(run: PreparedRun, poll_seconds: float = 1.0) -> None:
    """Main process: wait until the other processes' progress files hold the rest, copy it into progress.jsonl,
    then delete them (a run killed in between merges them again when resumed)."""
    others = [path for path in sorted(run.output_dir.glob("progress*.jsonl")) if path != run.store.path]
    missing = [key for key in run.keys if key not in run.store]
    announced = False
    while missing:
        found = {}
        for path in others:
            found.update(read_progress(path, run.record, missing))
        run.store.add_records([found[key] for key in missing if key in found])
        missing = [key for key in missing if key not in found]
        if missing:
            if not announced:
                logger.info("%s: waiting for %d examples from the other processes", run.output_dir, len(missing))
                announced = True
            time.sleep(poll_seconds)
            others = [path for path in sorted(run.output_dir.glob("progress*.jsonl")) if path != run.store.path]
    for path in others:
        path.unlink()
