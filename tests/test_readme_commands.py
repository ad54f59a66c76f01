"""The README's commands cannot drift: each `python ...` / `accelerate launch ...` line is parsed by the real parser
of the script it runs (flags, required arguments, choices), and each is exercised by a named test or the demo."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from support.parsers import check_against, script_parser, split_command

REPO = Path(__file__).resolve().parents[1]

# Where each command of the README runs for real (a test file that names the script, or the demo's runner).
EXERCISED_BY = {
    "retrieval/rank_profiles.py": "tests/test_demo.py",
    "training/train.py": "tests/test_demo.py",
    "evaluation/evaluate_llm.py": "tests/test_demo.py",
    "evaluation/eval_task.py": "tests/test_demo.py",
    "evaluation/eval_all.py": "tests/test_eval_commands.py",
    "scripts/run_benchmark.py": "tests/test_demo.py",
    "scripts/create_avocado_dataset.py": "tests/test_avocado.py",
    "scripts/make_sample.py": "tests/test_sample.py",
    "evaluation/push_results.py": "tests/test_publishing.py",
    "scripts/export_dataset.py": "tests/test_publishing.py",
    "evaluation/compare.py": "tests/test_significance.py",
    "evaluation/leaderboard.py": "tests/test_leaderboard.py",
    "evaluation/style_similarity.py": "tests/test_style.py",
    "training/train_per_user.py": "tests/test_per_user.py",
    "evaluation/evaluate_per_user.py": "tests/test_per_user_commands.py",
    "evaluation/judge.py": "tests/test_judge.py",
}


def readme_commands(text: str) -> list[list[str]]:
    """The shell commands of the README's ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(("python ", "accelerate launch ")):
                commands.append(shlex.split(line))
    return commands


COMMANDS = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_commands_for_every_stage():
    scripts = {split_command(argv)[0] for argv in COMMANDS}
    assert {"retrieval/rank_profiles.py", "training/train.py", "evaluation/evaluate_llm.py", "evaluation/eval_task.py",
            "scripts/run_benchmark.py", "scripts/create_avocado_dataset.py"} <= scripts


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv[:3])[:60] for argv in COMMANDS])
def test_a_readme_command_parses_with_its_scripts_real_parser(argv):
    script, launcher, arguments = split_command(argv)
    where = f"README: {shlex.join(argv)[:120]}"
    assert (REPO / script).is_file(), f"{where}: {script} does not exist"
    check_against(script_parser(script), arguments, where)
    if launcher:
        from accelerate.commands.launch import launch_command_parser

        check_against(launch_command_parser(), [*launcher, script], where)
    exercised = EXERCISED_BY.get(script)
    assert exercised, f"{where}: no test is named as running {script} (add it to EXERCISED_BY)"
    assert script in (REPO / exercised).read_text(encoding="utf-8") or Path(script).name in (
        REPO / exercised).read_text(encoding="utf-8"), f"{exercised} does not run {script}"


def test_the_readme_check_catches_a_drifted_flag():
    """The check fails on a flag the script does not have, so it can catch drift."""
    with pytest.raises(AssertionError, match="--no_such_flag"):
        check_against(script_parser("evaluation/eval_task.py"),
                      ["--golds_json", "g.json", "--preds_json", "p.json", "--output_file", "r.json", "--no_such_flag"],
                      "example")
