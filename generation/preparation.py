"""One preparation of a model for generation, for every caller: zero-shot and per-user evaluation, the LLM judge
and profile summaries' writer (through `generation.cache`), and training's validation generations (the model
being trained described as a prepared one is: `training_source`).

`prepare_model` does, once and the same way for all of them, what must happen before any prompt is built: the
model without its weights (`source`), the backend (`auto` resolved, the methods asked for included), the backend's
options checked against its class, the prompt budget, and the model's identity record
(`longlamp_runs.ModelSettings`, with the fingerprint of its weights). What differs between backends (served or
not, how they name the dtype, which options and methods they take, how they serve per-user adapters) is asked of
their classes, never of their names. The weights are loaded later, once the longest prompt is known (`load`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

from generation import FALLBACK_BACKEND, backend_class, check_options, get_backend, model_source, resolve_backend
from generation.base import Generator
from generation.decoding import GenerationSettings
from generation.source import ModelSource
from longlamp_prompts import PromptBuilder, prompt_budget
from longlamp_runs import ModelSettings, trained_settings


@dataclass
class PreparedModel:
    """A model checked and resolved for generation, its weights not loaded: its `source`, `backend` (resolved),
    decoding `settings`, the backend's `options` as given, the prompt `budget`, and for a served model the API mode
    and the tokenizer that counts its prompts (None: the approximation)."""

    source: ModelSource
    backend: str
    settings: GenerationSettings
    options: dict = field(default_factory=dict)
    budget: int = 0
    api_mode: str | None = None
    served_tokenizer: str | None = None

    @property
    def generator_class(self) -> type[Generator]:
        return backend_class(self.backend)

    @property
    def served(self) -> bool:
        return self.generator_class.served

    @cached_property
    def model_settings(self) -> ModelSettings:
        """The model's identity record, the weights fingerprinted here (once): what every run of it records."""
        from generation.fingerprints import model_fingerprint, served_fingerprint
        from generation.served_model import APPROXIMATION

        source, generator_class, served = self.source, self.generator_class, self.served
        return ModelSettings(
            source.address, source.base if source.adapter else None,
            served_fingerprint(source.address, self.served_tokenizer) if served else model_fingerprint(source),
            self.backend, generator_class.dtype_name(self.options.get("dtype", "auto")),
            not served and trained_settings(source.address) is not None,
            # what decides the prompts sent; not the URL or the concurrency, which may change on resume
            self.api_mode if served else None, (self.served_tokenizer or APPROXIMATION) if served else None)

    def prompt_builder(self, task, use_chat_template: bool | None) -> PromptBuilder:
        """The prompt builder of `task` (None: messages as given) within the budget, in the model's chat template
        when it has one (or as `use_chat_template` says)."""
        return PromptBuilder(task, self.source.tokenizer, self.budget, use_chat_template,
                             self.source.chat_template_kwargs or None)

    def load(self, longest_prompt: int, longest_new_tokens: int | None = None, **options) -> Generator:
        """The backend with the weights loaded, sized for prompts of at most `longest_prompt` tokens continued by
        at most `longest_new_tokens` (default: the settings'); `options`: the run's own on top of those given."""
        new_tokens = max(longest_new_tokens or 0, self.settings.max_new_tokens)
        run = self.generator_class.run_options(longest_prompt, new_tokens)
        return get_backend(self.backend, self.source, self.settings, **self.options, **options, **run)


def backend_refusal(backend: str, reason: str) -> str:
    """The error line of a backend named explicitly that cannot run what is asked of it."""
    return f"--backend {backend}: {reason}; use --backend {FALLBACK_BACKEND}"


def prepare_model(model_name: str, settings: GenerationSettings, *, backend: str = "auto",
                  options: Mapping | None = None, base_model: str | None = None, trust_remote_code: bool = False,
                  tokenizer: str | None = None, api_mode: str | None = None, chat_template_kwargs: dict | None = None,
                  max_prompt_length: int | None = None, whole_context: bool = False, steering: bool = False,
                  user_adapters: bool = False, source: ModelSource | None = None) -> PreparedModel:
    """Everything about `model_name` that can refuse a run, before any prompt is built or weight loaded.

    `backend` "auto" is resolved for the model, the decoding and the per-user methods asked for (`steering`: style
    vectors; `user_adapters`: per-user LoRA adapters); a backend named explicitly that cannot run them is refused
    naming the flag. `options` are the backend's (dtype, device map, vLLM's engine, a server's address), checked
    against its class. The prompt budget is `max_prompt_length`, else the default rule (`prompt_budget`), or with
    `whole_context` everything the context leaves after `settings.max_new_tokens`. `tokenizer` and `api_mode` are a
    served model's. `source`: the model already resolved (the same name)."""
    options = dict(options or {})
    if source is None:
        served = backend != "auto" and backend_class(backend).served  # `auto` never chooses a served model
        source = model_source(model_name, served=served, tokenizer=tokenizer, base_model=base_model,
                              trust_remote_code=trust_remote_code, chat_template_kwargs=chat_template_kwargs)
    methods = {"steering": steering, "user_adapters": user_adapters}
    if backend == "auto":
        backend = resolve_backend(backend, settings, source, **methods)
    generator_class = backend_class(backend)
    reason = generator_class.unsupported(source, settings) or generator_class.unsupported_methods(source, **methods)
    if reason:
        raise ValueError(backend_refusal(backend, reason))
    check_options(backend, {**options, **generator_class.run_options(0, 0)})
    context = source.context_length()
    if max_prompt_length is None and whole_context and context:
        max_prompt_length = context if source.is_encoder_decoder else context - settings.max_new_tokens
    budget = prompt_budget(max_prompt_length, context, settings.max_new_tokens, source.is_encoder_decoder)
    served = generator_class.served
    return PreparedModel(source, backend, settings, options, budget, (api_mode or "chat") if served else None,
                         tokenizer if served else None)



def training_source(model_name: str, model_config, tokenizer, model) -> ModelSource:
    """A model being trained (loaded here, outside any backend), described as a saved one is prepared (its stop
    ids, its decoding), so that training's validation generations and evaluate_llm.py end and decode
    continuations alike."""
    return ModelSource(address=model_name, base=model_name, adapter=None, config=model_config, tokenizer=tokenizer,
                       generation_config=transformers_model(model).generation_config)


def transformers_model(model):
    """The transformers model under a PEFT wrapper (the one whose generation_config `generate` reads)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
