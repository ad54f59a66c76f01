"""Gold and prediction files of the scoring tests, and the scoring commands run as scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TASK = "LongLaMP_product_review_user"


def gold_entries(n: int = 10, users: bool = False) -> list[dict]:
    entries = [{"id": f"id-{i}", "output": f"The product number {i} works well and the battery lasts {i} days."}
               for i in range(n)]
    for i, entry in enumerate(entries):
        if users:
            entry["user"] = f"user-{i % 3}"
    return entries


def prediction_entries(n: int = 10) -> list[dict]:
    entries = [{"id": f"id-{i}", "output": f"This product {i} works and the battery lasts long."} for i in range(n)]
    entries[3]["output"] = ""  # an empty prediction: scored zero, never dropped
    return entries[::-1]  # any order: predictions are matched to golds by id


def write_task(path: Path, entries: list[dict], task: str = TASK) -> Path:
    path.write_text(json.dumps({"task": task, "golds": entries}), encoding="utf-8")
    return path


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "evaluation" / script), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
