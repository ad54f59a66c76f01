"""Score predictions with an LLM judge, ExPerT's protocol by default: optional, and not one of the benchmark's metrics.

    python evaluation/judge.py --golds golds.json --preds predictions.json --judge_model M --output_dir D \\
        [--validation_data product_review_user --data_dir data/sample --split validation | --prompts_json P] \\
        [--protocol expert|graded] [--backend auto|transformers|vllm|openai --api_base URL ...] [--prompts_file F]

`--protocol expert` (the default) is ExPerT's (evaluation/judges/expert.py): the judge extracts each text's aspects
with evidence, given the user's prompt (the task input: from the gold file, the data or a no-profile run's
prompts.json), matches them both ways and gives content and style verdicts on each matched pair; it reports
precision, recall and F1 for ExPerT's five variants. `--protocol graded` is the toolkit's earlier protocol
(evaluation/judges/graded.py). Answers are read strictly and asked again on ExPerT's retry schedule; an example
whose reference cannot be read is left out and counted. Every readable judge answer is cached by its full input
in D/judge_cache.sqlite (or --cache_file): a killed run resumes, and scoring again asks only what was unreadable.
Writes D/judge_scores.json (settings, means, what was left out or unreadable) and D/judge_per_example.jsonl.
Protocol and differences from ExPerT: docs/evaluation.md, "LLM judge (ExPerT)".
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.judges import expert, graded, task_inputs  # noqa: E402
from evaluation.judges.judge_model import build_judge, judge_options  # noqa: E402
from evaluation.judges.protocol import (  # noqa: E402
    DEFAULT_FORMAT_RETRIES,
    DEFAULT_PROMPTS,
    PROTOCOLS,
    RETRY_TOP_P,
    Attempt,
    load_prompts,
)
from evaluation.zero_shot.data import config_name, rows_to_predict  # noqa: E402
from evaluation.zero_shot.options import SERVED_OPTIONS, ZeroShotOptions  # noqa: E402
from generation.cache import CachedGenerator, GenerationCache  # noqa: E402
from generation.cli import BackendArguments, DecodingArguments, ModelArguments, ServedArguments, VllmArguments  # noqa: E402
from longlamp_cli import (  # noqa: E402
    ArgumentParser,
    DataArguments,
    DataSourceArguments,
    OutputArguments,
    PromptArguments,
    UsageError,
    arg,
    check_folder,
    check_output_file,
    non_negative_int,
    output_file,
    positive_int,
    reuse,
    run_command,
)
from longlamp_io import RunLock, write_json_atomic, write_json_lines  # noqa: E402
from longlamp_tasks import parse_config_name  # noqa: E402
from scoring import files  # noqa: E402

logger = logging.getLogger(__name__)
# The zero-shot run's model settings that a judge takes as they are (their flags, help and defaults).
MODEL_FIELDS = ("backend", "batch_size", "dtype", "device_map", "base_model", "trust_remote_code",
                "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs", *SERVED_OPTIONS,
                "tokenizer", "chat_template_kwargs")
DATA_FLAGS = ("task", "split", "data_dir", "cache_dir", "revision")  # with --validation_data, as evaluate_llm.py's
MAX_NEW_TOKENS = {"expert": expert.DEFAULT_MAX_NEW_TOKENS, "graded": graded.DEFAULT_MAX_NEW_TOKENS}
REPORTS = {"expert": expert, "graded": graded}  # each protocol's summary() and report_lines()
NOT_THE_BENCHMARK = ("an LLM judge's scores (ExPerT's protocol or the graded one, evaluation/judges/): not the "
                     "benchmark's metrics, which are ROUGE-1, ROUGE-L and METEOR (eval_task.py)")
NO_INPUTS = ("--protocol expert shows the judge each example's task input (ExPerT shows the user's prompt), and "
             "{golds} carries none: give --validation_data (with --data_dir, --split or --task as for "
             "evaluate_llm.py), or --prompts_json with a no-profile zero-shot run's prompts.json, or run --protocol "
             "graded")


# The bases are listed last first: a dataclass takes its fields from the last base first.
@dataclass(kw_only=True)
class JudgeArguments(ServedArguments, VllmArguments, BackendArguments, DataSourceArguments):
    """The judge's files, task inputs, protocol and model (the model flags as evaluate_llm.py's)."""

    _argument_group_name = "judge"
    golds: str = arg("gold outputs (the benchmark's format; an entry may carry its task input as \"input\")",
                     aliases=("--golds_json",))
    preds: str = arg("predictions to judge (same format)", aliases=("--preds_json",))
    output_dir: str = reuse(OutputArguments, "output_dir")
    cache_file: str | None = arg("the judge-call cache, which runs may share (default: OUTPUT_DIR/judge_cache.sqlite)",
                                 default=None, type=output_file)
    max_eval_examples: int | None = reuse(DataArguments, "max_eval_examples")
    validation_data: str | None = reuse(ZeroShotOptions, "validation_data", default=None,
                                        help="task inputs for --protocol expert (default: the gold file's): a "
                                             "LongLaMP config name or a local file/folder of rows, whose rows give "
                                             "the inputs")
    split: str = reuse(DataArguments, "split")
    prompts_json: str | None = arg("task inputs for --protocol expert: a no-profile zero-shot run's prompts.json, "
                                   "whose prompts are the task inputs (refused when a profile or chat template is in "
                                   "them) (default: none)", default=None)
    judge_model: str = arg("Hub id or folder of the judge model, or the name a server knows it by (--backend openai)")
    protocol: str = arg("expert: ExPerT's (evaluation/judges/expert.py); graded: the toolkit's earlier one",
                        default="expert", choices=PROTOCOLS)
    prompts_file: str | None = arg(f"the judge's prompts, a section per protocol (default: "
                                   f"{DEFAULT_PROMPTS.relative_to(Path(__file__).resolve().parents[1])})",
                                   default=None)
    format_retries: int = arg("times an unreadable answer is asked again, each try sampled 0.1 warmer (top_p 0.95; "
                              "ExPerT's max_retries)", default=DEFAULT_FORMAT_RETRIES, type=non_negative_int,
                              metavar="N")
    max_text_tokens: int | None = arg(f"expert: each text is cut to its first N tokens of the judge's tokenizer "
                                      f"(default: {expert.DEFAULT_MAX_TEXT_TOKENS}, ExPerT's)", default=None,
                                      type=positive_int, metavar="N")
    max_aspects: int | None = arg(f"graded: aspects kept per text, the first the judge lists (default: "
                                  f"{graded.DEFAULT_MAX_ASPECTS}); expert keeps all, as ExPerT", default=None,
                                  type=positive_int, metavar="N")
    max_new_tokens: int | None = reuse(DecodingArguments, "max_new_tokens", default=None,
                                       help=f"tokens per judge answer at most (default: {MAX_NEW_TOKENS['expert']} "
                                            f"expert, {MAX_NEW_TOKENS['graded']} graded)")
    max_prompt_length: int | None = reuse(PromptArguments, "max_prompt_length",
                                          help="token budget of a judge prompt (default: what the model's context "
                                               "leaves after --max_new_tokens)")
    use_chat_template: bool | None = reuse(PromptArguments, "use_chat_template")
    chat_template_kwargs: str | None = reuse(PromptArguments, "chat_template_kwargs")
    dtype: str = reuse(ModelArguments, "dtype")


def make_parser() -> ArgumentParser:
    return ArgumentParser(JudgeArguments, description=__doc__.split("\n\n")[0])


def check_protocol_flags(args: JudgeArguments) -> None:
    """Refuse the flags the chosen protocol does not use."""
    if args.protocol == "expert" and args.max_aspects is not None:
        raise UsageError("--max_aspects caps the graded protocol's aspects; ExPerT keeps every aspect (drop it, or "
                         "add --protocol graded)")
    if args.protocol == "graded":
        given = [f"--{name}" for name in ("max_text_tokens", "validation_data", "prompts_json")
                 if getattr(args, name) is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: used by --protocol expert only (the graded protocol shows no task "
                             "input and cuts no text)")
    if args.validation_data is not None and args.prompts_json is not None:
        raise UsageError("--validation_data and --prompts_json both give the task inputs: give one")


def read_inputs(args: JudgeArguments, golds: files.TaskFile, ids: list[str]) -> tuple[list[str], str]:
    """The task input of each example in `ids`, and where they came from (for the record)."""
    if args.validation_data is not None:
        data = {"validation_data": args.validation_data, **{name: getattr(args, name) for name in DATA_FLAGS}}
        rows = rows_to_predict(ZeroShotOptions(model_name="", output_dir="", **data))
        where = f"--validation_data {args.validation_data} ({args.split})"
        return task_inputs.from_rows(rows, ids, golds.outputs[:len(ids)], where), where
    if args.prompts_json is not None:
        task = parse_config_name(config_name(golds.task))[0]
        return task_inputs.from_prompts_file(args.prompts_json, ids, task), f"--prompts_json {args.prompts_json}"
    found = task_inputs.from_golds(args.golds, ids)
    if found is None:
        raise UsageError(NO_INPUTS.format(golds=args.golds))
    return found, f"{args.golds} (its entries' \"input\")"


def asker(judge: CachedGenerator, generation):
    """The protocols' `ask`: try 0 with the judge's greedy decoding, each retry sampled as the attempt says (its
    temperature and top_p, and the try's number as its seed), answers stored only when readable."""
    def ask(messages, what: str, attempt: Attempt, readable) -> list[str]:
        settings = None
        if attempt.temperature > 0:
            settings = dataclasses.replace(generation, do_sample=True, temperature=attempt.temperature,
                                           top_p=attempt.top_p, seed=generation.seed + attempt.number)
            what = f"{what}, try {attempt.number + 1} at temperature {attempt.temperature:g}"
        return judge.ask(messages, what, settings, readable)

    return ask


def score(args: JudgeArguments) -> tuple[dict, list[dict], CachedGenerator]:
    """Judge the predictions; returns judge_scores.json's content, the per-example records and the judge (its
    call counts). Everything that can refuse the run does so before the judge is loaded."""
    check_protocol_flags(args)
    output_dir = check_folder(args.output_dir, "--output_dir")
    cache_path = check_output_file(args.cache_file or output_dir / "judge_cache.sqlite", "--cache_file")
    prompts = load_prompts(args.prompts_file, args.protocol)
    max_new_tokens = args.max_new_tokens or MAX_NEW_TOKENS[args.protocol]
    options = judge_options(args.judge_model, str(output_dir), max_new_tokens=max_new_tokens,
                            use_chat_template=args.use_chat_template,
                            **{name: getattr(args, name) for name in MODEL_FIELDS})
    golds = files.read_task_file(args.golds, "golds")
    predictions_file = files.read_task_file(args.preds, "predictions")
    task = files.check_task(golds, predictions_file)
    predictions = files.predictions_in_gold_order(golds, predictions_file)
    count = min(args.max_eval_examples or len(golds.ids), len(golds.ids))
    ids = golds.ids[:count]
    settings = {"protocol": args.protocol, "prompts_file": prompts.path, "prompts_sha256": prompts.sha256,
                "format_retries": args.format_retries,
                "retries": f"try 0 greedy; try n sampled at temperature min(n, 11) / 10, top_p {RETRY_TOP_P}, seed n",
                "max_new_tokens": max_new_tokens}
    if args.protocol == "expert":
        inputs, inputs_from = read_inputs(args, golds, ids)
        max_text_tokens = args.max_text_tokens or expert.DEFAULT_MAX_TEXT_TOKENS
        settings.update(task_inputs=inputs_from, max_text_tokens=max_text_tokens)
    else:
        max_aspects = args.max_aspects or graded.DEFAULT_MAX_ASPECTS
        settings.update(score_scale=prompts.score_scale, max_aspects=max_aspects)
    with RunLock(output_dir, "judge.py"):
        cache = GenerationCache(cache_path)
        try:
            judge = build_judge(options, cache, args.max_prompt_length)
            ask = asker(judge, options.generation())
            references, predicted = golds.outputs[:count], predictions[:count]
            if args.protocol == "expert":
                settings["text_tokenizer"] = ("the judge's" if judge.tokenizer is not None else
                                              "none known (a served judge without --tokenizer): words, as ExPerT")
                records = expert.judge(inputs, references, predicted, ask, prompts, judge.tokenizer,
                                       max_text_tokens, args.format_retries)
            else:
                records = graded.judge(references, predicted, ask, prompts, max_aspects, args.format_retries)
        finally:
            cache.close()
        records = [{"id": example_id, **({"user": golds.users[i]} if golds.users else {}), **record}
                   for i, (example_id, record) in enumerate(zip(ids, records))]
        result = {"note": NOT_THE_BENCHMARK, "task": task, "golds": golds.path, "preds": predictions_file.path,
                  "examples": count, "settings": {"judge": judge.identity, **settings},
                  "scores": REPORTS[args.protocol].summary(records)}
        write_json_lines(output_dir / "judge_per_example.jsonl", records)
        write_json_atomic(output_dir / "judge_scores.json", result)
    return result, records, judge


def main(argv=None) -> int:
    args = make_parser().parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result, _, judge = score(args)
    for line in REPORTS[args.protocol].report_lines(result["scores"]):
        print(line)
    print(f"judge calls: {judge.sent} sent to the model, {judge.cached} answered from the cache")
    print(f"written: {Path(args.output_dir) / 'judge_scores.json'} ({result['examples']} examples): "
          f"{NOT_THE_BENCHMARK}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
