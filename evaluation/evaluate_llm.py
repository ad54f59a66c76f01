"""Zero-shot evaluation of an LLM with retrieval-augmented personalization (the benchmark's `evaluate_llm.py`).

    python evaluation/evaluate_llm.py --validation_data product_review_user --data_dir data/sample \
        --model_name meta-llama/Llama-2-7b-chat-hf --output_dir runs/review \
        --use_profile --retriever bm25 --num_retrieved 4 --compare_no_profile

`--validation_data` is a config name (then `--split` picks the split) or a local file/folder (then `--task`
names the task). A killed run, restarted with the same arguments, continues where it stopped. The benchmark
README's flags (`--model_addr`, `--max_prompt_tokens`, `--limit`, `--no_chat_template`) are kept as aliases. A
fine-tuned model (a folder holding training's record) is evaluated by default with the retrieval, k, prompt budget and
chat template it was trained with; a flag given wins.
See docs/zero_shot.md for the files written, docs/flags.md for the flags across the commands.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.zero_shot import ZeroShotOptions, evaluate  # noqa: E402
from evaluation.zero_shot.run import run_folders  # noqa: E402
from longlamp_cli import ArgumentParser, run_command  # noqa: E402
from longlamp_errors import MissingNLTKDataError  # noqa: E402
from publishing.cli import HubArguments, publish  # noqa: E402
from publishing.hub import check_repo_id  # noqa: E402


def make_parser() -> ArgumentParser:
    """ZeroShotOptions' fields (the shared argument dataclasses) and, apart, where to publish the run; a fine-tuned
    model's training record gives the defaults of its prompt settings."""
    return ArgumentParser([ZeroShotOptions, HubArguments], description=__doc__.split("\n\n")[0],
                          trained_settings_from="model_name")


def parse_command(argv=None) -> tuple[ZeroShotOptions, HubArguments]:
    """The run's options and, apart, where to publish it (not part of the run: never recorded)."""
    return make_parser().parse_args_into_dataclasses(argv)


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
