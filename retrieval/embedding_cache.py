"""Text embeddings kept on disk, so that a text is encoded once per encoder, across runs and processes.

One SQLite file per encoder set-up (its name is a digest of the model, dtype, pooling and length limit),
holding float32 vectors keyed by the SHA-256 of the text. SQLite makes concurrent readers and writers
(several ranking or training processes sharing a cache directory) safe without extra locking.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_LOOKUP_BATCH = 500  # well under SQLite's limit on the number of query parameters


def default_cache_dir() -> Path:
    """$LONGLAMP_CACHE/embeddings, by default ~/.cache/longlamp/embeddings."""
    root = os.environ.get("LONGLAMP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "longlamp"
    )
    return Path(root) / "embeddings"


def text_key(text: str) -> bytes:
    """The cache key of a text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """Vectors of one encoder set-up, by text key."""

    def __init__(self, directory: str | os.PathLike, namespace: str):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = Path(directory) / f"{hashlib.sha256(namespace.encode()).hexdigest()[:32]}.sqlite"
        self._pid, self._process_connection = None, None
        with self._connection:
            self._connection.execute("CREATE TABLE IF NOT EXISTS meta (namespace TEXT NOT NULL)")
            if self._connection.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0:
                self._connection.execute("INSERT INTO meta VALUES (?)", (namespace,))
            self._connection.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")

    @property
    def _connection(self) -> sqlite3.Connection:
        """This process's connection: one must never cross a fork, so a forked child opens its own on first use."""
        if self._pid != os.getpid():
            self._process_connection, self._pid = sqlite3.connect(self.path, timeout=600), os.getpid()
        return self._process_connection

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among keys (missing keys are absent from the result)."""
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), _LOOKUP_BATCH):
            batch = keys[start : start + _LOOKUP_BATCH]
            rows = self._connection.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(batch))})", batch
            )
            found.update((key, np.frombuffer(vector, dtype=np.float32)) for key, vector in rows)
        return found

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one float32 vector per key (a key stored twice keeps its first vector)."""
        rows = [(key, np.ascontiguousarray(vector, dtype=np.float32).tobytes()) for key, vector in zip(keys, vectors)]
        with self._connection:
            self._connection.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?)", rows)

    def close(self) -> None:
        self._connection.close()
