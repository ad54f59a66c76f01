"""Zero-shot evaluation of an LLM with retrieval-augmented personalization (the benchmark's `evaluate_llm.py`).

    python evaluation/evaluate_llm.py --validation_data product_review_user --data_dir data/sample \
        --model_addr meta-llama/Llama-2-7b-chat-hf --output_dir runs/review \
        --use_profile --retriever bm25 --num_retrieved 4 --compare_no_profile

`--validation_data` is a config name (then `--split` picks the split) or a local file/folder (then `--task`
names the task). A killed run, restarted with the same arguments, continues where it stopped. See
docs/zero_shot.md for the files written and every option.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, not from evaluation/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.generation import BACKENDS, DTYPES  # noqa: E402
from evaluation.nltk_setup import MissingNLTKDataError  # noqa: E402
from evaluation.zero_shot import ZeroShotOptions, evaluate  # noqa: E402
from publishing.cli import add_publishing_arguments, publish, split_publishing  # noqa: E402
from publishing.hub import check_repo_id  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--validation_data", required=True,
                      help="a LongLaMP config name (e.g. product_review_user) or a local file/folder of rows")
    data.add_argument("--task", help="config or task name; needed when --validation_data is a file or folder")
    data.add_argument("--split", default="validation", help="split of a config: train, validation (default), test")
    data.add_argument("--data_dir", help="local copy of the data (e.g. data/sample) instead of the Hub")
    data.add_argument("--cache_dir", help="datasets cache folder (default: the datasets library's)")
    data.add_argument("--limit", type=int, help="evaluate only the first N examples (a quick look)")

    model = parser.add_argument_group("model")
    model.add_argument("--model_addr", required=True, help="Hub id or directory of a model, or a PEFT adapter")
    model.add_argument("--base_model", help="base model of a PEFT adapter, instead of the one its config names")
    model.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="auto: vLLM when installed with a GPU, else transformers")
    model.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bfloat16 on GPU, float32 on CPU")
    model.add_argument("--device_map", help="transformers device map (default: auto with a GPU, else CPU)")
    model.add_argument("--batch_size", type=int, help="examples per batch (default: 8 transformers, 256 vLLM)")

    profile = parser.add_argument_group("personalization")
    profile.add_argument("--use_profile", action="store_true", help="put retrieved profile items in the prompt")
    profile.add_argument("--retriever", default="bm25", help="bm25 (default), contriever, recency, random")
    profile.add_argument("--num_retrieved", type=int, default=4, help="profile items per prompt (default: 4)")
    profile.add_argument("--is_ranked", action="store_true", help="profiles are already ranked: take the first k")
    profile.add_argument("--compare_no_profile", action="store_true",
                         help="also run without profile (into OUTPUT_DIR/no_profile) and compare the scores")

    prompt = parser.add_argument_group("prompt")
    prompt.add_argument("--max_prompt_tokens", type=int,
                        help="prompt budget (default: the model's context minus --max_new_tokens)")
    prompt.add_argument("--no_chat_template", dest="use_chat_template", action="store_false", default=None,
                        help="send the plain prompt even when the tokenizer has a chat template")

    generation = parser.add_argument_group("generation")
    generation.add_argument("--max_new_tokens", type=int, default=512, help="tokens to generate (default: 512)")
    generation.add_argument("--do_sample", action="store_true", help="sample instead of greedy decoding")
    generation.add_argument("--temperature", type=float, default=1.0, help="with --do_sample (default: 1.0)")
    generation.add_argument("--top_p", type=float, default=1.0, help="with --do_sample (default: 1.0, no cut)")
    generation.add_argument("--num_beams", type=int, default=1, help="beam search when > 1 (default: 1)")
    generation.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")

    parser.add_argument("--output_dir", required=True, help="where predictions, prompts and scores go")
    add_publishing_arguments(parser)
    return parser


def parse_args(argv=None) -> ZeroShotOptions:
    return ZeroShotOptions(**split_publishing(vars(build_parser().parse_args(argv)))[0])


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_args(argv)
    hub = split_publishing(vars(build_parser().parse_args(argv)))[1]
    try:
        if hub.push_to_hub:
            check_repo_id(hub.hub_model_id)  # before hours of generation, not after
        results = evaluate(options)
    except (ValueError, FileNotFoundError) as error:  # bad input: the message says what to fix
        print(f"evaluate_llm.py: error: {error}", file=sys.stderr)
        return 2
    except MissingNLTKDataError as error:  # generation is done: only scoring needs the fix
        print(f"evaluate_llm.py: error: {error}\nThe predictions are written in {options.output_dir}; run the same "
              "command again once fixed to score them (nothing is generated twice).", file=sys.stderr)
        return 3
    for directory, result in zip(["", "no_profile/"], results):
        metrics = result["scores"]["metrics"] if result["scores"] else {}
        shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()) or result["not_scored"]
        print(f"{options.output_dir}/{directory}predictions.json ({result['examples']} examples): {shown}")
    if hub.push_to_hub:
        try:
            print(f"pushed to {publish(options.output_dir, hub)}")
        except ValueError as error:  # the run is complete on disk: only the upload needs doing again
            print(f"evaluate_llm.py: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
