"""The Hub test environment of the publishing tests: commands run in subprocesses against the Hub stand-in (the
client reads HF_ENDPOINT when it is imported), and the check that a known token leaked nowhere."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

from support.hub_server import HubStandIn

REPO = Path(__file__).resolve().parents[2]
TOKEN = "hf_publishingTestToken0123456789"


def hub_env(hub: HubStandIn, tmp_path: Path, with_repo: bool = True, **extra) -> dict:
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false", **extra}
    env.pop("HF_TOKEN", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + str(REPO / "tests") if with_repo else ""
    env.update(extra)
    return env


def run(args: list[str], env: dict, cwd: Path = REPO, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == expect, (f"{args[:3]} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                                       f"{done.stderr[-5000:]}")
    return done


def files_under(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in Path(folder).rglob("*") if p.is_file()]


def assert_token_nowhere(token: str, folders: list[Path], outputs: list[str], hub: HubStandIn) -> None:
    """The token in no file written, nothing printed and no request body (it travels only in the header)."""
    needle = token.encode()
    leaked = [str(p) for p in files_under(*folders) if needle in p.read_bytes()]
    assert not leaked, f"token written to {leaked}"
    assert all(token not in text for text in outputs)
    assert all(needle not in body for body in hub.bodies)


def machine_strings(*places: Path) -> list[str]:
    """What would identify this machine or its user in a published file: the checkout, the home folder, the user
    name as a path part, and the given places (a test's own folders)."""
    home = str(Path.home())
    return [str(REPO), home + "/", f"/{getpass.getuser()}/", *(str(Path(p).resolve()) for p in places)]


def assert_uploads_portable(hub: HubStandIn, *places: Path) -> int:
    """No uploaded byte of any commit holds a machine path or the user name; returns the number of files scanned."""
    needles = [needle.encode() for needle in machine_strings(*places)]
    found = [(commit["repo"], name, needle.decode()) for commit in hub.commits
             for name, data in commit["files"].items() for needle in needles if needle in data]
    assert not found, f"machine paths or the user name uploaded: {found[:10]}"
    return sum(len(commit["files"]) for commit in hub.commits)
