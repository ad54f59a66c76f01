"""Zero-shot evaluation of an LLM with retrieval-augmented personalization (the benchmark's `evaluate_llm.py`).

    python evaluation/evaluate_llm.py --validation_data product_review_user --data_dir data/sample \
        --model_name meta-llama/Llama-2-7b-chat-hf --output_dir runs/review \
        --use_profile --retriever bm25 --num_retrieved 4 --compare_no_profile

`--validation_data` is a config name (then `--split` picks the split) or a local file/folder (then `--task`
names the task). A killed run, restarted with the same arguments, continues where it stopped. The benchmark
README's flags (`--model_addr`, `--max_prompt_tokens`, `--limit`, `--no_chat_template`) are kept as aliases.
See docs/zero_shot.md for the files written, docs/flags.md for the flags across the commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.zero_shot import ZeroShotOptions, evaluate  # noqa: E402
from evaluation.zero_shot.options import add_option_flag  # noqa: E402
from evaluation.zero_shot.run import run_folders  # noqa: E402
from longlamp_cli import ArgumentParser, run_command  # noqa: E402
from longlamp_errors import MissingNLTKDataError  # noqa: E402
from publishing.cli import HubOptions, add_publishing_arguments, publish, split_publishing  # noqa: E402
from publishing.hub import check_repo_id  # noqa: E402

GROUPS = ("data", "model", "vllm", "served", "personalization", "prompt", "generation", "output")
# Aliases only this command keeps (the benchmark README's and its own older names).
ALIASES = {"max_eval_examples": ("--limit",)}


def build_parser() -> argparse.ArgumentParser:
    """One flag per ZeroShotOptions field: the shared concepts as longlamp_cli defines them, the others from the
    field's own help; the field's default is the flag's default."""
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for spec in dataclasses.fields(ZeroShotOptions):
        add_option_flag(groups[spec.metadata["group"]], spec, ALIASES.get(spec.name, ()))
    # The old negative form of the chat-template switch, kept for existing command lines.
    groups["prompt"].add_argument("--no_chat_template", dest="use_chat_template", action="store_false",
                                  help="the same as --no-use_chat_template")
    add_publishing_arguments(parser)
    return parser


def parse_command(argv=None) -> tuple[ZeroShotOptions, HubOptions]:
    """The run's options and, apart, where to publish it (not part of the run: never recorded)."""
    values, hub = split_publishing(vars(build_parser().parse_args(argv)))
    return ZeroShotOptions(**values), hub


def parse_args(argv=None) -> ZeroShotOptions:
    return parse_command(argv)[0]


def main(argv=None) -> int:
    options, hub = parse_command(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if hub.push_to_hub:
            check_repo_id(hub.hub_model_id)  # before hours of generation, not after
        results = evaluate(options)
    except MissingNLTKDataError as error:  # generation is done: only scoring needs the fix (exit 3, documented)
        print(f"evaluate_llm.py: error: {error}\nThe predictions are written in {options.output_dir}; run the same "
              "command again once fixed to score them (nothing is generated twice).", file=sys.stderr)
        return 3
    for folder, result in zip(run_folders(options, Path(options.output_dir)), results):
        metrics = result["scores"]["metrics"] if result["scores"] else {}
        shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()) or result["not_scored"]
        print(f"{folder / 'predictions.json'} ({result['examples']} examples): {shown}")
    if hub.push_to_hub:
        try:
            print(f"pushed to {publish(options.output_dir, hub)}")
        except ValueError as error:  # the run is complete on disk: only the upload needs doing again
            print(f"evaluate_llm.py: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
