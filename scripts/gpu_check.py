"""Checks of the GPU-only paths (mixed precision, LoRA/QLoRA, FSDP, ZeRO-3, attention kernels, packing, FAISS,
dense encoding, generation on both backends, per-user adapters and their multi-LoRA serving) on one CUDA GPU,
offline, with tiny models built on the spot.

Each check runs in its own process (a crash or a hang costs one check, not the run) and prints one line:
`PASS|FAIL|SKIP <name>: <figures or reason>`. A check whose packages are missing (vllm, faiss with GPU support,
bitsandbytes, deepspeed, flash_attn, datasets) is skipped with the reason, as is every GPU check without a GPU.
`--device cpu` runs the checks whose logic means something on a CPU too (the test suite does, so this script
cannot rot; the vLLM checks run there on vLLM's CPU build, in float32). The tiny Llama has head size 64 and runs
in bfloat16/float16: sizes vLLM's and flash attention's kernels accept.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
CONFIG = "product_review_user"
TINY_SIZES = dict(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2)  # head 64


class Skip(Exception):
    """The check cannot run here; the message says why."""


@dataclass
class Check:
    name: str
    run: object  # function(work: Path, device: str) -> str (the figures); raises Skip, or fails by raising
    needs: tuple[str, ...] = ()  # importable modules the check needs
    on_cpu: bool = False  # its logic is meaningful on a CPU too (--device cpu)
    timeout: int = 180


CHECKS: dict[str, Check] = {}


def check(name: str, needs: tuple[str, ...] = (), on_cpu: bool = False, timeout: int = 180):
    def register(function):
        CHECKS[name] = Check(name, function, needs, on_cpu, timeout)
        return function

    return register


# ---------------------------------------------------------------------------------------------------- helpers

def tiny_llama(work: Path, chat: bool = False) -> Path:
    """The tiny Llama (head size 64) with its tokenizer, built once per work folder."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.tiny_models import make_causal_lm

    directory = work / ("tiny-chat-llama" if chat else "tiny-llama")
    if not (directory / "config.json").is_file():
        make_causal_lm(directory, chat=chat, **TINY_SIZES)
    return directory


def tiny_encoder(work: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from support.tiny_models import make_encoder

    directory = work / "tiny-encoder"
    if not (directory / "config.json").is_file():
        make_encoder(directory)
    return directory


def train_config(work: Path, name: str, **overrides):
    """A short training run on the bundled sample (the training code as train.py runs it)."""
    from training.config import TrainConfig

    settings = dict(task=CONFIG, train_data=CONFIG, data_dir=str(SAMPLE), cache_dir=str(work / "datasets-cache"),
                    model_name=str(tiny_llama(work)), output_dir=str(work / name), max_steps=4,
                    per_device_train_batch_size=2, learning_rate=1e-3, max_prompt_length=256, max_target_length=1024,
                    long_targets="skip", logging_steps=1, report_to="none", log_level="warning",
                    overwrite_output_dir=True)
    settings.update(overrides)
    return TrainConfig(**settings)


def run_training(config) -> str:
    import torch

    from training.loop import train

    torch.cuda.reset_peak_memory_stats()
    result = train(config)
    losses = [entry["loss"] for entry in result.state.history if "loss" in entry]
    if not losses or not all(math.isfinite(loss) for loss in losses):
        raise AssertionError(f"losses {losses}")
    return (f"{len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}, peak "
            f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


def launch(config_file: str, argv: list[str], timeout: int) -> subprocess.CompletedProcess:
    """`accelerate launch` of training/train.py with a shipped accelerate config, one process."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "accelerate_configs" / config_file), "--num_processes", "1", "--mixed_precision", "bf16",
               str(REPO / "training" / "train.py"), *argv]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {tail(done.stderr)}")
    return done


def flags(config) -> list[str]:
    argv = []
    for name, value in config.to_dict().items():
        if value is None or value is False:
            continue
        argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return argv


def tail(text: str) -> str:
    """The line that says what went wrong: the last one naming an error, else the last one with words."""
    lines = [line.strip() for line in text.strip().splitlines() if any(c.isalnum() for c in line)]
    errors = [line for line in lines if "Error" in line or "error:" in line]
    return (errors or lines or ["(no output)"])[-1][:300]


def batch_of_examples(tokenizer, lengths=(37, 81, 12, 55)) -> list[dict]:
    """Decoder-only training examples of different lengths, the last third of each one the target."""
    import torch

    from training.data import IGNORE_INDEX

    generator = torch.Generator().manual_seed(0)
    examples = []
    for row, length in enumerate(lengths):
        ids = torch.randint(4, len(tokenizer), (length,), generator=generator).tolist()
        prompt = length - length // 3
        examples.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:], "row": row})
    return examples


def to_device(batch: dict, device: str) -> dict:
    return {name: value.to(device) for name, value in batch.items()}


def per_example(model, examples, device: str, packing: bool):
    import torch

    from training.collate import TrainingCollator
    from training.loss import per_example_sums, token_losses

    batch = to_device(TrainingCollator(pad_token_id=0, packing=packing)(examples), device)
    with torch.no_grad():
        losses, owners = token_losses(model, batch, is_encoder_decoder=False)
    sums = per_example_sums(losses, owners, len(examples))
    return (sums[:, 0] / sums[:, 1]).float().cpu()


def installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------- the checks

@check("bf16_training", needs=("datasets",))
def bf16_training(work: Path, device: str) -> str:
    import torch

    if not torch.cuda.is_bf16_supported():
        raise Skip("this GPU has no bfloat16 support")
    return run_training(train_config(work, "bf16", mixed_precision="bf16"))


@check("fp16_training", needs=("datasets",))
def fp16_training(work: Path, device: str) -> str:
    return run_training(train_config(work, "fp16", mixed_precision="fp16"))


@check("lora_step", needs=("datasets",))
def lora_step(work: Path, device: str) -> str:
    return run_training(train_config(work, "lora", mixed_precision="bf16", use_lora=True))


@check("qlora_step", needs=("datasets", "bitsandbytes"))
def qlora_step(work: Path, device: str) -> str:
    return run_training(train_config(work, "qlora", mixed_precision="bf16", use_lora=True, load_in_4bit=True))


@check("fsdp_one_process", needs=("datasets",), timeout=300)
def fsdp_one_process(work: Path, device: str) -> str:
    from safetensors.torch import load_file

    config = train_config(work, "fsdp", mixed_precision="bf16")
    launch("fsdp.yaml", flags(config), timeout=280)
    final = load_file(str(Path(config.output_dir) / "final" / "model.safetensors"))
    return f"trained and saved whole: {len(final)} tensors in final/"


@check("qlora_fsdp_one_process", needs=("datasets", "bitsandbytes"), timeout=300)
def qlora_fsdp_one_process(work: Path, device: str) -> str:
    config = train_config(work, "qlora-fsdp", mixed_precision="bf16", use_lora=True, load_in_4bit=True)
    launch("fsdp.yaml", flags(config), timeout=280)
    if not (Path(config.output_dir) / "final" / "adapter_model.safetensors").is_file():
        raise AssertionError("no adapter in final/")
    return "4-bit base stored in bfloat16, sharded by FSDP: trained and saved the adapter"


@check("zero3_merge_lora", needs=("datasets", "deepspeed"), timeout=420)
def zero3_merge_lora(work: Path, device: str) -> str:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    config = train_config(work, "zero3", mixed_precision="bf16", use_lora=True, merge_lora=True)
    launch("deepspeed_zero3.yaml", flags(config), timeout=400)
    run = Path(config.output_dir)
    merged = load_file(str(run / "final-merged" / "model.safetensors"))
    expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(config.model_name), run / "final")
    expected = expected.merge_and_unload().state_dict()
    difference = max((expected[name] - merged[name]).abs().max().item() for name in merged)
    if difference > 0 or set(expected) != set(merged):
        raise AssertionError(f"the merged model differs from a PEFT merge of final/ by {difference:.3g}")
    return f"final-merged/ equals a PEFT merge of the saved adapter ({len(merged)} tensors, {torch.__version__})"


def attention_difference(work: Path, device: str, implementation: str) -> float:
    """Largest logit difference of the tiny Llama between `implementation` and eager attention, in bfloat16."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    ids = torch.randint(4, 500, (2, 96), generator=torch.Generator().manual_seed(0)).to(device)
    logits = {}
    for name in ("eager", implementation):
        model = AutoModelForCausalLM.from_pretrained(tiny_llama(work), dtype=dtype, attn_implementation=name)
        with torch.no_grad():
            logits[name] = model.to(device).eval()(input_ids=ids).logits.float()
    return (logits["eager"] - logits[implementation]).abs().max().item()


@check("sdpa_attention", on_cpu=True)
def sdpa_attention(work: Path, device: str) -> str:
    difference = attention_difference(work, device, "sdpa")
    tolerance = 5e-2 if device == "cuda" else 1e-4
    if difference > tolerance:
        raise AssertionError(f"sdpa logits differ from eager by {difference:.3g} (> {tolerance})")
    return f"logits within {difference:.3g} of eager attention"


@check("flash_attention", needs=("flash_attn",))
def flash_attention(work: Path, device: str) -> str:
    difference = attention_difference(work, device, "flash_attention_2")
    if difference > 5e-2:
        raise AssertionError(f"flash_attention_2 logits differ from eager by {difference:.3g} (> 5e-2)")
    return f"flash_attention_2 logits within {difference:.3g} of eager attention (bfloat16)"


@check("packed_vs_padded", on_cpu=True)
def packed_vs_padded(work: Path, device: str) -> str:
    """Per-example losses of packed rows (position-id restarts) equal padded batches: the variable-length kernel
    with flash attention (bfloat16), else SDPA's block-diagonal mask (float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    flash = device == "cuda" and installed("flash_attn")
    implementation, dtype, tolerance = ("flash_attention_2", torch.bfloat16, 2e-2) if flash else \
        ("sdpa", torch.float32, 1e-4)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama(work), dtype=dtype, attn_implementation=implementation)
    model = model.to(device).eval()
    examples = batch_of_examples(AutoTokenizer.from_pretrained(tiny_llama(work)))
    padded, packed = (per_example(model, examples, device, packing) for packing in (False, True))
    difference = (padded - packed).abs().max().item()
    if difference > tolerance:
        raise AssertionError(f"{implementation}: packed per-example losses differ by {difference:.3g} (> {tolerance})")
    return f"{implementation} ({str(dtype).removeprefix('torch.')}): per-example losses within {difference:.3g}"


@check("faiss_gpu_vs_cpu", needs=("faiss", "numpy"))
def faiss_gpu_vs_cpu(work: Path, device: str) -> str:
    import faiss
    import numpy as np

    if faiss.get_num_gpus() == 0:
        raise Skip("faiss has no GPU support here (faiss-cpu installed, or no GPU visible to it)")
    from retrieval.dense import inner_product_search

    generator = np.random.default_rng(0)
    vectors = generator.standard_normal((2000, 768)).astype(np.float32)
    query = generator.standard_normal(768).astype(np.float32)
    gpu_scores, gpu_positions = inner_product_search(query, vectors)
    cpu_scores, cpu_positions = faiss.knn(query[None], vectors, len(vectors), metric=faiss.METRIC_INNER_PRODUCT)
    if not np.array_equal(gpu_positions, cpu_positions[0]):
        first = int(np.argmax(gpu_positions != cpu_positions[0]))
        raise AssertionError(f"rankings differ from position {first} on")
    return f"2000 x 768 exact search: same ranking, scores within {np.abs(gpu_scores - cpu_scores[0]).max():.3g}"


@check("contriever_cuda_vs_cpu", needs=("faiss", "numpy"))
def contriever_cuda_vs_cpu(work: Path, device: str) -> str:
    import numpy as np

    from retrieval.dense import DenseRetriever

    texts = ["a short text", "a somewhat longer text about hiking in the mountains", "chess", "weather " * 40]
    vectors = {}
    for name, options in (("cpu", dict(device="cpu", dtype="float32")),
                          ("cuda32", dict(device="cuda", dtype="float32")), ("cuda16", dict(device="cuda"))):
        retriever = DenseRetriever(model_name=str(tiny_encoder(work)), cache_dir=work / f"embeddings-{name}", **options)
        vectors[name] = retriever.embed(texts)
    full = np.abs(vectors["cuda32"] - vectors["cpu"]).max()
    half = np.abs(vectors["cuda16"] - vectors["cpu"]).max()
    if full > 1e-4:
        raise AssertionError(f"float32 CUDA vectors differ from CPU by {full:.3g}")
    return f"float32 CUDA within {full:.3g} of CPU, float16 (the GPU default) within {half:.3g}"


@check("hf_generation_batched_vs_single", on_cpu=True)
def hf_generation_batched_vs_single(work: Path, device: str) -> str:
    """Greedy generation of left-padded batches equals generating each prompt alone (float32: no rounding ties)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama(work))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_llama(work), dtype=torch.float32).to(device).eval()
    prompts = ["Generate the review text", "Complete the text of the following email. title: meeting notes.",
               "chess", "Generate an abstract for the title using the following items: retrieval"]
    options = dict(max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
        together = model.generate(**batch, **options)[:, batch["input_ids"].shape[1]:].tolist()
        alone = []
        for prompt in prompts:
            single = tokenizer(prompt, return_tensors="pt").to(device)
            alone.append(model.generate(**single, **options)[0, single["input_ids"].shape[1]:].tolist())
    for i, (a, b) in enumerate(zip(together, alone)):
        if a != b:
            first = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            raise AssertionError(f"prompt {i}: batched and single generations differ from new token {first}")
    return f"{len(prompts)} prompts x 16 new tokens token-identical"


def evaluate_llm(work: Path, name: str, model: Path, backend: str, device: str = "cuda") -> dict[str, str]:
    """Greedy predictions of evaluation/evaluate_llm.py on 4 sample rows (scoring may fail without NLTK data)."""
    return predictions_of(work / name, backend, [
        "evaluation/evaluate_llm.py", "--validation_data", CONFIG, "--limit", "4", "--model_addr", str(model),
        "--dtype", check_dtype(device), "--max_new_tokens", "24"], work)


def predictions_of(output: Path, backend: str, command: list[str], work: Path) -> dict[str, str]:
    """Run a generation command (a script of the repository and its flags) on the sample; its predictions by id."""
    command = [sys.executable, str(REPO / command[0]), *command[1:], "--data_dir", str(SAMPLE), "--cache_dir",
               str(work / "datasets-cache"), "--backend", backend, "--output_dir", str(output)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    predictions = output / "predictions.json"
    if not predictions.is_file():
        raise AssertionError(f"{backend}: exit {done.returncode}, no predictions: {tail(done.stderr)}")
    return {gold["id"]: gold["output"] for gold in json.loads(predictions.read_text())["golds"]}


def check_dtype(device: str) -> str:
    """bfloat16 on a GPU, as users run it; float32 on a CPU, where two backends' greedy outputs can agree exactly."""
    return "bfloat16" if device == "cuda" else "float32"


def compare_backends(hf: dict[str, str], vllm: dict[str, str]) -> str:
    if hf.keys() != vllm.keys():
        raise AssertionError(f"different examples: {sorted(hf)} vs {sorted(vllm)}")
    for key in hf:
        if hf[key] != vllm[key]:
            first = next((i for i, (a, b) in enumerate(zip(hf[key], vllm[key])) if a != b),
                         min(len(hf[key]), len(vllm[key])))
            raise AssertionError(f"{key}: first divergence at character {first}: transformers "
                                 f"{hf[key][first:first + 40]!r} vs vLLM {vllm[key][first:first + 40]!r}")
    return f"{len(hf)} greedy predictions identical on both backends"


@check("vllm_vs_hf", needs=("vllm", "datasets"), on_cpu=True, timeout=600)
def vllm_vs_hf(work: Path, device: str) -> str:
    model = tiny_llama(work, chat=True)
    return compare_backends(evaluate_llm(work, "hf", model, "transformers", device),
                            evaluate_llm(work, "vllm", model, "vllm", device))


@check("vllm_lora_adapter", needs=("vllm", "datasets"), on_cpu=True, timeout=600)
def vllm_lora_adapter(work: Path, device: str) -> str:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tiny_llama(work, chat=True)
    adapter = work / "adapter-r8"
    if not (adapter / "adapter_config.json").is_file():
        lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(adapter)
        AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    return "LoRA r=8: " + compare_backends(evaluate_llm(work, "hf-lora", adapter, "transformers", device),
                                           evaluate_llm(work, "vllm-lora", adapter, "vllm", device))


def per_user_run(work: Path, device: str) -> Path:
    """training/train_per_user.py under `accelerate launch` (one process): an adapter for each user of the sample's
    validation split that has a profile, on the tiny Llama; trained once per work folder."""
    run = work / "per-user"
    if (run / "per_user_report.json").is_file():
        return run
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
               *(["--cpu"] if device == "cpu" else []), str(REPO / "training" / "train_per_user.py"),
               "--model_name", str(tiny_llama(work)), "--data", CONFIG, "--split", "validation", "--data_dir",
               str(SAMPLE), "--cache_dir", str(work / "datasets-cache"), "--output_dir", str(run), "--dtype",
               check_dtype(device), "--max_items_per_user", "6", "--num_train_epochs", "2", "--learning_rate", "1e-3",
               "--max_prompt_length", "256", "--per_device_train_batch_size", "3"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise AssertionError(f"train_per_user.py: exit {done.returncode}: {tail(done.stderr)}")
    return run


def per_user_predictions(work: Path, backend: str, device: str) -> dict[str, str]:
    """evaluation/evaluate_per_user.py: each validation row generated with its user's adapter, greedy."""
    return predictions_of(work / f"per-user-{backend}", backend, [
        "evaluation/evaluate_per_user.py", "--model_name", str(tiny_llama(work)), "--data", CONFIG, "--split",
        "validation", "--adapters_dir", str(per_user_run(work, device)), "--dtype", check_dtype(device),
        "--max_new_tokens", "24", "--max_prompt_length", "256"], work)


@check("per_user_adapters", needs=("datasets",), on_cpu=True, timeout=400)
def per_user_adapters(work: Path, device: str) -> str:
    """OPPU on the device: one shared base, an adapter per user that lowers that user's held-out loss, and every
    user's examples generated with their adapter (transformers backend)."""
    run = per_user_run(work, device)
    records = [json.loads(path.read_text()) for path in sorted(run.glob("users/*/user.json"))]
    worse = [r["user_id"] for r in records if not r["held_out_loss"] < r["held_out_loss_without_adapter"]]
    if not records or worse:
        raise AssertionError(f"held-out loss not lowered for {worse or 'any user (no adapter written)'}")
    report = json.loads((run / "per_user_report.json").read_text())
    predictions = per_user_predictions(work, "transformers", device)
    return (f"{len(records)} users ({check_dtype(device)}): {report['mean_seconds_per_user']:.2f} s and "
            f"{report['mean_adapter_bytes'] / 1024:.0f} KiB per user, mean held-out loss "
            f"{report['mean_held_out_loss_without_adapter']:.3f} -> {report['mean_held_out_loss']:.3f}; "
            f"{len(predictions)} predictions")


@check("vllm_per_user_lora", needs=("vllm", "datasets"), on_cpu=True, timeout=600)
def vllm_per_user_lora(work: Path, device: str) -> str:
    """evaluate_per_user.py on vLLM (each prompt with its user's LoRA request, users without an adapter beside
    them) predicts as the transformers backend switching each user's adapter in."""
    return "per-user adapters: " + compare_backends(per_user_predictions(work, "transformers", device),
                                                    per_user_predictions(work, "vllm", device))


@check("per_user_shared_base", needs=("datasets",), timeout=420)
def per_user_shared_base(work: Path, device: str) -> str:
    """benchmarks/bench_per_user.py on the GPU: users per minute and peak memory with the base shared against
    reloading it per user, on a random ~0.45B Llama in bfloat16 (the benchmark checks both wrote equal adapters)."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_per_user.py"), "--hidden_size", "1536",
                           "--num_layers", "12", "--users", "8", "--items", "4"], cwd=REPO, capture_output=True,
                          text=True, timeout=400, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {tail(done.stderr)}")
    return " | ".join(line.strip() for line in done.stdout.strip().splitlines()[-3:])


@check("lora_throughput", on_cpu=True, timeout=300)
def lora_throughput(work: Path, device: str) -> str:
    """Tokens per second and peak memory of LoRA steps (the project's loss, AdamW) on a random ~0.4B Llama in
    bfloat16 with 8 x 1024-token rows; on a CPU a small model, only to exercise the code."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.data import IGNORE_INDEX
    from training.loss import token_losses

    cuda = device == "cuda"
    sizes = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=8, vocab_size=32000) if cuda else \
        dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1, num_key_value_heads=1,
             vocab_size=512)
    rows, length, steps = (8, 1024, 10) if cuda else (2, 64, 2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**sizes, max_position_embeddings=length))
    model = model.to(device, torch.bfloat16 if cuda else torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, sizes["vocab_size"], (rows, length), device=device)
    labels = ids.clone()
    labels[:, : length // 2] = IGNORE_INDEX
    batch = {"input_ids": ids, "labels": labels, "example_index": torch.arange(rows, device=device)[:, None].expand(
        rows, length)}

    def step():
        losses, _ = token_losses(model, batch, is_encoder_decoder=False)
        losses.mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up: kernels, allocator
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.parameters())
    memory = f", peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else ""
    return (f"{parameters / 1e6:.1f}M parameters, {rows}x{length} tokens per step: "
            f"{rows * length * steps / seconds:,.0f} tokens/s{memory}")


# ------------------------------------------------------------------------------------------------- the runner

def skip_reason(entry: Check, device: str, cuda: bool) -> str | None:
    """Why the check cannot run here (every reason: a missing GPU and missing packages), or None."""
    reasons = []
    if device == "cpu" and not entry.on_cpu:
        reasons.append("needs a CUDA GPU (not run with --device cpu)")
    if device == "cuda" and not cuda:
        reasons.append("no CUDA GPU visible")
    missing = [name for name in entry.needs if not installed(name)]
    if missing:
        reasons.append(f"{', '.join(missing)} not installed")
    return "; ".join(reasons) or None


def run_one(name: str, device: str, work: Path) -> None:
    """In the check's own process: run it, print its result as one JSON line."""
    sys.path.insert(0, str(REPO))
    try:
        status, message = "PASS", CHECKS[name].run(work, device)
    except Skip as reason:
        status, message = "SKIP", str(reason)
    except Exception as error:  # the check failed: say how, on one line
        status, message = "FAIL", f"{type(error).__name__}: {' '.join(str(error).split())[:400]}"
    print(json.dumps({"status": status, "message": message}))


def run_in_process(entry: Check, device: str, work: Path) -> tuple[str, str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--run", entry.name, "--device", device,
               "--work", str(work)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=entry.timeout, env=environment)
    except subprocess.TimeoutExpired:
        return "FAIL", f"no result within {entry.timeout} s"
    for line in reversed(done.stdout.strip().splitlines()):
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if isinstance(result, dict) and "status" in result:
            return result["status"], result["message"]
    return "FAIL", f"the check's process ended with {done.returncode}: {tail(done.stderr)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated check names (default: all)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default); cpu runs the checks whose logic means something on a CPU")
    parser.add_argument("--list", action="store_true", help="print the check names and exit")
    parser.add_argument("--work", help="folder for models and runs (default: a temporary folder)")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: run one check in this process
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CHECKS))
        return 0
    if args.run:
        run_one(args.run, args.device, Path(args.work))
        return 0
    names = [name.strip() for name in args.only.split(",")] if args.only else list(CHECKS)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; --list names them")
    import torch

    cuda = torch.cuda.is_available()
    failed = False
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        for name in names:
            entry = CHECKS[name]
            reason = skip_reason(entry, args.device, cuda)
            status, message = ("SKIP", reason) if reason else run_in_process(entry, args.device, work)
            failed |= status == "FAIL"
            print(f"{status} {name}: {message}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
