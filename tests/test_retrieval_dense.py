"""Dense retrieval with a tiny random BERT built here: official scoring, exact search, one encoding per text."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

from longlamp_tasks import TASKS
from retrieval import get_retriever, top_k_items

TOPIC = TASKS["topic_writing"]
WORDS = ["cats", "dogs", "code", "rain", "tea", "bikes", "maps", "jazz", "snow", "bread", "chess", "boats"]


def build_encoder(path, seed: int = 0) -> str:
    """A 1-layer BERT with random weights and a word-level vocabulary, saved like a Hub model."""
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), model_max_length=24)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run far faster on one thread than on several fighting over a shared machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return build_encoder(tmp_path_factory.mktemp("encoders") / "tiny-bert")


def temporal_examples(count: int = 12, seed: int = 0) -> list[dict]:
    """One user's growing profile, as in the temporal setting: each example's profile extends the last."""
    rng = random.Random(seed)
    posts = [
        {
            "id": str(i),
            "author": "u1",
            "summary": " ".join(rng.choices(WORDS, k=2)),
            "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 40))),
        }
        for i in range(30)
    ]
    examples = [
        {
            "id": f"e{n}",
            "author": "u1",
            "input": "Generate the content for a reddit post " + " ".join(rng.choices(WORDS, k=3)),
            "profile": posts[: 8 + 2 * n],
        }
        for n in range(count)
    ]
    examples.append(
        {"id": "empty", "author": "u2", "input": "Generate the content for a reddit post tea", "profile": []}
    )
    return examples


def official_scores(model_path: str, query: str, corpus: list[str]) -> np.ndarray:
    """The official recipe, text by text: tokenizer(truncation=True), mean pooling, dot product (float64)."""
    return np.array([official_embedding(model_path, text) for text in corpus]) @ official_embedding(model_path, query)


@functools.cache
def official_embedding(model_path: str, text: str) -> np.ndarray:
    tokenizer, model = _official_encoder(model_path)
    tokens = tokenizer([text], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"]
    return (
        (hidden.masked_fill(~mask[..., None].bool(), 0.0).sum(dim=1) / mask.sum(dim=1)[..., None])[0].double().numpy()
    )


@functools.cache
def _official_encoder(model_path: str):
    return AutoTokenizer.from_pretrained(model_path), AutoModel.from_pretrained(model_path).eval()


class ForwardCounter:
    """Counts forward passes of every BertModel, independently of the retriever's own statistics."""

    def __enter__(self):
        self.calls = 0

        def count(module, args, output):
            if isinstance(module, BertModel):
                self.calls += 1

        self._handle = torch.nn.modules.module.register_module_forward_hook(count)
        return self

    def __exit__(self, *exc):
        self._handle.remove()


def test_scores_and_order_equal_brute_force_inner_products_of_the_official_encoding(encoder, tmp_path):
    retriever = get_retriever("contriever", model_name=encoder, cache_dir=tmp_path, batch_size=5)
    examples = temporal_examples()
    rankings = retriever.rank(TOPIC, examples)
    for example, ranking in zip(examples[:-1], rankings):
        query, corpus = TOPIC.query(example["input"]), [TOPIC.corpus_text(item) for item in example["profile"]]
        brute = official_scores(encoder, query, corpus)
        assert sorted(ranking.order.tolist()) == list(range(len(corpus)))
        np.testing.assert_allclose(ranking.scores, brute[ranking.order], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ranking.scores, np.sort(brute)[::-1], rtol=1e-5, atol=1e-5)
    assert rankings[-1].order.tolist() == []


def test_each_distinct_text_is_encoded_once_and_a_second_run_encodes_nothing(encoder, tmp_path):
    examples = temporal_examples()
    distinct = {
        text
        for example in examples
        if example["profile"]
        for text in [TOPIC.query(example["input"]), *(TOPIC.corpus_text(item) for item in example["profile"])]
    }
    first = get_retriever("contriever", model_name=encoder, cache_dir=tmp_path, batch_size=4)
    with ForwardCounter() as counter:
        first_rankings = first.rank(TOPIC, examples[:6]) + first.rank(TOPIC, examples[6:])
    assert first.stats.texts_encoded == len(distinct)
    assert counter.calls == first.stats.forward_passes > 0
    second = get_retriever("contriever", model_name=encoder, cache_dir=tmp_path, batch_size=4)
    with ForwardCounter() as counter:
        second_rankings = second.rank(TOPIC, examples)
    assert counter.calls == second.stats.forward_passes == second.stats.texts_encoded == 0
    assert second.stats.cache_hits == len(distinct)
    for ours, cached in zip(first_rankings, second_rankings):
        assert np.array_equal(ours.order, cached.order) and np.array_equal(ours.scores, cached.scores)


def test_another_encoder_does_not_reuse_the_cache(encoder, tmp_path):
    other = build_encoder(tmp_path / "other-bert", seed=1)
    examples = temporal_examples(count=2)
    get_retriever("contriever", model_name=encoder, cache_dir=tmp_path / "cache").rank(TOPIC, examples)
    retriever = get_retriever("contriever", model_name=other, cache_dir=tmp_path / "cache")
    retriever.rank(TOPIC, examples)
    assert retriever.stats.cache_hits == 0 and retriever.stats.texts_encoded > 0


def test_top_k_items_uses_the_dense_ranking(encoder, tmp_path):
    retriever = get_retriever("contriever", model_name=encoder, cache_dir=tmp_path)
    example = temporal_examples()[3]
    ranking = retriever.rank(TOPIC, [example])[0]
    assert top_k_items(TOPIC, example, 3, retriever) == [example["profile"][i] for i in ranking.order[:3]]


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be a torch dtype"):
        get_retriever("contriever", dtype="float17")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_half_precision_ranks_like_float32_on_cpu(encoder, tmp_path):
    gpu = get_retriever("contriever", model_name=encoder, cache_dir=tmp_path / "gpu")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float16
    cpu = get_retriever("contriever", model_name=encoder, cache_dir=tmp_path / "cpu", device="cpu")
    for fast, exact in zip(gpu.rank(TOPIC, temporal_examples()), cpu.rank(TOPIC, temporal_examples())):
        np.testing.assert_allclose(fast.scores, exact.scores, rtol=2e-2, atol=2e-2)


def _use_cache_in_child(cache, keys, vectors, results) -> None:
    cache.put(keys[2:], vectors[2:])
    results.put(sorted(cache.get(keys)))


@pytest.mark.multiprocess
def test_a_forked_child_uses_its_own_embedding_cache_connection(tmp_path):
    import multiprocessing

    from retrieval.embedding_cache import EmbeddingCache, text_key

    cache = EmbeddingCache(tmp_path, "fork-test")
    keys = [text_key(f"text {i}") for i in range(4)]
    vectors = np.arange(16, dtype=np.float32).reshape(4, 4)
    cache.put(keys[:2], vectors[:2])
    parent_connection = cache._connection
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_use_cache_in_child, args=(cache, keys, vectors, results))
    child.start()
    assert results.get(timeout=60) == sorted(keys)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert cache._connection is parent_connection  # the parent's own connection, untouched by the child
    np.testing.assert_array_equal(np.stack([cache.get(keys)[k] for k in keys]), vectors)
