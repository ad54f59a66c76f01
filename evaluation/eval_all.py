"""Score every task of a gold zip against a prediction zip (the benchmark's `eval_all.py`).

    python evaluation/eval_all.py --golds_zip golds.zip --preds_zip preds.zip --temp_dir tmp \\
        --output_file results.json

Each zip holds task files (`{"task": ..., "golds": [...]}`, any names, any folders); a file's task is the one
it names. Every task of the golds is scored that has a prediction file; the others are listed as missing.
Unlike LaMP's scorer, no fixed set of tasks is required. See docs/evaluation.md.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import ArgumentParser, arg, output_folder, positive_int, run_command  # noqa: E402
from scoring import files  # noqa: E402
from scoring.cli import ScoringArguments, exit_code_for_missing_nltk_data  # noqa: E402
from scoring.tasks import evaluate_zips  # noqa: E402


@dataclass(kw_only=True)
class EvalAllArguments(ScoringArguments):
    _argument_group_name = "files"
    golds_zip: str = arg("zip of gold files, one per task")
    preds_zip: str = arg("zip of prediction files, one per task")
    temp_dir: str | None = arg("folder to extract into (default: the system's temp folder)", default=None,
                               type=output_folder)
    max_unzipped_mb: int = arg("refuse a zip that unpacks to more than this many MiB",
                               default=files.MAX_UNZIPPED_BYTES // 2**20, type=positive_int)
    per_sample_dir: str | None = arg("also write each task's per-sample scores into this folder, as "
                                     "<task>.per_sample.jsonl (eval_task.py's --per_sample_file format) (default: "
                                     "none)", default=None, type=output_folder)


def make_parser() -> ArgumentParser:
    return ArgumentParser(EvalAllArguments, description=__doc__.split("\n")[0])


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_into(argv)
    temp_dir, per_sample_dir = (Path(path).expanduser().absolute() if path else None
                                for path in (args.temp_dir, args.per_sample_dir))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return exit_code_for_missing_nltk_data(
        lambda: evaluate_zips(args.golds_zip, args.preds_zip, temp_dir, args.output_file,
                              max_unzipped_bytes=args.max_unzipped_mb * 2**20, per_sample_dir=per_sample_dir,
                              **args.options()))


if __name__ == "__main__":
    sys.exit(run_command(main))
