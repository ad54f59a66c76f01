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

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from evaluation.judges.style_similarity import report  # noqa: E402
from evaluation.zero_shot.data import resolve_task_and_retriever, rows_to_predict  # noqa: E402
from evaluation.zero_shot.options import ZeroShotOptions  # noqa: E402
from longlamp_cli import ArgumentParser, DataArguments, DataSourceArguments, arg, output_file, reuse, run_command  # noqa: E402
from longlamp_errors import DataError, UsageError  # noqa: E402
from longlamp_io import write_json_atomic  # noqa: E402
from longlamp_tasks import scorer_task_name  # noqa: E402
from publishing.runs import is_hub_id  # noqa: E402
from retrieval.cli import RetrievalArguments  # noqa: E402
from retrieval.dense import DenseRetriever  # noqa: E402
from scoring import files  # noqa: E402

logger = logging.getLogger(__name__)
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # offline: pass the folder scripts/prepare_models.py prints
NOTE = ("Author-style similarity: optional, not one of the benchmark's metrics (ROUGE and METEOR are). Embedding "
        "similarity reflects topic as much as style: read it beside them, never instead.")
DATA_FLAGS = ("task", "split", "data_dir", "cache_dir", "revision")


@dataclass(kw_only=True)
class StyleSimilarityArguments(DataSourceArguments):
    """The data as evaluate_llm.py reads it, the predictions, and the sentence encoder."""

    _argument_group_name = "style similarity"
    validation_data: str = reuse(ZeroShotOptions, "validation_data")
    split: str = reuse(DataArguments, "split")
    preds: str = arg("the predictions to score (the benchmark's format, ids of the data's rows)",
                     aliases=("--preds_json",))
    encoder: str = arg("sentence encoder, Hub id or folder (mean pooling); offline, the all-MiniLM-L6-v2 folder that "
                       "scripts/prepare_models.py prints", default=DEFAULT_ENCODER)
    embedding_cache_dir: str | None = reuse(RetrievalArguments, "embedding_cache_dir")
    output_file: str = arg("where the numbers go (JSON)", type=output_file)


def make_parser() -> ArgumentParser:
    return ArgumentParser(StyleSimilarityArguments, description=__doc__.split("\n\n")[0])


def main(argv=None) -> int:
    args = make_parser().parse_into(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = Path(args.output_file)
    encoder_name = args.encoder
    if not (Path(encoder_name).expanduser().is_dir() or is_hub_id(encoder_name)):
        raise UsageError(f"--encoder {encoder_name!r} is neither a folder nor a Hub model id")
    data = {"validation_data": args.validation_data, **{name: getattr(args, name) for name in DATA_FLAGS}}
    options = ZeroShotOptions(model_name="", output_dir="", **data)
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
