"""Per-user adapter training: users per minute and peak memory with the base model shared, against a naive loop
that reloads the model for every user (the ratio in one run).

    .venv/bin/python benchmarks/bench_per_user.py                        # a random Llama on the bundled sample
    .venv/bin/python benchmarks/bench_per_user.py --model_name Qwen/Qwen2.5-0.5B --users 20

Both ways train the same users on the same profile examples with the same code (`UserAdapterTrainer`, the
encoding of `training/train_per_user.py`) and save every adapter; the shared way loads the base once and adds and
deletes one adapter per user, the naive way loads base, tokenizer and encoder again for each user. Each way runs
in a fresh process so that its peak memory is its own (resident set size on CPU, `torch.cuda.max_memory_allocated`
on GPU); time counts everything from the first load to the last adapter saved. The two ways must write
identical adapters (checked): sharing the base changes nothing but the cost. On a GPU both ways run with
deterministic kernels (math attention, fixed-order cuBLAS) for that check: with the default ones the adapters
differed by up to twice a tensor's largest value on an H200 (the first Adam step moves a weight by about the
learning rate in its gradient's sign, which a near-zero gradient summed in another order can flip).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the toolkit, and the tiny test models for the default run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name", help="a model folder or Hub id (default: a random Llama built here)")
    parser.add_argument("--hidden_size", type=int, default=256, help="width of the random Llama (default: 256)")
    parser.add_argument("--num_layers", type=int, default=4, help="depth of the random Llama (default: 4)")
    parser.add_argument("--config", default="product_review_temporal", help="sample config whose users are trained")
    parser.add_argument("--split", default="train")
    parser.add_argument("--users", type=int, default=8, help="users to train (default: 8)")
    parser.add_argument("--items", type=int, default=4, help="profile items per user (default: 4)")
    parser.add_argument("--max_prompt_length", type=int, default=256)
    parser.add_argument("--worker", choices=("shared", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def train_flags(args, output_dir: Path) -> list[str]:
    return ["--model_name", args.model_name, "--data", args.config, "--split", args.split, "--data_dir",
            str(REPO / "data" / "sample"), "--cache_dir", str(Path(args.workdir) / "cache"), "--output_dir",
            str(output_dir), "--max_items_per_user", str(args.items), "--num_train_epochs", "1",
            "--max_prompt_length", str(args.max_prompt_length), "--max_users", str(args.users)]


def worker(args) -> dict:
    """Train the users one way in this process; the figures as a dict."""
    import torch

    import longlamp
    from longlamp_tasks import parse_config_name
    from personalization.user_adapters import AdapterStore
    from personalization.users import group_users, profile_examples
    from training.train_per_user import parse_args as per_user_args
    from training.user_adapters import (
        TrainSettings,
        UserAdapterTrainer,
        encode_all,
        example_encoder,
        load_for_training,
        lora_config,
    )

    output_dir = Path(args.workdir) / args.worker
    options = per_user_args(train_flags(args, output_dir))
    task, _ = parse_config_name(options.task)
    users = group_users(longlamp.load_rows(options.data, options.split, task=options.task, data_dir=options.data_dir,
                                           cache_dir=options.cache_dir), task)
    users = [u for u in users if profile_examples(task, u)][: args.users]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":  # identical adapters both ways need kernels that sum in a fixed order
        torch.use_deterministic_algorithms(True)
        torch.backends.cuda.enable_flash_sdp(False)
        torch.backends.cuda.enable_mem_efficient_sdp(False)
    store = AdapterStore(output_dir)
    started = time.perf_counter()
    trainer, loading = None, 0.0
    for user in users:
        if trainer is None or args.worker == "naive":
            load_started = time.perf_counter()
            encoder, model_config, encoder_decoder = example_encoder(options, task)
            model, collator, keep = load_for_training(options, encoder, model_config, encoder_decoder, device)
            loading += time.perf_counter() - load_started
            trainer = UserAdapterTrainer(model, lora_config(options, model.config, encoder_decoder), collator,
                                         encoder_decoder, keep, TrainSettings(options.learning_rate, 1, 4, 1.0,
                                                                              options.seed), device)
        examples = encode_all(encoder, profile_examples(task, user)[: args.items], user.user_id,
                              options.max_target_length, "skip")
        trainer.train_user(user.user_id, examples, [], store)
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    digests = {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted(output_dir.glob("users/*/adapter_model.safetensors"))}
    return {"way": args.worker, "users": len(users), "seconds": seconds, "load_seconds": loading,
            "users_per_minute": 60 * len(users) / seconds,
            "peak_memory_bytes": peak, "memory_kind": "cuda allocated" if device.type == "cuda" else "process RSS",
            "adapter_digests": digests}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    with tempfile.TemporaryDirectory() as workdir:
        if args.model_name is None:
            from support.tiny_models import make_causal_lm

            args.model_name = str(make_causal_lm(Path(workdir) / "model", hidden_size=args.hidden_size,
                                                 intermediate_size=4 * args.hidden_size,
                                                 num_hidden_layers=args.num_layers,
                                                 num_attention_heads=max(4, args.hidden_size // 64),
                                                 num_key_value_heads=max(4, args.hidden_size // 64)))
        results = {}
        for way in ("shared", "naive"):
            command = [sys.executable, __file__, "--worker", way, "--workdir", workdir, "--model_name",
                       args.model_name, "--config", args.config, "--split", args.split, "--users", str(args.users),
                       "--items", str(args.items), "--max_prompt_length", str(args.max_prompt_length)]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"})  # deterministic cuBLAS
            if done.returncode != 0:
                raise SystemExit(f"the {way} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
            line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
            results[way] = json.loads(line.removeprefix("RESULT "))
    shared, naive = results["shared"], results["naive"]
    digests = shared["adapter_digests"]
    differing = [user for user, digest in digests.items() if naive["adapter_digests"].get(user) != digest]
    if differing:
        raise SystemExit(f"the two ways wrote different adapters for {len(differing)} of {len(digests)} users "
                         f"({', '.join(differing)}): the comparison is not like for like")
    print(f"model {args.model_name}, {shared['users']} users of {args.config} ({args.split}), {args.items} items each")
    for result in (shared, naive):
        print(f"{result['way']:>6}: {result['users_per_minute']:8.1f} users/min, {result['seconds']:6.2f} s "
              f"({result['load_seconds']:.2f} s loading), "
              f"peak {result['peak_memory_bytes'] / 2**20:8.1f} MiB ({result['memory_kind']})")
    print(f"shared/naive: {shared['users_per_minute'] / naive['users_per_minute']:.2f}x users per minute, "
          f"{shared['peak_memory_bytes'] / naive['peak_memory_bytes']:.2f}x peak memory; adapters identical")


if __name__ == "__main__":
    main()
