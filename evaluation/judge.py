"""Score predictions with an LLM judge, ExPerT-style: optional, and not one of the benchmark's metrics.

    python evaluation/judge.py --golds golds.json --preds predictions.json --judge_model M --output_dir D \\
        [--backend auto|transformers|vllm|openai --api_base URL ...] [--prompts_file F] [--max_aspects 8]

The judge lists the aspects of each reference and prediction, then rates each aspect against the other text's
for content and for style: precision, recall and F1 per criterion (evaluation/judges/expert.py; the protocol in
docs/evaluation.md, "LLM judge (ExPerT-style)"). Every judge call is cached by its full input in
D/judge_cache.sqlite (or --cache_file): a killed run resumes, and scoring again makes no call at all. Writes
D/judge_scores.json (settings, means, unreadable answers) and D/judge_per_example.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.judges import expert  # noqa: E402
from evaluation.judges.judge_model import build_judge, judge_options  # noqa: E402
from evaluation.zero_shot.options import SERVED_OPTIONS, ZeroShotOptions, add_option_flag  # noqa: E402
from generation.cache import CachedGenerator, GenerationCache  # noqa: E402
from longlamp_cli import (  # noqa: E402
    ArgumentParser,
    add_flag,
    check_folder,
    check_output_file,
    positive_int,
    run_command,  # noqa: E402
)
from longlamp_io import RunLock, write_json_atomic, write_text_atomic  # noqa: E402
from scoring import files  # noqa: E402

logger = logging.getLogger(__name__)
# The zero-shot run's model settings that a judge takes as they are (their flags, help and defaults).
MODEL_FIELDS = ("backend", "batch_size", "dtype", "device_map", "base_model", "trust_remote_code",
                "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "max_num_seqs", *SERVED_OPTIONS,
                "tokenizer", "chat_template_kwargs")
DEFAULT_MAX_NEW_TOKENS = 256
NOT_THE_BENCHMARK = ("an LLM judge's scores (ExPerT-style, evaluation/judges/expert.py): not the benchmark's "
                     "metrics, which are ROUGE-1, ROUGE-L and METEOR (eval_task.py)")


def add_model_flags(group) -> None:
    """The judge model's flags, as evaluate_llm.py defines them from ZeroShotOptions' fields."""
    for spec in dataclasses.fields(ZeroShotOptions):
        if spec.name in MODEL_FIELDS:
            add_option_flag(group, spec)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    files_group = parser.add_argument_group("files")
    files_group.add_argument("--golds", "--golds_json", required=True, help="gold outputs (the benchmark's format)")
    files_group.add_argument("--preds", "--preds_json", required=True, help="predictions to judge (same format)")
    files_group.add_argument("--output_dir", required=True, help="where judge_scores.json and the per-example file go")
    files_group.add_argument("--cache_file", default=None,
                             help="the judge-call cache, which runs may share (default: OUTPUT_DIR/judge_cache.sqlite)")
    add_flag(files_group, "max_eval_examples", help="judge only the first N gold examples", type=positive_int)
    judge_group = parser.add_argument_group("judge")
    judge_group.add_argument("--judge_model", required=True, help="Hub id or folder of the judge model, or the "
                             "name a server knows it by (--backend openai)")
    judge_group.add_argument("--prompts_file", default=None, help=f"the judge's prompts (default: "
                             f"{expert.DEFAULT_PROMPTS.relative_to(Path(__file__).resolve().parents[1])})")
    judge_group.add_argument("--max_aspects", type=positive_int, default=expert.DEFAULT_MAX_ASPECTS, metavar="N",
                             help="aspects kept per text (the first the judge lists)")
    add_flag(judge_group, "max_new_tokens", default=DEFAULT_MAX_NEW_TOKENS, help="tokens per judge answer at most")
    add_flag(judge_group, "max_prompt_length", help="token budget of a judge prompt (default: what the model's "
             "context leaves after --max_new_tokens)")
    add_flag(judge_group, "use_chat_template")
    add_model_flags(parser.add_argument_group("judge model (as evaluate_llm.py's)"))
    return parser


def score(args: argparse.Namespace) -> tuple[dict, list[dict], CachedGenerator]:
    """Judge the predictions; returns judge_scores.json's content, the per-example records and the judge (its
    call counts). Everything that can refuse the run does so before the judge is loaded."""
    output_dir = check_folder(args.output_dir, "--output_dir")
    cache_path = check_output_file(args.cache_file or output_dir / "judge_cache.sqlite", "--cache_file")
    prompts = expert.load_prompts(args.prompts_file)
    options = judge_options(args.judge_model, str(output_dir), max_new_tokens=args.max_new_tokens,
                            use_chat_template=args.use_chat_template,
                            **{name: getattr(args, name) for name in MODEL_FIELDS})
    golds = files.read_task_file(args.golds, "golds")
    predictions_file = files.read_task_file(args.preds, "predictions")
    task = files.check_task(golds, predictions_file)
    predictions = files.predictions_in_gold_order(golds, predictions_file)
    count = min(args.max_eval_examples or len(golds.ids), len(golds.ids))
    with RunLock(output_dir, "judge.py"):
        cache = GenerationCache(cache_path)
        try:
            judge = build_judge(options, cache, args.max_prompt_length)
            records = expert.judge(golds.outputs[:count], predictions[:count], judge.ask, prompts, args.max_aspects)
        finally:
            cache.close()
        records = [{"id": example_id, **({"user": golds.users[i]} if golds.users else {}), **record}
                   for i, (example_id, record) in enumerate(zip(golds.ids, records))]
        result = {"note": NOT_THE_BENCHMARK, "task": task, "golds": golds.path, "preds": predictions_file.path,
                  "examples": count,
                  "settings": {"judge": judge.identity, "prompts_file": prompts.path, "prompts_sha256": prompts.sha256,
                               "score_scale": prompts.score_scale, "max_aspects": args.max_aspects},
                  "scores": expert.summary(records)}
        write_text_atomic(output_dir / "judge_per_example.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        write_json_atomic(output_dir / "judge_scores.json", result)
    return result, records, judge


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result, _, judge = score(args)
    scores = result["scores"]
    for name in expert.CRITERIA:
        print(f"{name}: precision {scores[name]['precision']:.4f}  recall {scores[name]['recall']:.4f}  "
              f"f1 {scores[name]['f1']:.4f}")
    unreadable = scores["unreadable"]
    print(f"unreadable judge answers: {unreadable['reference_aspects']} reference and "
          f"{unreadable['prediction_aspects']} prediction extractions, {unreadable['ratings']} ratings")
    print(f"judge calls: {judge.sent} sent to the model, {judge.cached} answered from the cache")
    print(f"written: {Path(args.output_dir) / 'judge_scores.json'} ({result['examples']} examples): "
          f"{NOT_THE_BENCHMARK}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
