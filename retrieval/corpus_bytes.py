"""Profiles and queries of a batch of examples as UTF-8 byte ranges: what the compiled BM25 kernel reads.

The corpus text of an item is its corpus fields joined with a space (`Task.corpus_text`). Splitting that on
whitespace gives the tokens of each field in turn, so the kernel can read the fields where they already are,
one byte range per item and field, with no joined copy. From Arrow (a chunk of a memory-mapped dataset) the
ranges point straight into the string buffers of the profile column; from Python strings they point into one
encoded buffer per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from longlamp_tasks import Task, field_text


@dataclass(frozen=True)
class CorpusBytes:
    """data: one UTF-8 buffer with every text of the batch.
    fields: how many corpus fields an item has; item i's field f is data[segment_starts[j]:segment_ends[j]] with
    j = i * fields + f.
    item_offsets: example e owns items item_offsets[e]..item_offsets[e + 1] - 1.
    query_starts/query_ends: the byte range of example e's query.
    """

    data: np.ndarray
    fields: int
    segment_starts: np.ndarray
    segment_ends: np.ndarray
    item_offsets: np.ndarray
    query_starts: np.ndarray
    query_ends: np.ndarray

    @classmethod
    def from_strings(cls, queries: Sequence[str], corpora: Sequence[Sequence[str]]) -> CorpusBytes:
        """One query and one list of corpus texts (one field: the joined text) per example."""
        item_offsets = np.zeros(len(corpora) + 1, dtype=np.int64)
        np.cumsum([len(corpus) for corpus in corpora], out=item_offsets[1:])
        texts = [text for corpus in corpora for text in corpus]
        encoded = [text.encode("utf-8", "surrogatepass") for text in (*texts, *queries)]
        lengths = np.array([len(text) for text in encoded], dtype=np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        items = len(texts)
        return cls(data, 1, starts[:items], ends[:items], item_offsets, starts[items:], ends[items:])

    @classmethod
    def from_arrow(cls, task: Task, table: pa.Table) -> CorpusBytes | None:
        """The rows of a table with `input` and `profile` columns; None when a row has a null input, profile or
        item (the row-by-row path then names it in its error)."""
        inputs = table.column("input").combine_chunks()
        profiles = table.column("profile").combine_chunks()
        if not pa.types.is_string(inputs.type) and not pa.types.is_large_string(inputs.type):
            return None
        if inputs.null_count or profiles.null_count:
            return None
        items = profiles.flatten()
        if items.null_count:
            return None
        queries = pa.array([task.query(text) for text in inputs.to_pylist()], pa.string())
        pieces, segment_starts, segment_ends, size = [], [], [], 0
        for values in [*(_field_values(items, field) for field in task.corpus_fields), queries]:
            data, starts, ends = _string_bytes(values)
            pieces.append(data)
            segment_starts.append(starts + size)
            segment_ends.append(ends + size)
            size += len(data)
        offsets = profiles.offsets.to_numpy().astype(np.int64)
        data = np.concatenate(pieces)
        data.flags.writeable = False  # like from_strings' buffer: one compiled kernel serves both
        return cls(
            data,
            len(task.corpus_fields),
            np.stack(segment_starts[:-1], axis=1).reshape(-1),
            np.stack(segment_ends[:-1], axis=1).reshape(-1),
            offsets - offsets[0],
            segment_starts[-1],
            segment_ends[-1],
        )


def _field_values(items: pa.StructArray, field: str) -> pa.Array:
    """A corpus field of every item as strings: a missing field is empty text, nulls stay null (empty too), and
    a field that is not a string (product_review's rating) is written as the official code prints it."""
    if items.type.get_field_index(field) < 0:
        return pa.nulls(len(items), pa.string())
    values = items.field(field)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values
    return pa.array([field_text(value) for value in values.to_pylist()], pa.string())


def _string_bytes(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bytes of a string array's values (one slice of its data buffer) and each value's range in them;
    nulls are empty."""
    _, offsets_buffer, data_buffer = values.buffers()
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[values.offset : values.offset + len(values) + 1]
    offsets = offsets.astype(np.int64)
    first, last = (int(offsets[0]), int(offsets[-1])) if len(values) else (0, 0)
    starts, ends = offsets[:-1] - first, offsets[1:] - first
    if values.null_count:
        ends = np.where(values.is_null().to_numpy(zero_copy_only=False), starts, ends)
    data = np.zeros(0, np.uint8) if data_buffer is None else np.frombuffer(data_buffer, np.uint8)[first:last]
    return data, starts, ends
