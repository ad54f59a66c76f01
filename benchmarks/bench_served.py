"""Examples per second of the openai backend with one request in flight against --max_concurrency 16.

Both send the same official prompts from the bundled sample (0 to 4 profile items each) to the same local
OpenAI-compatible server (tests/support/openai_server.py: a tiny random Llama built on the spot, or --model, decoding
requests that arrive together as one padded batch, as vLLM does), greedy, through the completions endpoint,
and the predictions are checked to be identical. Each setting is timed best of --repeats, in turn.

    python benchmarks/bench_served.py
    python benchmarks/bench_served.py --concurrency 32 --max_new_tokens 128
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.openai_server import served  # noqa: E402

from generation.decoding import GenerationSettings  # noqa: E402
from generation.openai_api import OpenAIGenerator  # noqa: E402
from generation.served_model import served_model  # noqa: E402
from longlamp_prompts import PromptBuilder  # noqa: E402
from longlamp_tasks import TASKS  # noqa: E402

CONFIGS = ("product_review_user", "topic_writing_user", "abstract_generation_user")


def sample_prompts(source, count: int, budget: int) -> list[str]:
    """`count` official prompts from the bundled sample as text, with 0 to 4 profile items each."""
    import longlamp

    prompts = []
    for config in CONFIGS:
        builder = PromptBuilder(TASKS[config.rsplit("_", 1)[0]], source.tokenizer, budget)
        for split in ("train", "validation", "test"):
            for row in longlamp.load(config, split=split, data_dir=str(REPO / "data" / "sample")):
                prompts.append(builder(row["profile"][: len(prompts) % 5], row["input"]))
    if len(prompts) < count:
        raise SystemExit(f"the sample holds {len(prompts)} prompts; ask for at most that many")
    return prompts[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a causal LM folder or Hub id the server loads (default: a tiny random one)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--max_prompt_tokens", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        if args.model is None:
            from support.tiny_models import make_causal_lm

            args.model = str(make_causal_lm(Path(scratch) / "tiny-llama"))
        source = served_model("served", args.model)
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
        prompts = sample_prompts(source, args.examples, args.max_prompt_tokens)
        seeds = [0] * len(prompts)
        with served(args.model, "--max_batch", str(args.concurrency)) as url:
            generators = {n: OpenAIGenerator(source, settings, url, api_mode="completions", max_concurrency=n)
                          for n in (1, args.concurrency)}
            generators[1].generate(prompts[:2], seeds[:2])  # warm-up: the server's first calls pay set-up costs
            best = {n: (None, float("inf")) for n in generators}
            for _ in range(args.repeats):
                for n, generator in generators.items():
                    start = time.perf_counter()
                    outputs = generator.generate(prompts, seeds)
                    best[n] = (outputs, min(best[n][1], time.perf_counter() - start))
        (one, one_s), (many, many_s) = best[1], best[args.concurrency]
        print(f"{len(prompts)} prompts, {args.max_new_tokens} new tokens, model {args.model}, best of {args.repeats}")
        print(f"1 request in flight          {len(prompts) / one_s:8.2f} examples/s")
        print(f"{args.concurrency:>2} requests in flight         {len(prompts) / many_s:8.2f} examples/s  "
              f"{one_s / many_s:5.2f}x  identical predictions: {many == one}")


if __name__ == "__main__":
    main()
