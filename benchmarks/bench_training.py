"""Training throughput and peak memory: this toolkit's loop against TRL's SFTTrainer on the same data.

    .venv/bin/python benchmarks/bench_training.py                      # tiny Llama on the bundled sample, CPU
    .venv/bin/python benchmarks/bench_training.py --model_name Qwen/Qwen2.5-0.5B --use_lora --mixed_precision bf16

Both trainers get the same model, the same prompts (built once by `training.data.ExampleEncoder`: retrieved
profile items, official template, prompt budget), the same completions, batch size, epochs, optimizer
(AdamW), learning rate and schedule, with the loss on completion tokens only. Each run is a fresh process, so
peak memory is its own (resident set size on CPU, `torch.cuda.max_memory_allocated` on GPU). Throughput is
completion (target) tokens per second over the training steps only: setup, tokenisation and saving excluded
on both sides; runs are repeated in interleaved rounds and the fastest of each counts (a shared machine's load
only ever slows a run down). Both final models are then scored by the same held-out loss (mean cross-entropy per
target token on the validation split), which is the "equal loss" check: both trainers draw the same seeded
permutation per epoch, so equal settings give equal losses. Prints one line per run and the ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the toolkit, and the tiny test models for the default run

RUNS = {
    "ours padded": {"trainer": "ours", "packing": False},
    "ours packed": {"trainer": "ours", "packing": True},
    "TRL SFTTrainer": {"trainer": "trl", "padding_free": False},
    "TRL SFTTrainer padding_free": {"trainer": "trl", "padding_free": True},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name", help="model to train (default: a tiny random Llama built on the spot)")
    parser.add_argument("--config", default="product_review_user", help="LongLaMP config of the bundled sample")
    parser.add_argument("--data_dir", default=str(REPO / "data" / "sample"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--learning_rate", type=float, default=5e-3)
    parser.add_argument("--num_retrieved", type=int, default=2, help="profile items per prompt (bm25)")
    parser.add_argument("--max_prompt_length", type=int, default=256)
    parser.add_argument("--max_target_length", type=int, default=1024)
    parser.add_argument("--use_lora", action="store_true")
    parser.add_argument("--mixed_precision", default="no", choices=("no", "bf16", "fp16"))
    parser.add_argument("--attn_implementation", default=None)
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of: " + ", ".join(RUNS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the fastest of each run counts")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one trainer in this process
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def prepare(args, workdir: Path) -> None:
    """Model (unless given), the sample's rows, and the prompt/completion pairs both trainers train on."""
    import datasets
    from transformers import AutoTokenizer

    import longlamp
    from longlamp_tasks import parse_config_name
    from retrieval import get_retriever
    from training.data import ExampleEncoder

    if args.model_name is None:
        from support.tiny_models import make_causal_lm

        args.model_name = str(make_causal_lm(workdir / "tiny-llama"))
    tokenizer = AutoTokenizer.from_pretrained(args.model_name)
    encoder = ExampleEncoder(task=parse_config_name(args.config)[0], tokenizer=tokenizer, is_encoder_decoder=False,
                             max_prompt_length=args.max_prompt_length, max_target_length=args.max_target_length,
                             num_retrieved=args.num_retrieved, retriever=get_retriever("bm25"))
    for split in ("train", "validation"):
        rows = longlamp.load_split(args.config, split, data_dir=args.data_dir, cache_dir=str(workdir / "cache"))
        rows.save_to_disk(str(workdir / f"rows-{split}"))
        pairs = {"prompt": [encoder.prompt(row) for row in rows], "completion": rows["output"]}
        datasets.Dataset.from_dict(pairs).save_to_disk(str(workdir / f"pairs-{split}"))
    (workdir / "args.json").write_text(json.dumps(vars(args), allow_nan=False))


def heldout_loss(model, tokenizer, workdir: Path) -> float:
    """Mean cross-entropy per target token of the validation pairs, the same way for both trainers."""
    import datasets
    import torch

    from training.collate import TrainingCollator
    from training.data import IGNORE_INDEX
    from training.loss import token_losses

    pairs = datasets.load_from_disk(str(workdir / "pairs-validation"))
    total, count = 0.0, 0
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for prompt, completion in zip(pairs["prompt"], pairs["completion"]):
            prompt_ids = tokenizer(prompt)["input_ids"]
            target = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            example = {"input_ids": prompt_ids + target, "labels": [IGNORE_INDEX] * len(prompt_ids) + target, "row": 0}
            batch = {k: v.to(device) for k, v in TrainingCollator(tokenizer.pad_token_id)([example]).items()}
            losses, _ = token_losses(model, batch, is_encoder_decoder=False)
            total, count = total + float(losses.sum()), count + losses.numel()
    return total / count


def run_ours(args, workdir: Path, packing: bool) -> dict:
    from training.config import TrainConfig
    from training.loop import train

    steps_per_epoch = -(-len(__import__("datasets").load_from_disk(str(workdir / "rows-train"))) // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    config = TrainConfig(
        task=args.config, train_data=str(workdir / "rows-train"), model_name=args.model_name,
        output_dir=str(workdir / f"ours-{packing}"), use_profile=True, num_retrieved=args.num_retrieved,
        max_prompt_length=args.max_prompt_length, max_target_length=args.max_target_length,
        per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs, learning_rate=args.learning_rate,
        seed=args.seed, packing=packing, use_lora=args.use_lora, mixed_precision=args.mixed_precision,
        attn_implementation=args.attn_implementation, logging_steps=total_steps, save_steps=total_steps,
        report_to="none", log_level="warning", overwrite_output_dir=True,  # each round trains afresh
    )
    result = train(config)
    (summary,) = [entry for entry in result.state.history if "loss" in entry]
    return {"target_tokens_per_second": summary["target_tokens_per_second"], "train_loss": summary["loss"],
            "heldout_loss": heldout_loss(result.model, result.tokenizer, workdir)}


def run_trl(args, workdir: Path, padding_free: bool) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class StepClock(TrainerCallback):
        """Time from the first training step to the end of training (setup and tokenisation excluded)."""

        def on_train_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_train_end(self, *_, **__):
            self.seconds = time.perf_counter() - self.started

    tokenizer = AutoTokenizer.from_pretrained(args.model_name)
    model_kwargs = {"attn_implementation": args.attn_implementation} if args.attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(args.model_name, **model_kwargs)
    peft_config = None
    if args.use_lora:
        from peft import LoraConfig

        from training.modeling import lora_target_modules

        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                 target_modules=lora_target_modules("auto", model.config.model_type))
    config = SFTConfig(
        output_dir=str(workdir / f"trl-{padding_free}"), per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs, learning_rate=args.learning_rate, lr_scheduler_type="linear", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", seed=args.seed, max_length=None,
        completion_only_loss=True, padding_free=padding_free, save_strategy="no", report_to="none",
        logging_steps=10_000, disable_tqdm=True, bf16=args.mixed_precision == "bf16",
        fp16=args.mixed_precision == "fp16", use_cpu=not torch.cuda.is_available(),
    )
    clock = StepClock()
    trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer, peft_config=peft_config,
                         train_dataset=datasets.load_from_disk(str(workdir / "pairs-train")), callbacks=[clock])
    targets = sum(sum(label != -100 for label in labels) for labels in trainer.train_dataset["labels"]) * args.epochs
    output = trainer.train()
    return {"target_tokens_per_second": targets / clock.seconds, "train_loss": output.training_loss,
            "heldout_loss": heldout_loss(trainer.model, tokenizer, workdir)}


def worker(args) -> None:
    """One run in this process; prints its figures as one JSON line."""
    import torch

    workdir = Path(args.workdir)
    saved = json.loads((workdir / "args.json").read_text())
    args = argparse.Namespace(**{**saved, "worker": args.worker})
    settings = RUNS[args.worker]
    if settings["trainer"] == "ours":
        figures = run_ours(args, workdir, settings["packing"])
    else:
        figures = run_trl(args, workdir, settings["padding_free"])
    if torch.cuda.is_available():
        figures["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        figures["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(figures), flush=True)


def run_worker(name: str, workdir: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", name, "--workdir", str(workdir)],
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    runs = [name.strip() for name in args.runs.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        workdir = Path(tmp)
        prepare(args, workdir)
        print(f"model {args.model_name}, {args.config} sample, {args.epochs} epochs, batch {args.batch_size}, "
              f"lora {args.use_lora}, precision {args.mixed_precision}; best of {args.repeats} interleaved rounds")
        rounds = [{name: run_worker(name, workdir) for name in runs} for _ in range(args.repeats)]
    results = {name: max((r[name] for r in rounds), key=lambda f: f["target_tokens_per_second"]) for name in runs}
    for name, r in results.items():
        print(f"{name:28s} {r['target_tokens_per_second']:9.1f} target tokens/s  peak {r['peak_memory_mb']:8.1f} MB"
              f"  train loss {r['train_loss']:.6f}  held-out loss {r['heldout_loss']:.6f}")
    trl_runs = [name for name in results if name.startswith("TRL")]
    for ours in (name for name in results if name.startswith("ours")):
        for trl in trl_runs:
            ratio = results[ours]["target_tokens_per_second"] / results[trl]["target_tokens_per_second"]
            memory = results[ours]["peak_memory_mb"] / results[trl]["peak_memory_mb"]
            print(f"{ours} / {trl}: throughput x{ratio:.2f}, peak memory x{memory:.2f}")


if __name__ == "__main__":
    main()
