"""The repository as committed: no file names a place on the machine it was written on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A user's home or a workplace's checkout root, followed by a name: what a path written on one machine starts with.
MACHINE_PATH = re.compile(r"(?<![\w.~-])(?:/home/|/Users/|/root/|/work/|[A-Za-z]:\\Users\\)[\w.-]+")


def tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in names.decode().split("\0") if name]


def machine_paths(text: str, checkout: str) -> list[str]:
    found = MACHINE_PATH.findall(text)
    return found + ([checkout] if checkout in text else [])


def test_the_pattern_finds_machine_paths_and_leaves_relative_and_scratch_paths():
    assert machine_paths('SMOLLM = Path("/work/main/.venv/models/x")', "/nowhere") == ["/work/main"]
    assert machine_paths("cp /home/ann/run . && ls C:\\Users\\bob", "/nowhere") == ["/home/ann", "C:\\Users\\bob"]
    assert machine_paths("see /srv/ci/clone/README.md", "/srv/ci/clone") == ["/srv/ci/clone"]
    assert machine_paths(".venv/models/x, ~/work/x, --workdir /tmp/longlamp-mem, <local>/final", "/nowhere") == []


def test_no_tracked_file_holds_a_machine_path():
    offending = {}
    for path in tracked_text_files():
        if path == Path(__file__).resolve():  # the pattern's own examples above
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):  # binary files; a file deleted but not yet committed
            continue
        found = machine_paths(text, str(REPO))
        if found:
            offending[str(path.relative_to(REPO))] = sorted(set(found))
    assert not offending, f"machine paths in tracked files (use a repository-relative path): {offending}"
