"""Generating text with a model, for every layer above: zero-shot and per-user evaluation, training's validation
generations, profile summaries and the LLM judge.

The backends by name, like the retrievers: a lazy table of "module:Class" and `get_backend`. Beside them: the model
resolved without its weights (`source`), decoding settings and the batch plan (`decoding`), the dtype table
(`dtypes`), what the weights are (`fingerprints`), resumable predictions and their progress (`predictions`,
`progress`), a generator behind an on-disk cache of its answers (`cache`), and the one preparation of a model for
generation that every caller goes through (`preparation`).

Each backend is one `Generator` subclass in a file of its own; what is true of a backend (its default batch
size, whether it runs a model and settings, how it names the dtype, whether it is served, which per-user methods
it runs and how it serves per-user adapters) lives in its class; callers never branch on a backend's name.
`get_backend` checks the options against the class's constructor and names the ones it takes, as
`retrieval.get_retriever` does.
"""

from __future__ import annotations

import importlib
import inspect

from generation.base import Generation, Generator

__all__ = ["BACKENDS", "FALLBACK_BACKEND", "Generation", "Generator", "accepted_options", "backend_class",
           "backends_taking", "check_options", "get_backend", "model_source", "resolve_backend"]

# name -> "module:class"; imported on first use, so that choosing transformers never imports vLLM.
BACKENDS = {
    "transformers": "generation.hf_transformers:TransformersGenerator",
    "vllm": "generation.vllm_engine:VLLMGenerator",
    "openai": "generation.openai_api:OpenAIGenerator",
}
AUTO_ORDER = ("vllm", "transformers")  # `auto`: the first that is available and runs the model and settings
# (a served model is never chosen by `auto`: it needs --api_base)
FALLBACK_BACKEND = "transformers"  # runs every model, decoding and per-user method here: `auto`'s last resort


def backend_class(name: str) -> type[Generator]:
    """The Generator class of a backend name; ValueError listing the names otherwise."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of: auto, {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def resolve_backend(name: str, settings, source, **methods) -> str:
    """`auto` is the first backend of AUTO_ORDER that is installed and runs this model with these settings and the
    per-user `methods` asked for (`Generator.unsupported_methods`)."""
    if name != "auto":
        backend_class(name)
        return name
    for candidate in AUTO_ORDER:
        generator = backend_class(candidate)
        if (generator.available() and generator.unsupported(source, settings) is None
                and generator.unsupported_methods(source, **methods) is None):
            return candidate
    return FALLBACK_BACKEND


def accepted_options(name: str) -> list[str]:
    """The option names backend `name`'s constructor takes."""
    init = backend_class(name).__init__
    return [p for p in inspect.signature(init).parameters if p not in ("self", "source", "settings")]


def backends_taking(option: str) -> list[str]:
    """The backends whose constructor takes `option` (to name them when another is chosen)."""
    return [name for name in BACKENDS if option in accepted_options(name)]


def check_options(name: str, options) -> type[Generator]:
    """The backend's class, once the option names are known to be ones its constructor takes."""
    generator = backend_class(name)
    accepted = accepted_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"backend {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(accepted)}")
    return generator


def get_backend(name: str, source, settings, **options) -> Generator:
    """Load the weights of `source` into backend `name` (not `auto`: resolve it first) with its options."""
    return check_options(name, options)(source, settings, **options)


def model_source(model_name: str, *, served: bool = False, tokenizer: str | None = None, base_model: str | None = None,
                 trust_remote_code: bool = False, chat_template_kwargs: dict | None = None):
    """The model a name means, without its weights: a served model by its name (its prompts counted with
    `tokenizer`), else a folder or Hub id (a PEFT adapter on its base, or on `base_model`)."""
    if served:
        from generation.served_model import served_model

        return served_model(model_name, tokenizer, trust_remote_code, chat_template_kwargs)
    from generation.source import resolve_model

    return resolve_model(model_name, base_model, trust_remote_code, chat_template_kwargs)
