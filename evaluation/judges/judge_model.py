"""The judge model: any generation backend of the toolkit, set up from the same options as a zero-shot run.

`ZeroShotOptions` carries the model, backend, vLLM and served-model settings (checked by zero-shot's own checks),
so a judge is loaded, fingerprinted and sent prompts exactly as an evaluated model is (`generation.cache`'s
cached generator). Greedy decoding unless asked otherwise.
"""

from __future__ import annotations

from evaluation.zero_shot.options import ZeroShotOptions, check_served_options, is_served
from evaluation.zero_shot.run import prepare_generation
from generation.cache import CachedGenerator, GenerationCache, cached_generator


def judge_options(model_name: str, output_dir: str, **settings) -> ZeroShotOptions:
    """The zero-shot options of a judge model (no data: the judge is sent its own prompts); checked."""
    options = ZeroShotOptions(validation_data="", model_name=model_name, output_dir=output_dir, **settings)
    options.generation()
    options.template_kwargs()
    if options.batch_size is not None and options.batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {options.batch_size}")
    check_served_options(options, is_served(options))
    return options


def build_judge(options: ZeroShotOptions, cache: GenerationCache,
                max_prompt_length: int | None = None) -> CachedGenerator:
    """The judge behind `cache`, prepared as an evaluated model is (`prepare_generation`) with the whole context
    as its default prompt budget: its identity is known now, its weights are loaded on the first call the cache
    cannot answer."""
    model = prepare_generation(options, max_prompt_length=max_prompt_length, whole_context=True)
    return cached_generator(cache, model, use_chat_template=options.use_chat_template, batch_size=options.batch_size)
