"""Dense ranking work: the official per-example Contriever re-encoding against rank_dataset, same tiny encoder.

    python benchmarks/bench_dense.py
    python benchmarks/bench_dense.py --users 4 --items 200 --examples_per_user 8

A temporal-style topic_writing split is generated (seeded): each user has `items` posts and
`examples_per_user` examples whose profiles are the user's earlier posts (growing prefixes, as in the
temporal setting). The encoder is a random 2-layer BERT built on the spot (no download). Measured:
- reference: the official recipe of prompts/contriever_retriever.py with the model loaded once: per
  example, encode the query, then every profile text four at a time, dot products, torch.topk;
- rank_dataset with the contriever retriever and an empty embedding cache, then again with the cache warm.
Printed: texts encoded, encoder forward passes and wall time, with ratios, and the largest difference
between the two score sets (a random tiny encoder scores all texts nearly alike, so rankings are compared
by score, not by item order). Torch runs one thread (--threads) in both, as the machine may be shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast  # noqa: E402

from longlamp_tasks import TASKS  # noqa: E402
from retrieval import get_retriever, rank_dataset  # noqa: E402

TASK = TASKS["topic_writing"]
VOCABULARY = [f"w{i}" for i in range(2000)]


def build_encoder(folder: Path) -> str:
    """A random 2-layer BERT with a word-level vocabulary, saved as a Hub-style model folder."""
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *VOCABULARY]) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), model_max_length=128).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCABULARY) + 5,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


def temporal_split(users: int, items: int, examples_per_user: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)

    def text(words: int) -> str:
        return " ".join(rng.choice(VOCABULARY, max(1, rng.poisson(words))))

    rows = []
    for user in range(users):
        posts = [
            {"id": f"{user}-{i}", "author": f"u{user}", "summary": text(8), "content": text(60)} for i in range(items)
        ]
        for cut in np.linspace(items // 2, items - 1, examples_per_user).astype(int):
            rows.append(
                {
                    "id": f"{user}-{cut}",
                    "author": f"u{user}",
                    "input": "Generate the content for a reddit post " + text(8),
                    "output": "",
                    "profile": posts[:cut],
                }
            )
    return rows


def reference_scores(model_path: str, rows: list[dict]) -> tuple[list[dict], int, int, float]:
    """The official per-example re-encoding: ({item id: score} per example, texts encoded, passes, seconds)."""
    tokenizer, model = AutoTokenizer.from_pretrained(model_path), AutoModel.from_pretrained(model_path).eval()

    def encode(texts):
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        hidden = model(**tokens).last_hidden_state
        mask = tokens["attention_mask"]
        return hidden.masked_fill(~mask[..., None].bool(), 0.0).sum(dim=1) / mask.sum(dim=1)[..., None]

    scored, texts, passes = [], 0, 0
    start = time.perf_counter()
    with torch.no_grad():
        for row in rows:
            query = encode([TASK.query(row["input"])])
            corpus = [TASK.corpus_text(item) for item in row["profile"]]
            scores = []
            for batch in range(0, len(corpus), 4):
                scores.extend((query.squeeze() @ encode(corpus[batch : batch + 4]).T).tolist())
            values, indices = torch.topk(torch.tensor(scores), len(corpus))
            scored.append({row["profile"][i]["id"]: value for i, value in zip(indices.tolist(), values.tolist())})
            texts += 1 + len(corpus)
            passes += 1 + (len(corpus) + 3) // 4
    return scored, texts, passes, time.perf_counter() - start


def ours(model_path: str, dataset: datasets.Dataset, folder: Path, name: str):
    retriever = get_retriever("contriever", model_name=model_path, cache_dir=folder / "cache", device="cpu")
    start = time.perf_counter()
    output = rank_dataset(dataset, TASK, retriever, folder / f"{name}.parquet", progress=False)
    seconds = time.perf_counter() - start
    ranked = datasets.Dataset.from_parquet(str(output), cache_dir=str(folder / "hf"))
    scored = [{item["id"]: score for item, score in zip(row["profile"], row["profile_scores"])} for row in ranked]
    return scored, retriever.stats, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--items", type=int, default=300, help="posts per user (the largest profile)")
    parser.add_argument("--examples_per_user", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for the reference and ours")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    rows = temporal_split(args.users, args.items, args.examples_per_user)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        model_path = build_encoder(folder / "tiny-bert")
        dataset = datasets.Dataset.from_list(rows)
        items = sum(len(row["profile"]) for row in rows)
        print(f"{len(rows)} examples, {items} profile items, {args.users * args.items} distinct posts")
        expected, texts, passes, reference = reference_scores(model_path, rows)
        cold_scores, cold, cold_seconds = ours(model_path, dataset, folder, "cold")
        warm_scores, warm, warm_seconds = ours(model_path, dataset, folder, "warm")
    difference = max(abs(ref[key] - got[key]) for ref, got in zip(expected, cold_scores) for key in ref)
    row = "{:46s} {:7d} texts {:6d} forward passes {:7.2f} s"
    print(row.format("reference (per-example re-encoding, batch 4):", texts, passes, reference))
    print(row.format("rank_dataset, empty cache:", cold.texts_encoded, cold.forward_passes, cold_seconds))
    print(
        f"  ratios: {texts / cold.texts_encoded:.1f}x fewer texts, {passes / cold.forward_passes:.1f}x fewer passes, "
        f"{reference / cold_seconds:.1f}x faster"
    )
    print(row.format("rank_dataset, warm cache:", warm.texts_encoded, warm.forward_passes, warm_seconds))
    print(f"  ratio: {reference / warm_seconds:.1f}x faster")
    print(f"largest score difference from the reference: {difference:.2e}")
    print(f"warm-cache ranking identical to the cold one: {warm_scores == cold_scores}")


if __name__ == "__main__":
    main()
