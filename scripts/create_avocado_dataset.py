"""Build the email task's LaMP-style files from the licensed Avocado collection (the benchmark's command).

    python scripts/create_avocado_dataset.py --avocado_files_dir avocado-1.0.2/data/text --extract_addr tmp \\
        --output_dir email_user --input_question_file_train user/train_questions.json \\
        --input_question_file_dev user/dev_questions.json --input_question_file_test user/test_questions.json

Writes `{train,dev,test}_questions.json` (each input and profile item resolved from its message id) and
`{train,dev}_outputs.json` (`{"task", "golds": [{"id", "output"}]}`, the scorer's format), as the benchmark's
script does, with the rows of the `datasets` builder: the same code (`longlamp.read_avocado_messages` and
`longlamp.AvocadoSource`) parses the archives and builds every row. `--avocado_files_dir` may also be the
release folder itself (`avocado-1.0.2/`, archives under `data/text/`). The archives are read in place, so nothing
is extracted: `--extract_addr` is where the files are staged before they are moved into `--output_dir` together.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import longlamp  # noqa: E402
from longlamp_cli import run_command  # noqa: E402
from longlamp_io import write_json_atomic  # noqa: E402
from longlamp_tasks import TASKS, scorer_task_name  # noqa: E402

SPLITS = {"train": "train", "dev": "validation", "test": "test"}  # file prefix -> split
WITH_OUTPUTS = ("train", "dev")  # the benchmark keeps the test outputs hidden


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--avocado_files_dir", required=True,
                        help="the folder of the Avocado zip archives (avocado-1.0.2/data/text) or the release folder")
    parser.add_argument("--extract_addr", required=True,
                        help="a scratch folder: the files are staged there, then moved into --output_dir")
    parser.add_argument("--output_dir", required=True, help="where the question and output files go")
    for prefix in SPLITS:
        parser.add_argument(f"--input_question_file_{prefix}", required=True,
                            help=f"the benchmark's {prefix}_questions.json (message ids)")
    return parser


def question_record(row: dict, user_column: str) -> dict:
    """A built row as a question of the LaMP-style file: input and profile texts, no output."""
    record = {"id": row["id"], "input": row["input"], "profile": row["profile"]}
    if row.get(user_column) is not None:
        record[user_column] = row[user_column]
    return record


def build(avocado_files_dir: str, question_files: dict[str, Path], output_dir: Path, staging_root: Path) -> list[Path]:
    """Resolve every question file against the archives and write the LaMP-style files; returns them."""
    task = TASKS["email_generation"]
    missing = [str(path) for path in question_files.values() if not Path(path).is_file()]
    if missing:
        raise ValueError(f"question file(s) not found: {', '.join(missing)}")
    splits = {SPLITS[prefix]: path for prefix, path in question_files.items()}
    messages = longlamp.read_avocado_messages(avocado_files_dir, splits)
    staging = Path(staging_root) / f"{output_dir.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    written = []
    for prefix, path in question_files.items():
        rows = [row for _, row, _ in longlamp.AvocadoSource(Path(path), messages).rows(SPLITS[prefix])]
        setting = "temporal" if any(row.get(task.user_column) for row in rows) else "user"
        questions = [question_record(row, task.user_column) for row in rows]
        write_json_atomic(staging / f"{prefix}_questions.json", questions)
        written.append(output_dir / f"{prefix}_questions.json")
        if prefix in WITH_OUTPUTS:
            golds = [{"id": row["id"], "output": row["output"]} for row in rows]
            write_json_atomic(staging / f"{prefix}_outputs.json",
                              {"task": scorer_task_name(task, setting), "golds": golds})
            written.append(output_dir / f"{prefix}_outputs.json")
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in written:
        (staging / path.name).replace(path)
    shutil.rmtree(staging, ignore_errors=True)
    return written


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    files = {prefix: Path(getattr(args, f"input_question_file_{prefix}")) for prefix in SPLITS}
    for path in build(args.avocado_files_dir, files, Path(args.output_dir), Path(args.extract_addr)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
