"""LongLaMP as an lm-evaluation-harness task: the toolkit's data, prompts, decoding settings and scorer.

One task per LongLaMP config (`longlamp_<config>`). `LongLaMPTask` is a `ConfigurableTask` whose config the YAML
files give and whose run-dependent parts are filled in from lm-eval's `--metadata` and `--model_args` (lm-eval
merges both into the task's metadata) before lm-eval builds anything:

- data: `custom_dataset` loads the split with the toolkit's loader (`longlamp.load_split` through
  `evaluation.zero_shot.data.rows_to_predict`): the Hub by default, `data_dir` for a local copy or the bundled sample;
- prompts: each example's profile items are retrieved and fitted to the prompt budget by the toolkit's
  `top_k_items` and `PromptBuilder`, counted with the model's tokenizer, with or without the chat template as
  lm-eval's `--apply_chat_template` says; lm-eval's own chat rendering must give the same text;
- decoding: `generate_until` with no stop strings (`until: []`; lm-eval's default stops at a blank line), the
  new-token limit of the metadata, the toolkit's stop token ids, and none of the model's own
  `generation_config.json` decoding defaults (the toolkit applies none; lm-eval's hf backend would);
- scores: each generation is scored by the toolkit's scorer, and each metric is averaged in dataset order with
  the scorer's own mean, so the numbers equal `evaluation/eval_task.py` on the same predictions.

The metadata keys are `evaluation/evaluate_llm.py`'s option names (see `HarnessOptions`); docs/lm_eval.md maps
an lm-eval command to the equivalent `evaluate_llm.py` command.
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence, get_type_hints

import datasets
from lm_eval.api.task import ConfigurableTask

from evaluation.lm_eval_tasks import toolkit

logger = logging.getLogger(__name__)

# GenerationConfig fields that do not change which tokens greedy decoding picks, or that lm-eval sets itself on
# every call (max_length, do_sample, pad_token_id), or that the toolkit takes from the same place (bos and decoder
# start ids). The stop ids are handled apart (`generation_kwargs`).
_SAME_IN_BOTH = {
    "transformers_version", "_from_model_config", "bos_token_id", "pad_token_id", "decoder_start_token_id",
    "eos_token_id", "max_length", "do_sample", "use_cache", "output_attentions", "output_hidden_states",
    "output_scores", "output_logits", "return_dict_in_generate",
}
# Logits warpers: transformers applies them only when sampling.
_SAMPLING_ONLY = {"temperature", "top_k", "top_p", "typical_p", "min_p", "epsilon_cutoff", "eta_cutoff", "top_h"}


@dataclass(frozen=True)
class HarnessOptions:
    """The `--metadata` keys a LongLaMP task reads, with `evaluate_llm.py`'s names and meanings.

    Defaults differ from `evaluate_llm.py` in two places, both on purpose: the test split (the benchmark's
    reported split) and `use_profile` (an lm-eval task is the personalised benchmark; the no-profile baseline is
    `"use_profile": false`).
    """

    split: str = "test"
    data_dir: str | None = None  # a local copy of the public data (or data/sample); default: the Hub
    avocado_dir: str | None = None  # the email configs' data (the Avocado archives and question files)
    cache_dir: str | None = None
    data_revision: str | None = None  # evaluate_llm.py's --revision (lm-eval's `revision` is the model's)
    use_profile: bool = True
    retriever: str | None = None  # default: bm25
    num_retrieved: int | None = None  # default: 4
    retriever_model: str | None = None  # contriever's encoder (default: facebook/contriever)
    embedding_cache_dir: str | None = None
    max_prompt_length: int | None = None  # default: 1024, lowered to what the model's context leaves
    max_new_tokens: int = 512
    tokenizer: str | None = None  # the tokenizer that counts the budget; default: the model's (`pretrained`)
    chat_template_kwargs: dict | None = None  # default: lm-eval's chat_template_args and enable_thinking
    keep_reasoning: bool = False
    trust_remote_code: bool = False
    # Read from --model_args (lm-eval merges them into the metadata); never set in --metadata.
    pretrained: str | None = None
    max_length: int | None = None
    add_bos_token: bool | None = None
    chat_template_args: dict | None = None
    enable_thinking: bool | None = None


# Options of evaluate_llm.py that the harness path does not take, and what to use instead.
REFUSED = {
    "validation_data": "the task name picks the config; local data goes in data_dir",
    "task": "the task name picks the config",
    "max_eval_examples": "use lm-eval's --limit",
    "max_prompt_tokens": "the key is \"max_prompt_length\"",
    "use_chat_template": "use lm-eval's --apply_chat_template",
    "is_ranked": "ranked data is not supported through lm-eval; use evaluate_llm.py",
    "compare_no_profile": "run the task again with \"use_profile\": false",
    "do_sample": "the harness path decodes greedily, as evaluate_llm.py does by default",
    "num_beams": "the harness path decodes greedily, as evaluate_llm.py does by default",
    "seeds": "the harness path decodes greedily, as evaluate_llm.py does by default",
}


def parse_metadata(metadata: Mapping[str, Any], task_name: str) -> HarnessOptions:
    """The options in a task's metadata. Keys that are neither options nor plausibly model arguments fail: a
    misspelt option would otherwise be ignored silently and change the numbers."""
    names = {spec.name for spec in fields(HarnessOptions)}
    for key in metadata:
        if key in REFUSED:
            raise ValueError(f"{task_name}: --metadata {key!r} is not taken by the LongLaMP tasks: {REFUSED[key]}")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.8)
            if close:
                raise ValueError(f"{task_name}: unknown --metadata key {key!r}; did you mean {close[0]!r}?")
    values = {name: metadata[name] for name in names if name in metadata}
    for name in ("chat_template_kwargs", "chat_template_args"):
        if isinstance(values.get(name), str):  # --model_args values arrive as strings
            values[name] = json.loads(values[name])
    hints = get_type_hints(HarnessOptions)
    for name, value in values.items():
        wrong_bool = isinstance(value, bool) and bool not in getattr(hints[name], "__args__", (hints[name],))
        if wrong_bool or not isinstance(value, hints[name]):
            kind = getattr(hints[name], "__name__", str(hints[name]))
            raise ValueError(f"{task_name}: --metadata {name!r} must be {kind}, got {value!r}")
    return HarnessOptions(**values)


class Shared:
    """A callable that lm-eval can deep-copy when it records a task's config: the copy is the callable itself
    (a bound method would copy the task with its data and tokenizer)."""

    def __init__(self, function: Callable, name: str):
        self.function, self.name = function, name

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"<LongLaMP {self.name}>"


@dataclass
class Setup:
    """One task's resolved run: the options as evaluate_llm.py's `ZeroShotOptions`, the model without weights,
    the prompt budget, the decoding settings lm-eval is given, and (once loaded) the rows."""

    task_name: str
    config: str
    harness: HarnessOptions
    options: toolkit.ZeroShotOptions
    task: toolkit.Task
    source: Any  # the model's config, tokenizer and generation config (generation.source.ModelSource)
    budget: int
    generation_kwargs: dict
    retriever: Any = None
    num_retrieved: int = 0
    rows: Any = None
    builders: dict = field(default_factory=dict)

    @classmethod
    def build(cls, task_name: str, config: str, metadata: Mapping[str, Any]) -> "Setup":
        harness = parse_metadata(metadata, task_name)
        task, _ = toolkit.parse_config_name(config)
        address = harness.pretrained or harness.tokenizer
        if address is None:
            raise ValueError(f"{task_name}: name the model's tokenizer: lm-eval's --model_args pretrained=..., or "
                             "\"tokenizer\" in --metadata (it counts the prompt budget and builds the prompts)")
        if not harness.use_profile and (harness.retriever is not None or harness.num_retrieved is not None):
            raise ValueError(f"{task_name}: \"retriever\" and \"num_retrieved\" choose profile items, but "
                             "\"use_profile\" is false; drop them or the use_profile key")
        data_dir = harness.data_dir
        if not task.public:
            if harness.avocado_dir is None:
                raise ValueError(f"{task_name} needs the licensed Avocado data: --metadata '{{\"avocado_dir\": "
                                 "\"/path/to/avocado\"}' (the folder the README's Avocado section describes)")
            data_dir = harness.avocado_dir
        template_kwargs = harness.chat_template_kwargs
        if template_kwargs is None and (harness.chat_template_args or harness.enable_thinking is not None):
            template_kwargs = {**(harness.chat_template_args or {}),
                               **({"enable_thinking": harness.enable_thinking}
                                  if harness.enable_thinking is not None else {})}
        options = toolkit.ZeroShotOptions(
            validation_data=config, model_name=address, output_dir="", split=harness.split, data_dir=data_dir,
            cache_dir=harness.cache_dir, revision=harness.data_revision, use_profile=harness.use_profile,
            retriever=harness.retriever, num_retrieved=harness.num_retrieved,
            **({"retriever_model": harness.retriever_model} if harness.retriever_model else {}),
            embedding_cache_dir=harness.embedding_cache_dir, max_prompt_length=harness.max_prompt_length,
            max_new_tokens=harness.max_new_tokens, trust_remote_code=harness.trust_remote_code,
            chat_template_kwargs=json.dumps(template_kwargs) if template_kwargs else None,
            keep_reasoning=harness.keep_reasoning,
        )
        toolkit.check_options(options)
        source = toolkit.model_source(options)
        if harness.tokenizer is not None and harness.tokenizer != address:
            from transformers import AutoTokenizer

            source.tokenizer = AutoTokenizer.from_pretrained(harness.tokenizer,
                                                             trust_remote_code=harness.trust_remote_code)
        check_lm_eval_can_match(source, task_name)
        budget = toolkit.prompt_budget(options.max_prompt_length, source.context_length(), options.max_new_tokens,
                                       source.is_encoder_decoder, budget_flag="max_prompt_length",
                                       new_tokens_flag="max_new_tokens")
        if harness.max_length is not None and budget + options.max_new_tokens > harness.max_length:
            raise ValueError(f"{task_name}: lm-eval's max_length={harness.max_length} leaves less than the prompt "
                             f"budget {budget} + max_new_tokens {options.max_new_tokens}: lm-eval would cut the "
                             "start of long prompts; lower max_prompt_length or raise max_length")
        setup = cls(task_name, config, harness, options, task, source, budget,
                    generation_kwargs(source, options.max_new_tokens, task_name))
        if options.use_profile:
            setup.retriever = toolkit.make_retriever(options, options.retriever or toolkit.DEFAULT_RETRIEVER)
            setup.num_retrieved = (options.num_retrieved if options.num_retrieved is not None
                                   else toolkit.DEFAULT_NUM_RETRIEVED)
        return setup

    # --- data -----------------------------------------------------------------------------------------------

    def documents(self, **_metadata) -> dict[str, datasets.Dataset]:
        """lm-eval's `custom_dataset`: the split's rows without their profiles (which can hold thousands of items
        and would fill lm-eval's sample logs), each with its row number; prompts read the profile from the rows."""
        rows = toolkit.rows_to_predict(self.options)
        outputs = rows["output"] if "output" in rows.column_names else [None] * len(rows)
        missing = sum(not (isinstance(output, str) and output.strip()) for output in outputs)
        if missing:
            raise ValueError(f"{self.task_name}: {missing} of {len(rows)} examples of split {self.options.split!r} "
                             "have no reference output, so they cannot be scored; choose a split with outputs "
                             "(\"split\": \"validation\")")
        self.rows = rows
        documents = rows.remove_columns([name for name in ("profile",) if name in rows.column_names])
        return {self.options.split: documents.add_column("row", list(range(len(rows))))}

    # --- prompts --------------------------------------------------------------------------------------------

    def builder(self, chat: bool):
        if chat not in self.builders:
            if chat and not getattr(self.source.tokenizer, "chat_template", None):
                raise ValueError(f"{self.task_name}: --apply_chat_template, but the tokenizer of "
                                 f"{self.options.model_name} has no chat template")
            self.builders[chat] = toolkit.PromptBuilder(self.task, self.source.tokenizer, self.budget, chat,
                                                        self.options.template_kwargs())
        return self.builders[chat]

    def message(self, doc: Mapping, chat: bool) -> str:
        """The prompt before any chat template, as evaluate_llm.py builds it (`build_prompts`)."""
        row = self.rows[doc["row"]]
        items = ([] if self.retriever is None else
                 toolkit.top_k_items(self.task, row, self.num_retrieved, self.retriever))
        try:
            return self.builder(chat).fit(items, row["input"])
        except ValueError as error:
            raise ValueError(f"{self.task_name}, example {row['id']!r} (row {doc['row']}): {error}") from None

    def check_token_ids(self, prompt: str, chat: bool, doc: Mapping) -> None:
        """lm-eval's hf backend tokenizes the prompt text again (`HFLM.tok_batch_encode`): it adds the tokenizer's
        special tokens unless the text starts with the BOS token or `add_bos_token` says otherwise. The ids it
        sends must be the ones the budget counted (`ModelSource.encode`)."""
        tokenizer = self.source.tokenizer
        expected = self.source.encode(prompt, chat)
        bos = getattr(tokenizer, "bos_token", None)
        if bos is not None and prompt.startswith(bos):
            special = False
        else:
            special = True if self.harness.add_bos_token is None else bool(self.harness.add_bos_token)
        sent = tokenizer(prompt, add_special_tokens=special)["input_ids"]
        if sent != expected:
            fix = "False" if len(sent) > len(expected) else "True"
            raise ValueError(f"{self.task_name}, example {doc['id']!r}: lm-eval's hf backend would send other "
                             f"token ids than the toolkit counted ({len(sent)} instead of {len(expected)}: the "
                             f"tokenizer's special tokens); add add_bos_token={fix} to --model_args")

    # --- scores ---------------------------------------------------------------------------------------------

    def score(self, doc: Mapping, results: Sequence[str]) -> dict[str, tuple[int, float]]:
        """lm-eval's `process_results`: the toolkit's per-sample scores of one generation, each with the example's
        row so that the aggregation averages in dataset order (lm-eval gathers processes' results out of order)."""
        prediction = results[0] if self.options.keep_reasoning else toolkit.strip_reasoning(results[0])
        scores = toolkit.per_sample_scores([prediction], [doc["output"]], num_workers=1)
        return {name: (doc["row"], float(values[0])) for name, values in scores.items()}


def check_lm_eval_can_match(source, task_name: str) -> None:
    """Refuse the models whose generations lm-eval's hf backend cannot make equal to the toolkit's."""
    if source.is_encoder_decoder:
        # HFLM.generate_until passes max_length = prompt length + max_gen_toks, which bounds an encoder-decoder's
        # decoder output, not its new tokens, and its stop-string check looks past the prompt's length there.
        raise ValueError(f"{task_name}: lm-eval's hf backend bounds an encoder-decoder model's output by the prompt "
                         "length + max_gen_toks, not max_new_tokens; evaluate it with evaluation/evaluate_llm.py")
    tokenizer = source.tokenizer
    special = set(tokenizer.all_special_ids) | {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()
                                                if getattr(t, "special", False)}
    plain = [i for i in source.stop_token_ids if i not in special]
    if plain:
        # The toolkit cuts before a stop id; lm-eval keeps the stop token's text unless decoding skips it.
        raise ValueError(f"{task_name}: the stop token ids {plain} are not special tokens, so lm-eval's decoded "
                         "text would keep them where the toolkit cuts them off")
    probe = tokenizer("Well , it 's done . Is it ?", add_special_tokens=False)["input_ids"]
    if tokenizer.decode(probe, skip_special_tokens=True) != source.decode(probe):
        # HFLM.tok_decode decodes with the tokenizer's own clean_up_tokenization_spaces; the toolkit never cleans up.
        raise ValueError(f"{task_name}: the tokenizer's clean_up_tokenization_spaces=True removes spaces before "
                         "punctuation when lm-eval decodes, which the toolkit keeps; pass lm-eval a copy of the "
                         "tokenizer saved with clean_up_tokenization_spaces=False (--model_args tokenizer=FOLDER)")


def generation_kwargs(source, max_new_tokens: int, task_name: str) -> dict:
    """What `generate_until` is given, so that lm-eval's hf backend decodes as the toolkit's transformers backend.

    - `until: []`: no stop strings (lm-eval adds the EOS token's text, which a stop id already ends);
    - greedy, `max_gen_toks` = max_new_tokens (lm-eval's hf default is 256);
    - `eos_token_id`: the toolkit's stop ids (generation config, tokenizer EOS, chat end-of-turn), when the
      model's generation config, which lm-eval's backend stops at, lacks some;
    - every field of the model's generation config that changes greedy decoding (a repetition penalty, say) set
      back to unset: lm-eval's backend decodes with the model's generation config, the toolkit with exactly its
      settings. Refused when it cannot be undone through lm-eval (a `max_new_tokens` there wins over lm-eval's
      `max_length`).
    """
    from transformers import GenerationConfig

    kwargs: dict[str, Any] = {"until": [], "do_sample": False, "temperature": 0.0, "max_gen_toks": max_new_tokens}
    own = source.generation_config or GenerationConfig.from_model_config(source.config)
    own_stops = own.eos_token_id if isinstance(own.eos_token_id, list) else [own.eos_token_id]
    if set(source.stop_token_ids) - set(own_stops):
        kwargs["eos_token_id"] = list(source.stop_token_ids)
    for name, value in sorted(own.to_diff_dict().items()):
        if name in _SAME_IN_BOTH or name in _SAMPLING_ONLY or value is None:
            continue
        if name == "max_new_tokens":
            if value != max_new_tokens:
                raise ValueError(f"{task_name}: the model's generation_config.json sets max_new_tokens={value}, "
                                 "which transformers prefers to the max_length lm-eval passes: generations would "
                                 f"end after {value} tokens, not max_new_tokens={max_new_tokens}; remove it from a "
                                 "copy of the model, or set max_new_tokens to it")
            continue
        kwargs[name] = None
    return kwargs


def mean_in_row_order(items: Sequence[tuple[int, float]]) -> float:
    """lm-eval's aggregation of one metric: the scorer's mean (numpy's, as `evaluation/eval_task.py` reports it)
    of the per-sample scores in dataset order."""
    return toolkit.mean([score for _, score in sorted(items)])


class LongLaMPTask(ConfigurableTask):
    """A LongLaMP config as an lm-eval `generate_until` task (see the module docstring)."""

    def __init__(self, config: dict):
        config = {key: value for key, value in config.items() if key != "class"}
        setup = Setup.build(config["task"], config["dataset_name"], config.get("metadata") or {})
        self.setup = setup
        config.update(custom_dataset=Shared(setup.documents, "documents"), test_split=setup.options.split,
                      generation_kwargs=dict(setup.generation_kwargs),
                      process_results=Shared(setup.score, "toolkit scorer"))
        super().__init__(config=config)

    def doc_to_text(self, doc, doc_to_text=None):
        """The prompt without chat template (what lm-eval shows with --write_out); requests use `fewshot_context`."""
        return self.setup.message(doc, chat=False)

    def fewshot_context(self, doc, num_fewshot, system_instruction=None, apply_chat_template=False,
                        fewshot_as_multiturn=False, chat_template=None, gen_prefix=None):
        """The text lm-eval sends for one example: the toolkit's prompt, fitted with the chat template when
        --apply_chat_template is given. lm-eval's own rendering of the template must agree with it."""
        if num_fewshot:
            raise ValueError(f"{self.setup.task_name} is zero-shot (the retrieved profile items are its examples); "
                             "drop --num_fewshot")
        if system_instruction:
            raise ValueError(f"{self.setup.task_name}: --system_instruction would change the benchmark's prompt")
        chat = bool(apply_chat_template)
        message = self.setup.message(doc, chat)
        prompt = self.setup.builder(chat).format(message)
        if chat and chat_template is not None:
            rendered = chat_template([{"role": "user", "content": message}], add_generation_prompt=True)
            if rendered != prompt:
                raise ValueError(f"{self.setup.task_name}: lm-eval renders the chat template differently from the "
                                 "toolkit; give its chat_template_args as \"chat_template_kwargs\" in --metadata "
                                 f"(lm-eval: {rendered[:200]!r}; toolkit: {prompt[:200]!r})")
        self.setup.check_token_ids(prompt, chat, doc)
        return prompt

    def construct_requests(self, doc, ctx, **kwargs):
        if self.config.generation_kwargs != self.setup.generation_kwargs:
            raise ValueError(f"{self.setup.task_name}: --gen_kwargs changed the decoding settings "
                             f"({self.config.generation_kwargs}); the LongLaMP tasks decode as evaluate_llm.py does: "
                             "set \"max_new_tokens\" in --metadata instead")
        return super().construct_requests(doc, ctx, **kwargs)

    def build_all_requests(self, **kwargs):
        if kwargs.get("cache_requests"):
            # lm-eval's request cache is keyed by task, shots, chat template and tokenizer, not by --metadata: a
            # run with other retrieval or budget settings would get the old prompts.
            logger.warning("%s: --cache_requests is ignored (its key does not include --metadata)",
                           self.setup.task_name)
            kwargs.update(cache_requests=False, rewrite_requests_cache=False)
        return super().build_all_requests(**kwargs)
