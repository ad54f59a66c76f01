"""Dense retrieval as the official Contriever baseline scores it, without re-encoding the same texts.

The official code encodes an example's query and every profile text with `facebook/contriever` (mean
pooling over the attention mask, `truncation=True`), scores by dot product and takes `torch.topk`; it does
so for every example, four texts at a time, even when the same profile items come back in example after
example (temporal profiles reach 2,500 items). Here the distinct texts of a whole batch of examples are
encoded once, longest first in batches of similar length, on the GPU in half precision when there is one;
vectors are kept in an on-disk cache keyed by encoder and text (a second run with the same encoder encodes
nothing) and each profile is ranked by exact inner-product search with FAISS (on the GPU when FAISS has
GPU support). Scores equal the brute-force dot products up to float32 rounding; among exactly equal scores
the order is FAISS's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from longlamp_errors import ModelLoadError
from longlamp_tasks import Task
from retrieval.base import Ranking, Retriever, query_and_corpus
from retrieval.embedding_cache import EmbeddingCache, default_cache_dir, text_key

DEFAULT_MODEL = "facebook/contriever"
_FAISS_GPU_MAX_K = 2048  # the largest k faiss' GPU search supports


@dataclass
class EncodingStats:
    """What a DenseRetriever has done so far: encoder work and cache use."""

    texts_encoded: int = 0
    forward_passes: int = 0
    cache_hits: int = 0


class DenseRetriever(Retriever):
    """Contriever-style retrieval: mean-pooled encoder states, dot product, exact search."""

    name = "contriever"
    parallel = None  # one model on one device; it batches across the examples of a chunk instead

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        batch_size: int = 64,
        device: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        dtype: str | torch.dtype | None = None,
    ):
        self.model_name = model_name
        self.batch_size = int(batch_size)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
        if not isinstance(self.dtype, torch.dtype):
            raise ValueError(f"dtype must be a torch dtype or its name (such as 'float16'), got {dtype!r}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.stats = EncodingStats()
        self._encoder = None
        self._cache = None

    def result_options(self) -> dict[str, object]:
        return {"model_name": self.model_name, "dtype": str(self.dtype).removeprefix("torch.")}

    def rank(self, task: Task, examples: Sequence[Mapping]) -> list[Ranking]:
        inputs = [query_and_corpus(task, example) for example in examples]
        texts = list(dict.fromkeys(text for query, corpus in inputs if corpus for text in (query, *corpus)))
        vectors = self.embed(texts)
        row = {text: position for position, text in enumerate(texts)}
        rankings = []
        for query, corpus in inputs:
            if not corpus:
                rankings.append(Ranking(order=np.zeros(0, dtype=np.int64), scores=np.zeros(0)))
                continue
            scores, order = inner_product_search(vectors[row[query]], vectors[[row[text] for text in corpus]])
            rankings.append(Ranking(order=order, scores=scores.astype(np.float64)))
        return rankings

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 vectors of texts (one row each), from the cache where it has them, encoded otherwise."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        cache = self._open_cache()
        keys = [text_key(text) for text in texts]
        found = cache.get(list(dict.fromkeys(keys)))
        self.stats.cache_hits += len(found)
        missing = {key: text for key, text in zip(keys, texts) if key not in found}
        if missing:
            encoded = self._encode(list(missing.values()))
            cache.put(list(missing), encoded)
            found.update(zip(missing, encoded))
        return np.stack([found[key] for key in keys])

    def _open_cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir, self._cache_namespace())
        return self._cache

    def _cache_namespace(self) -> str:
        """What the vectors depend on: the model (and, for a local folder, its files), dtype and pooling."""
        files = ""
        if os.path.isdir(self.model_name):
            entries = sorted(Path(self.model_name).iterdir())
            files = ";".join(f"{entry.name}:{entry.stat().st_size}:{entry.stat().st_mtime_ns}" for entry in entries)
        return f"model={self.model_name}|files={files}|dtype={self.dtype}|pooling=mean|truncation=model-max"

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Encode texts in batches of similar length, longest first (an out-of-memory shows up at once)."""
        tokenizer, model, max_length = self._load()
        tokens = tokenizer(texts, truncation=True, max_length=max_length)
        lengths = np.array([len(ids) for ids in tokens["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        vectors = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = tokenizer.pad(
                    {name: [values[i] for i in rows] for name, values in tokens.items()}, return_tensors="pt"
                )
                batch = batch.to(self.device)
                hidden = model(**batch).last_hidden_state.float()
                vectors[rows] = mean_pooling(hidden, batch["attention_mask"]).cpu().numpy()
                self.stats.forward_passes += 1
        self.stats.texts_encoded += len(texts)
        return vectors

    def _load(self):
        """The tokenizer, the model on its device and dtype, and the token limit (loaded on first use)."""
        if self._encoder is None:
            from transformers import AutoModel, AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_name)
                model = AutoModel.from_pretrained(self.model_name, dtype=self.dtype).to(self.device).eval()
            except OSError as error:  # not found, not a model, or the Hub unreachable and nothing cached
                raise ModelLoadError(f"cannot load the encoder {self.model_name!r}: "
                                     f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
            max_length = min(
                tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", tokenizer.model_max_length)
            )
            self._encoder = tokenizer, model, max_length
        return self._encoder

    def __getstate__(self):
        """Picklable without the loaded model and the open cache (they are reopened on first use)."""
        return {**self.__dict__, "_encoder": None, "_cache": None}


def mean_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The official Contriever pooling: the mean of the hidden states of the non-padding tokens."""
    hidden = hidden.masked_fill(~attention_mask[..., None].bool(), 0.0)
    return hidden.sum(dim=1) / attention_mask.sum(dim=1)[..., None]


_gpu_resources = None


def inner_product_search(query: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All rows of vectors by descending inner product with query: (scores, positions); exact search."""
    global _gpu_resources
    query = np.ascontiguousarray(query[None], dtype=np.float32)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    k = len(vectors)
    if faiss.get_num_gpus() > 0 and k <= _FAISS_GPU_MAX_K:
        _gpu_resources = _gpu_resources or faiss.StandardGpuResources()
        scores, positions = faiss.knn_gpu(_gpu_resources, query, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    else:
        scores, positions = faiss.knn(query, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores[0], positions[0].astype(np.int64)
