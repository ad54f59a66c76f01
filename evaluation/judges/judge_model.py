"""The judge model: any generation backend of the toolkit, set up from the same options as a zero-shot run.

`ZeroShotOptions` carries the model, backend, vLLM and served-model settings (checked by zero-shot's own checks),
so a judge is loaded, fingerprinted and sent prompts exactly as an evaluated model is: a local model gets each
message wrapped in its chat template (when it has one) as token ids; a served one (`--backend openai`) gets the
message as one chat turn, or the prompt text in completions mode. Greedy decoding unless asked otherwise.
"""

from __future__ import annotations

from evaluation.backends import backend_class, get_backend, resolve_backend
from evaluation.backends import check_options as check_backend_options
from evaluation.backends.served_model import APPROXIMATION
from evaluation.judges.cache import CachedJudge, JudgeCache
from evaluation.zero_shot.fingerprints import model_fingerprint, served_fingerprint
from evaluation.zero_shot.options import ZeroShotOptions, api_mode, check_served_options, is_served
from evaluation.zero_shot.run import model_source
from longlamp_prompts import PromptBuilder, prompt_budget


def judge_options(model_name: str, output_dir: str, **settings) -> ZeroShotOptions:
    """The zero-shot options of a judge model (no data: the judge is sent its own prompts); checked."""
    options = ZeroShotOptions(validation_data="", model_name=model_name, output_dir=output_dir, **settings)
    options.generation()
    options.template_kwargs()
    if options.batch_size is not None and options.batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {options.batch_size}")
    check_served_options(options, is_served(options))
    return options


def build_judge(options: ZeroShotOptions, cache: JudgeCache, max_prompt_length: int | None = None) -> CachedJudge:
    """The judge behind `cache`: its identity (the cache keys' part that is not the prompt) is known now, its
    weights are loaded on the first call the cache cannot answer."""
    served, generation = is_served(options), options.generation()
    source = model_source(options)
    backend = resolve_backend(options.backend, generation, source)
    generator_class = backend_class(backend)
    context = source.context_length()
    room = context - generation.max_new_tokens if context and not source.is_encoder_decoder else context
    budget = prompt_budget(max_prompt_length if max_prompt_length is not None else room, context,
                           generation.max_new_tokens, source.is_encoder_decoder)
    run_options = generator_class.run_options(budget, generation.max_new_tokens)
    backend_options = {**options.backend_options(generator_class.served), **run_options}
    check_backend_options(backend, backend_options)
    reason = generator_class.unsupported(source, generation) if served else None
    if reason:
        raise ValueError(f"the {backend} backend {reason}")
    builder = PromptBuilder(None, source.tokenizer, budget, options.use_chat_template, options.template_kwargs())
    as_message = served and api_mode(options) == "chat"
    identity = {"model": options.model_name, "backend": backend, "dtype": generator_class.dtype_name(options.dtype),
                "fingerprint": (served_fingerprint(options.model_name, options.tokenizer) if served
                                else model_fingerprint(source)),
                "base_model": source.base if source.adapter else None,
                "chat_template": builder.use_chat_template, "chat_template_kwargs": options.template_kwargs() or None,
                **generation.record()}
    if served:
        identity.update(api_mode=api_mode(options), prompt_tokenizer=options.tokenizer or APPROXIMATION)

    def prepare(message: str) -> tuple[object, str, int]:
        prompt = builder.format(message)
        length = builder.count(prompt)
        if length > budget:
            raise ValueError(f"a judge prompt takes {length} tokens, more than the budget of {budget} "
                             f"(--max_prompt_length); it begins {message[:120]!r}")
        request = message if as_message else prompt
        sent = request if generator_class.prompt_form == "text" else source.encode(prompt, builder.use_chat_template)
        return sent, request, length

    def load():
        return get_backend(backend, source, generation, **backend_options)

    tokenizer = None if served and options.tokenizer is None else source.tokenizer  # not the approximate counter
    return CachedJudge(cache, identity, prepare, load, options.batch_size, generation.seed, tokenizer)
