"""Author-style similarity of a prediction file: is each prediction closer to its author's own texts than to other
authors'? Optional, and not one of the benchmark's metrics: ROUGE and METEOR (eval_task.py) stay the official
numbers, and these are written to a file of their own.

    python evaluation/style_similarity.py --validation_data product_review_user --data_dir data/sample \\
        --preds runs/review/predictions.json --output_file runs/review/style_similarity.json [--encoder MODEL]

The data is read as evaluate_llm.py reads it (a config name, or a file or folder with --task; --split,
--data_dir, --cache_dir, --revision); every row needs a prediction (as eval_task.py needs every gold id), each row
names its user, and the texts its users wrote in their profiles are the authors' texts. Empty predictions are
counted and not scored; the references' own score is reported beside, as the ceiling. The numbers are
evaluation/judges/style_similarity.py's (see docs/evaluation.md, "Author-style similarity"); embeddings are cached
on disk, so scoring again encodes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.judges.style_similarity import report  # noqa: E402
from evaluation.zero_shot.data import resolve_task_and_retriever, rows_to_predict  # noqa: E402
from evaluation.zero_shot.options import ZeroShotOptions  # noqa: E402
from longlamp_cli import ArgumentParser, add_flag, check_output_file, run_command  # noqa: E402
from longlamp_errors import DataError, UsageError  # noqa: E402
from longlamp_io import write_json_atomic  # noqa: E402
from longlamp_tasks import scorer_task_name  # noqa: E402
from publishing.runs import is_hub_id  # noqa: E402
from retrieval.dense import DenseRetriever  # noqa: E402
from scoring import files  # noqa: E402

logger = logging.getLogger(__name__)
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # offline: pass the folder scripts/prepare_models.py prints
NOTE = ("Author-style similarity: optional, not one of the benchmark's metrics (ROUGE and METEOR are). Embedding "
        "similarity reflects topic as much as style: read it beside them, never instead.")
DATA_FLAGS = ("task", "split", "data_dir", "cache_dir", "revision")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    data_help = {spec.name: spec.metadata["help"] for spec in dataclasses.fields(ZeroShotOptions)}
    parser.add_argument("--validation_data", required=True, help=data_help["validation_data"])
    for concept in DATA_FLAGS:
        add_flag(parser, concept)
    parser.add_argument("--preds", "--preds_json", required=True,
                        help="the predictions to score (the benchmark's format, ids of the data's rows)")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER,
                        help="sentence encoder, Hub id or folder (mean pooling); offline, the all-MiniLM-L6-v2 folder "
                             "that scripts/prepare_models.py prints")
    add_flag(parser, "embedding_cache_dir")
    parser.add_argument("--output_file", required=True, help="where the numbers go (JSON)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = check_output_file(args.output_file, "--output_file")
    encoder_name = args.encoder
    if not (Path(encoder_name).expanduser().is_dir() or is_hub_id(encoder_name)):
        raise UsageError(f"--encoder {encoder_name!r} is neither a folder nor a Hub model id")
    data = {"validation_data": args.validation_data, **{name: getattr(args, name) for name in DATA_FLAGS}}
    options = ZeroShotOptions(**data)
    task, setting, _, _ = resolve_task_and_retriever(options, None)  # before the rows: a wrong task fails at once
    predictions = files.read_task_file(args.preds, "predictions")
    if predictions.task != scorer_task_name(task, setting):
        raise DataError(f"{args.preds} holds predictions for {predictions.task}, but the data is "
                        f"{scorer_task_name(task, setting)}")
    rows = rows_to_predict(options)
    position = {example_id: index for index, example_id in enumerate(rows["id"])}
    unknown = [example_id for example_id in predictions.ids if example_id not in position]
    if unknown:
        raise DataError(f"{args.preds}: {len(unknown)} of {len(predictions.ids)} prediction ids are not "
                        f"in {args.validation_data} ({args.split}), e.g. {unknown[:3]}")
    predicted = set(predictions.ids)
    unpredicted = [example_id for example_id in rows["id"] if example_id not in predicted]
    if unpredicted:  # as eval_task.py: a score over part of the rows would pass for the whole split's
        raise DataError(f"{args.preds}: no prediction for {len(unpredicted)} of the {len(position)} rows of "
                        f"{args.validation_data} ({args.split}), e.g. {unpredicted[:3]}: predict every row")
    examples = list(rows.select([position[example_id] for example_id in predictions.ids]))
    encoder = DenseRetriever(model_name=encoder_name, cache_dir=args.embedding_cache_dir)
    logger.info("embedding %d predictions and their users' profiles with %s", len(examples), encoder_name)
    result = {"note": NOTE, "task": predictions.task, "preds": args.preds, "data": data,
              "encoder": encoder.result_options(), **report(encoder, task, examples, predictions.outputs)}
    write_json_atomic(output, result)
    shown = ", ".join(f"{name} {value:.4f}" for name, value in result["aggregate"].items() if value is not None)
    ceiling = (f"; the references' own: style_gain {result['ceiling']['aggregate']['style_gain']:.4f}"
               if result["ceiling"] and result["ceiling"]["aggregate"]["style_gain"] is not None else "")
    print(f"{result['scored_examples']} of {result['examples']} predictions scored ({result['users']} users, "
          f"{result['empty_predictions']} empty): {shown or 'none'}{ceiling} -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
