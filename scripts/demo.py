"""The main job end to end on the bundled sample: load, rank profiles, build prompts, predict, score.

1. load every config of the sample (the Avocado email task from its synthetic archive) and summarise it;
2. rank each user-setting validation split's profiles with BM25 (`retrieval.rank_dataset`, as
   `retrieval/rank_profiles.py` does) and show the official prompt of one example;
3. score three prediction rules with the benchmark's metrics (`evaluation.metrics.score`): the task input
   itself (no profile), the main text of a random profile item, and that of the best BM25 item. The last
   two use the user's profile; the gap is what retrieval from one's own profile is worth on this data;
4. with --model_addr (a Hub id or a folder), also run zero-shot generation with and without the profile
   (`evaluation/evaluate_llm.py`) and print its scores.

Usage: python scripts/demo.py [--data_dir data/sample] [--model_addr MODEL] [--output_dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import datasets  # noqa: E402

import longlamp  # noqa: E402
from evaluation.metrics import score  # noqa: E402
from longlamp_tasks import config_names, parse_config_name  # noqa: E402
from retrieval import get_retriever, rank_dataset, top_k_items  # noqa: E402

HEADLINE = ("rouge1", "rougeL", "meteor")


def summarise(name: str, dataset_dict) -> str:
    task, _ = parse_config_name(name)
    parts = []
    for split, ds in dataset_dict.items():
        sizes = [len(p) for p in ds["profile"]]
        words = [len(o.split()) for o in ds["output"] if o is not None]
        parts.append(f"{split} {len(ds):>2} rows, profiles {min(sizes)}-{max(sizes)} items, "
                     f"outputs {statistics.mean(words):.0f} words")
    return f"  {name:<29} " + "; ".join(parts)


def baseline_predictions(task, rows, rule: str) -> list[str]:
    """The prediction of each row under a rule that needs no model."""
    if rule == "input (no profile)":
        return [row["input"] for row in rows]
    retriever = get_retriever("random", seed=0) if rule.startswith("random") else None
    predictions = []
    for row in rows:
        # Ranked rows: BM25's best item comes first; the random retriever re-draws from the profile.
        items = top_k_items(task, row, 1, retriever=retriever, is_ranked=retriever is None)
        predictions.append(items[0][task.output_field] if items else row["input"])
    return predictions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, default=REPO / "data" / "sample")
    parser.add_argument("--model_addr", help="also run zero-shot generation with this model (Hub id or folder)")
    parser.add_argument("--output_dir", type=Path, help="where to keep ranked data and runs (default: a temp dir)")
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()  # a demo's output is its tables
    with tempfile.TemporaryDirectory() as scratch:
        work = args.output_dir or Path(scratch)
        cache = str(work / "datasets-cache")
        print("1. The bundled sample (synthetic; see data/sample/README.md)")
        for name in config_names(with_aliases=False):
            task, _ = parse_config_name(name)
            data_dir = args.data_dir if task.public else args.data_dir / "avocado"
            print(summarise(name, longlamp.load(name, data_dir=str(data_dir), cache_dir=cache)))

        print("\n2.-3. BM25 ranking, prompts and scores (validation splits, user setting)")
        print(f"  {'config':<29} {'prediction':<24} " + " ".join(f"{m:>7}" for m in HEADLINE))
        for name in ("abstract_generation_user", "product_review_user", "topic_writing_user", "email_generation_user"):
            task, _ = parse_config_name(name)
            data_dir = args.data_dir if task.public else args.data_dir / "avocado"
            split = longlamp.load(name, split="validation", data_dir=str(data_dir), cache_dir=cache)
            ranked_path = rank_dataset(split, task, "bm25", work / "ranked" / f"{name}.parquet", progress=False)
            ranked = list(longlamp.load_split(str(ranked_path), "validation"))
            for rule in ("input (no profile)", "random profile item", "best BM25 item"):
                predictions = baseline_predictions(task, ranked, rule)
                result = score(predictions, [row["output"] for row in ranked], bootstrap=0, num_workers=1)
                values = " ".join(f"{result['metrics'][m]:7.4f}" for m in HEADLINE)
                print(f"  {name:<29} {rule:<24} {values}")
        example = ranked[1]
        prompt = task.build_prompt(top_k_items(task, example, 2, is_ranked=True), example["input"])
        print(f"\n  The official prompt of {example['id']} with its 2 best BM25 items ({len(prompt.split())} words):")
        print("  " + prompt[:400].replace("\r", "").replace("\n", " ") + " ...")

        if args.model_addr:
            from evaluation.zero_shot import ZeroShotOptions, evaluate

            print(f"\n4. Zero-shot generation with {args.model_addr} (product_review_user, validation)")
            runs = evaluate(ZeroShotOptions(
                validation_data="product_review_user", data_dir=str(args.data_dir), cache_dir=cache,
                model_name=args.model_addr, output_dir=str(work / "zero-shot"), use_profile=True,
                retriever="bm25", num_retrieved=2, compare_no_profile=True, max_new_tokens=128,
            ))
            for label, run in zip(("with profile", "no profile"), runs):
                print(f"  {label:<13}" + " ".join(f"{m}={run['scores']['metrics'][m]:.4f}" for m in HEADLINE))
        print("\nDone. Next: docs/retrieval.md, docs/training.md, docs/zero_shot.md, docs/evaluation.md")


if __name__ == "__main__":
    main()
