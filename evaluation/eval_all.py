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
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable instead of evaluation/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from longlamp_cli import ArgumentParser, check_folder, positive_int, run_command  # noqa: E402
from scoring import files  # noqa: E402
from scoring.cli import add_scoring_arguments, exit_code_for_missing_nltk_data, scoring_options  # noqa: E402
from scoring.tasks import evaluate_zips  # noqa: E402


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golds_zip", required=True, help="zip of gold files, one per task")
    parser.add_argument("--preds_zip", required=True, help="zip of prediction files, one per task")
    parser.add_argument("--temp_dir", default=None, help="folder to extract into (default: the system's temp folder)")
    parser.add_argument("--max_unzipped_mb", type=positive_int, default=files.MAX_UNZIPPED_BYTES // 2**20,
                        help="refuse a zip that unpacks to more than this many MiB")
    add_scoring_arguments(parser)
    parser.add_argument("--per_sample_dir", default=None,
                        help="also write each task's per-sample scores into this folder, as "
                             "<task>.per_sample.jsonl (eval_task.py's --per_sample_file format)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = scoring_options(args)
    temp_dir = check_folder(args.temp_dir, "--temp_dir") if args.temp_dir is not None else None
    per_sample_dir = check_folder(args.per_sample_dir, "--per_sample_dir") if args.per_sample_dir else None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return exit_code_for_missing_nltk_data(
        lambda: evaluate_zips(args.golds_zip, args.preds_zip, temp_dir, args.output_file,
                              max_unzipped_bytes=args.max_unzipped_mb * 2**20,
                              per_sample_dir=per_sample_dir, **options))


if __name__ == "__main__":
    sys.exit(run_command(main))
