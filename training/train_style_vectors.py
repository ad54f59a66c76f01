"""Compute one style vector per user (StyleVector) and choose the layer and scale on validation.

    python training/train_style_vectors.py --model_name MODEL --data product_review_user --split test \
        --output_dir runs/style --layers 8,12 --scales 0,1,2,4

For each user of `--split` and each of their first `--max_items_per_user` profile items, the item's task
prompt (no retrieval) is continued once by the model itself through the transformers backend: that is the
style-neutral text; the vector is the mean last-token difference at each layer between the user's real text and
it (`personalization.style_vectors`). The run's record goes to per_user_config.json: a folder holding vectors
made with other settings is refused, and users already written are skipped, so a killed run continues; a second
run on the same folder while one runs is refused (its lock). With
`--selection_split` (default validation) the same is done for that split's users, its rows are generated at
every layer and scale, and the best ROUGE-L is written to style_selection.json, which evaluate_per_user.py reads.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from longlamp_cli import ArgumentParser, arg, positive_int
from longlamp_io import RunLock, write_json_atomic
from longlamp_runs import (
    PER_USER_RECORD_FILE,
    STYLE_SELECTION_FILE,
    PerUserSettings,
    RunRecord,
    StyleVectorTraining,
    check_same_run,
    data_source,
    write_record,
)
from longlamp_tasks import parse_config_name
from personalization.cli import PerUserGenerationArguments

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class StyleVectorArguments(PerUserGenerationArguments):
    _argument_group_name = "style vectors"
    layers: str | None = arg("comma-separated decoder layers, counted from 1 (default: the layers at half and three "
                             "quarters of the depth)", default=None)
    scales: str = arg("scales tried on validation", default="0,0.5,1,2,4")
    max_items_per_user: int = arg("profile items per vector", default=8, type=positive_int)
    selection_split: str = arg("split whose rows choose layer and scale (none: choose nothing)", default="validation",
                               choices=("train", "validation", "test", "none"))


def make_parser() -> ArgumentParser:
    return ArgumentParser(StyleVectorArguments, description=__doc__.splitlines()[0],
                          trained_settings_from="model_name")


def parse_args(argv: Sequence[str] | None = None) -> StyleVectorArguments:
    args = make_parser().parse_into(argv)
    parse_config_name(args.task)
    try:
        args.scale_list = [float(s) for s in args.scales.split(",")]
        args.layer_list = [int(x) for x in args.layers.split(",")] if args.layers else None
    except ValueError as error:
        raise ValueError(f"--layers and --scales are comma-separated numbers: {error}") from None
    return args


def write_user_vectors(setup, users, layers: list[int], folder: Path, max_items: int) -> None:
    """Each user's vectors (one file per user, which records how many profile items were left out as leaks); users
    with a file already are skipped, those without a profile get none (they are generated unsteered)."""
    from tqdm.auto import tqdm

    from personalization.style_vectors import save_vectors, style_vector
    from personalization.users import profile_examples, user_folder_name

    limit = setup.generator.settings.max_new_tokens
    logger.info("%s: %d profile items left out as leaks (a row's answer, or dated at or after the user's first "
                "query)", folder.name, sum(user.left_out for user in users))
    for user in tqdm(users, desc=f"Style vectors ({folder.name})"):
        if (folder / f"{user_folder_name(user.user_id)}.safetensors").is_file():
            continue
        examples = profile_examples(setup.task, user)[:max_items]
        if not examples:
            continue
        prompts = [setup.encode(setup.builder([], example["input"])) for example in examples]
        neutral = [setup.source.encode(text, True) for text in setup.generator.generate(prompts, [0] * len(prompts))]
        real = [setup.source.encode(example["output"], True)[:limit] for example in examples]
        save_vectors(folder, user.user_id, style_vector(setup.generator.model, prompts, real, neutral, layers),
                     user.left_out)


def rows_of(args, split: str) -> list[dict]:
    """The rows of one split of --data (its first --max_eval_examples)."""
    import longlamp

    return list(longlamp.load_rows(args.data, split, task=args.task, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                   revision=args.revision, limit=args.max_eval_examples))


def style_record(args, setup, layers: list[int]) -> RunRecord:
    """The run's record: the model, prompt and decoding of the style-neutral texts, and how the vectors are made."""
    training = StyleVectorTraining(layers, args.scale_list, args.max_items_per_user, args.selection_split)
    data = data_source(args.data, args.data_dir, args.revision, limit=args.max_eval_examples)
    return setup.record("style_vectors", data, PerUserSettings(style_vector_training=training),
                        strip_reasoning=False)


def main(argv: Sequence[str] | None = None) -> int:
    from personalization.generate import generate_per_user
    from personalization.prompt_setup import PromptSetup
    from personalization.style_vectors import StyleSteering, choose_layer_and_scale, decoder_layers, load_vectors
    from personalization.users import group_users
    from scoring.metrics import score

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output_dir = Path(args.output_dir)
    setup = PromptSetup(args)
    depth = len(decoder_layers(setup.generator.model))
    layers = args.layer_list or sorted({max(1, depth // 2), max(1, 3 * depth // 4)})
    if any(not 1 <= layer <= depth for layer in layers):
        raise ValueError(f"--layers {args.layers}: the model has decoder layers 1 to {depth}")
    record = style_record(args, setup, layers)
    with RunLock(output_dir, "train_style_vectors.py"):  # a second instance on the folder is refused
        check_same_run(output_dir / PER_USER_RECORD_FILE, record, (), "style vectors")
        write_record(output_dir / PER_USER_RECORD_FILE, record)
        task = setup.task
        write_user_vectors(setup, group_users(rows_of(args, args.split), task), layers, output_dir,
                           args.max_items_per_user)
        if args.selection_split == "none":
            return 0
        selection_rows = rows_of(args, args.selection_split)
        selection_dir = output_dir / f"selection-{args.selection_split}"
        write_user_vectors(setup, group_users(selection_rows, task), layers, selection_dir, args.max_items_per_user)
        prompts = [setup.encode(setup.builder(setup.items(row), row["input"])) for row in selection_rows]
        users = [str(row[task.user_column]) for row in selection_rows]
        references = [row["output"] for row in selection_rows]

        def rouge_l(layer: int, scale: float) -> float:
            style = StyleSteering(load_vectors(selection_dir, layer), layer, scale)
            texts = generate_per_user(setup.generator, prompts, users, style=style, batch_size=setup.batch_size)
            return score(texts, references, metrics=["rougeL"], bootstrap=0)["metrics"]["rougeL"]

        layer, scale, tried = choose_layer_and_scale(layers, args.scale_list, rouge_l)
        write_json_atomic(output_dir / STYLE_SELECTION_FILE, {"layer": layer, "scale": scale, "metric": "rougeL",
                                                                "split": args.selection_split, "tried": tried})
        logger.info("chose layer %d, scale %g on %s (ROUGE-L)", layer, scale, args.selection_split)
        return 0


if __name__ == "__main__":
    from longlamp_cli import run_command

    sys.exit(run_command(main))
