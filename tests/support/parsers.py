"""The argument parser a command builds, captured without running it, and a command line checked against it."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


def load_script(script: str):
    """A command's module loaded from its file, as `python <script>` runs it (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"script_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    saved_path = list(sys.path)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
    return module


def script_parser(script: str) -> argparse.ArgumentParser:
    """The argument parser a script builds, captured when its main() parses (nothing else of it runs)."""
    module = load_script(script)

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
