"""The model, backend and prompt rules of a per-user run, and the prompts of its rows: what per-user evaluation
and style-vector training share."""

from __future__ import annotations

from generation import backend_class, get_backend
from generation.decoding import GenerationSettings
from generation.source import resolve_model
from longlamp_prompts import PromptBuilder, prompt_budget
from longlamp_runs import (
    DataSource,
    DecodingSettings,
    ModelSettings,
    PerUserSettings,
    PromptSettings,
    RetrievalSettings,
    RunRecord,
    TaskSettings,
    config_of,
    trained_settings,
)
from longlamp_tasks import parse_config_name


class PromptSetup:
    """The model, backend and prompt rules of a run, and the prompts of its rows. `longest_new_tokens`: the most
    tokens any generation of the run asks for (a summary's may exceed the task's), which sizes a vLLM engine."""

    def __init__(self, args, max_new_tokens: int | None = None, backend: str = "transformers",
                 backend_options: dict | None = None, longest_new_tokens: int = 0, source=None):
        self.args, self.task = args, parse_config_name(args.task)[0]
        self.source = source or resolve_model(args.model_name)
        new_tokens = max_new_tokens or args.max_new_tokens
        budget = prompt_budget(args.max_prompt_length, self.source.context_length(), new_tokens,
                               self.source.is_encoder_decoder)
        self.builder = PromptBuilder(self.task, self.source.tokenizer, budget, args.use_chat_template)
        generator_class = backend_class(backend)
        run_options = generator_class.run_options(budget, max(new_tokens, longest_new_tokens))  # no prompt is longer
        self.generator = get_backend(backend, self.source, GenerationSettings(max_new_tokens=new_tokens),
                                     dtype=args.dtype, **(backend_options or {}), **run_options)
        self.batch_size = args.batch_size or generator_class.default_batch_size
        self.retriever = None
        if args.use_profile:
            from retrieval import get_retriever

            options = {"model_name": args.retriever_model} if args.retriever == "contriever" else {}
            self.retriever = get_retriever(args.retriever, **options)

    def items(self, row) -> list[dict]:
        from retrieval import top_k_items

        return top_k_items(self.task, row, self.args.num_retrieved, self.retriever) if self.retriever else []

    def encode(self, prompt: str) -> list[int]:
        return self.source.encode(prompt, self.builder.use_chat_template)

    def record(self, kind: str, data: DataSource, per_user: PerUserSettings, strip_reasoning: bool) -> RunRecord:
        """The run record of a run with these model, backend and prompt rules (per-user evaluation, style vectors);
        the weights are fingerprinted here."""
        from generation.fingerprints import model_fingerprint

        args, source, generator = self.args, self.source, self.generator
        retrieval = RetrievalSettings()
        if self.retriever is not None:
            retrieval = RetrievalSettings(True, args.retriever, args.retriever_model, self.retriever.signature,
                                          args.num_retrieved)
        return RunRecord(
            kind, TaskSettings(config_of(args.task), args.split), data,
            ModelSettings(args.model_name, source.base if source.adapter else None, model_fingerprint(source),
                          generator.name, type(generator).dtype_name(args.dtype),
                          trained_settings(args.model_name) is not None),
            retrieval, PromptSettings(self.builder.max_prompt_tokens, self.builder.use_chat_template),
            DecodingSettings(**generator.settings.record(), strip_reasoning=strip_reasoning), per_user=per_user)
