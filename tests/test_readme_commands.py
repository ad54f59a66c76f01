"""The README's commands cannot drift: each `python ...` / `accelerate launch ...` line is parsed by the real parser
of the script it runs (flags, required arguments, choices), and each is exercised by a named test or the demo."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from pathlib import Path
from unittest import mock

import pytest

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


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


def script_parser(script: str) -> argparse.ArgumentParser:
    """The argument parser a script builds, captured when its main() parses (nothing else of it runs)."""
    spec = importlib.util.spec_from_file_location(f"readme_check_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    saved_path = list(sys.path)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        del sys.modules[spec.name]

    def capture(parser, *args, **kwargs):
        raise _Captured(parser)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture), \
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", capture):
        try:
            module.main([])
        except _Captured as captured:
            return captured.parser
    raise AssertionError(f"{script}: main() did not parse arguments")


def split_command(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(script, launcher arguments, script arguments) of `python X.py ...` or `accelerate launch ... X.py ...`."""
    if argv[0] == "python":
        return argv[1], [], argv[2:]
    script_at = next(i for i, part in enumerate(argv) if part.endswith(".py"))
    return argv[script_at], argv[2:script_at], argv[script_at + 1:]


def check_against(parser: argparse.ArgumentParser, arguments: list[str], where: str) -> None:
    known = set(parser._option_string_actions)
    unknown = [a.split("=", 1)[0] for a in arguments if a.startswith("--") and a.split("=", 1)[0] not in known]
    assert not unknown, f"{where}: flags {unknown} are not options of the script (it has {sorted(known)})"
    try:
        parser.parse_args(arguments)
    except SystemExit as error:
        raise AssertionError(f"{where}: the script's parser rejects {shlex.join(arguments)}") from error


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
