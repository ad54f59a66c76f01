"""The Hugging Face transformers backend: batched `model.generate` with padding, attention mask and KV cache.

It pads on the left for decoder-only models and is fed length-sorted batches (`plan_batches`), so little
compute goes to padding; in float32 its greedy output equals one-by-one generation (tests/test_generation.py).
With sampling, one batch draws from one RNG seeded with the seed of its first prompt.
"""

from __future__ import annotations

from typing import Sequence

from generation.base import TokenGenerator
from generation.dtypes import torch_dtype
from longlamp_errors import ModelLoadError


class TransformersGenerator(TokenGenerator):
    name = "transformers"
    default_batch_size = 8
    steers_activations = switches_adapters = True  # the model is a torch module here

    def __init__(self, source, settings, dtype: str = "auto", device_map: str | None = None,
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        super().__init__(source, settings)
        self.tokenizer = source.tokenizer
        if device_map is None and torch.cuda.is_available():
            device_map = "auto"
        model_class = AutoModelForSeq2SeqLM if source.is_encoder_decoder else AutoModelForCausalLM
        try:
            model = model_class.from_pretrained(source.base, dtype=torch_dtype(dtype), device_map=device_map,
                                                trust_remote_code=trust_remote_code)
            if source.adapter:
                from peft import PeftModel

                # Merged weights generate as fast as the base model; the adapter's effect is unchanged.
                model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
        except OSError as error:
            raise ModelLoadError(f"cannot load the weights of {source.address!r}: {error}") from error
        self.model = model.eval()
        self.model.generation_config = generation_config(self.model, source, settings)

    def use_settings(self, settings) -> None:
        super().use_settings(settings)
        self.model.generation_config = generation_config(self.model, self.source, settings)

    def generate_ids(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[list[int]]:
        import torch

        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        left = not self.source.is_encoder_decoder  # a decoder continues from the last position: pad before
        rows, masks = [], []
        for prompt in prompts:
            padding = [pad] * (width - len(prompt))
            rows.append(padding + list(prompt) if left else list(prompt) + padding)
            masks.append([0] * len(padding) + [1] * len(prompt) if left else [1] * len(prompt) + [0] * len(padding))
        device = self.model.device
        input_ids = torch.tensor(rows, device=device)
        attention_mask = torch.tensor(masks, device=device)
        if self.settings.do_sample:
            torch.manual_seed(seeds[0])
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         generation_config=self.model.generation_config)
        return new_tokens(output, width, self.source.is_encoder_decoder).tolist()  # `finish` cuts at the stop


def generation_config(model, source, settings):
    """Exactly the decoding settings, with the source's stop ids: none of the model's own generation defaults
    (transformers fills a setting left unset from `model.generation_config`, so callers install this one there
    for the call). Shared by this backend and training's validation generation (training/validation.py)."""
    from transformers import GenerationConfig

    own = model.generation_config
    special = {
        "bos_token_id": own.bos_token_id,
        "eos_token_id": source.stop_token_ids,
        "pad_token_id": source.tokenizer.pad_token_id,
        "decoder_start_token_id": own.decoder_start_token_id,
    }
    sampling = {"temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0} if settings.do_sample else {}
    return GenerationConfig(max_new_tokens=settings.max_new_tokens, do_sample=settings.do_sample,
                            num_beams=settings.num_beams, use_cache=True, **sampling, **special)


def new_tokens(output, prompt_width: int, is_encoder_decoder: bool):
    """The generated part of `generate`'s output: after the (left-padded) prompt, or after an encoder-decoder's
    decoder start token. Rows that finished early are padded after their stop token."""
    return output[:, 1:] if is_encoder_decoder else output[:, prompt_width:]
