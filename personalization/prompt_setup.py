"""The model, backend and prompt rules of a per-user run, and the prompts of its rows: what per-user evaluation
and style-vector training share."""

from __future__ import annotations

from generation.decoding import GenerationSettings
from generation.preparation import PreparedModel, prepare_model
from longlamp_runs import (
    DataSource,
    DecodingSettings,
    PerUserSettings,
    PromptSettings,
    RetrievalSettings,
    RunRecord,
    TaskSettings,
    config_of,
)
from longlamp_tasks import parse_config_name


class PromptSetup:
    """The model, backend and prompt rules of a run, and the prompts of its rows. `prepared`: the model prepared
    for generation (`generation.preparation`; default: the flags' model on a backend that can steer it, as style
    vectors need). `longest_new_tokens`: the most tokens any generation of the run asks for (a summary's may exceed
    the task's), which sizes a vLLM engine."""

    def __init__(self, args, prepared: PreparedModel | None = None, longest_new_tokens: int = 0):
        self.args, self.task = args, parse_config_name(args.task)[0]
        self.prepared = prepared or prepare_model(
            args.model_name, GenerationSettings(max_new_tokens=args.max_new_tokens), options={"dtype": args.dtype},
            max_prompt_length=args.max_prompt_length, steering=True)
        self.source = self.prepared.source
        self.builder = self.prepared.prompt_builder(self.task, args.use_chat_template)
        self.generator = self.prepared.load(self.prepared.budget, longest_new_tokens)  # no prompt is longer
        self.batch_size = args.batch_size or self.prepared.generator_class.default_batch_size
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
        args, generator = self.args, self.generator
        retrieval = RetrievalSettings()
        if self.retriever is not None:
            retrieval = RetrievalSettings(True, args.retriever, args.retriever_model, self.retriever.signature,
                                          args.num_retrieved)
        return RunRecord(
            kind, TaskSettings(config_of(args.task), args.split), data,
            self.prepared.model_settings,
            retrieval, PromptSettings(self.builder.max_prompt_tokens, self.builder.use_chat_template),
            DecodingSettings(**generator.settings.record(), strip_reasoning=strip_reasoning), per_user=per_user)
