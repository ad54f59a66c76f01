"""Examples per second of batched, length-sorted generation against one-by-one generation.

Both run the transformers backend (`generation.hf_transformers.TransformersGenerator`) on the same prompts
(official prompts from the bundled sample, 0 to 4 profile items each, so lengths vary as in a real split)
with greedy decoding, and the outputs are checked to be identical. A third line shows batching without the
length sort, to separate what sorting adds. With vLLM and a GPU present, vLLM is timed on the same prompts.
On CPU, torch runs one thread by default (`--threads`): with more threads than free cores, spin-waiting
slows small steps tenfold and more, which distorts the one-by-one reference most.

    python benchmarks/bench_generation.py                        # a tiny random Llama, built on the spot
    python benchmarks/bench_generation.py --model Qwen/Qwen2.5-0.5B-Instruct --max_new_tokens 128
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from generation.decoding import GenerationSettings, plan_batches  # noqa: E402
from generation.hf_transformers import TransformersGenerator  # noqa: E402
from generation.source import resolve_model  # noqa: E402
from generation.vllm_engine import VLLMGenerator  # noqa: E402
from longlamp_prompts import PromptBuilder  # noqa: E402
from longlamp_tasks import TASKS  # noqa: E402

CONFIGS = ("product_review_user", "topic_writing_user", "abstract_generation_user")


def sample_prompts(source, count: int, budget: int) -> list[list[int]]:
    """Token ids of `count` official prompts from the bundled sample, with 0 to 4 profile items each."""
    import longlamp

    prompts = []
    for config in CONFIGS:
        task = TASKS[config.rsplit("_", 1)[0]]
        builder = PromptBuilder(task, source.tokenizer, budget)
        for split in ("train", "validation", "test"):
            for row in longlamp.load(config, split=split, data_dir=str(REPO / "data" / "sample")):
                prompt = builder(row["profile"][: len(prompts) % 5], row["input"])
                prompts.append(source.encode(prompt, builder.use_chat_template))
    if len(prompts) < count:
        raise SystemExit(f"the sample holds {len(prompts)} prompts; ask for at most that many")
    return prompts[:count]


def best_of(repeats: int, runs: dict) -> dict:
    """Outputs and best wall time of each run, repeated in turn (the fairest view on a shared machine)."""
    results = {name: (None, float("inf")) for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs = run()
            results[name] = (outputs, min(results[name][1], time.perf_counter() - start))
    return results


def batched(generator, prompts, batches) -> list[str]:
    outputs: list[str | None] = [None] * len(prompts)
    for batch in batches:
        for i, text in zip(batch, generator.generate([prompts[i] for i in batch], [0] * len(batch))):
            outputs[i] = text
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model to time (default: a tiny random Llama built on the spot)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--max_prompt_tokens", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="best time of this many runs is reported")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared machine, spinning threads distort the timings)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        if args.model is None:
            from support.tiny_models import make_causal_lm

            args.model = str(make_causal_lm(Path(scratch) / "tiny-llama"))
        source = resolve_model(args.model)
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
        generator = TransformersGenerator(source, settings)
        prompts = sample_prompts(source, args.examples, args.max_prompt_tokens)
        lengths = [len(p) for p in prompts]
        print(f"{len(prompts)} prompts of {min(lengths)}-{max(lengths)} tokens, {args.max_new_tokens} new tokens, "
              f"model {args.model}, batch size {args.batch_size}")

        generator.generate(prompts[:2], [0, 0])  # warm-up: first calls pay one-off set-up costs
        everyone = list(range(len(prompts)))
        unsorted = [everyone[s:s + args.batch_size] for s in range(0, len(prompts), args.batch_size)]
        results = best_of(args.repeats, {
            "single": lambda: [generator.generate([p], [0])[0] for p in prompts],
            "plain": lambda: batched(generator, prompts, unsorted),
            "fast": lambda: batched(generator, prompts, plan_batches(lengths, args.batch_size)),
        })
        (reference, single_s), (plain, plain_s), (fast, fast_s) = results["single"], results["plain"], results["fast"]

        rate = len(prompts) / single_s
        print(f"one by one (reference)        {rate:8.2f} examples/s")
        print(f"batched, dataset order        {len(prompts) / plain_s:8.2f} examples/s  "
              f"{single_s / plain_s:5.2f}x  identical outputs: {plain == reference}")
        print(f"batched, length-sorted (ours) {len(prompts) / fast_s:8.2f} examples/s  "
              f"{single_s / fast_s:5.2f}x  identical outputs: {fast == reference}")

        if VLLMGenerator.available():
            del generator
            engine = VLLMGenerator(source, settings, **VLLMGenerator.run_options(max(lengths), args.max_new_tokens))
            engine.generate(prompts[:2], [0, 0])
            runs = {"vllm": lambda: engine.generate(prompts, [0] * len(prompts))}
            outputs, vllm_s = best_of(args.repeats, runs)["vllm"]
            same = sum(a == b for a, b in zip(outputs, reference))
            print(f"vLLM                          {len(prompts) / vllm_s:8.2f} examples/s  "
                  f"{fast_s / vllm_s:5.2f}x ours  outputs equal to transformers: {same}/{len(prompts)}")
        else:
            print("vLLM: not measured (needs `pip install vllm` and a CUDA GPU)")


if __name__ == "__main__":
    main()
