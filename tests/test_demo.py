"""The README's main job: scripts/demo.py runs end to end on the bundled sample, with and without a model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end_with_a_model(tiny_llama, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--model_addr", str(tiny_llama), "--output_dir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for name in ("abstract_generation_temporal", "email_generation_user"):
        assert name in out
    assert sum(line.split()[1:4] == ["best", "BM25", "item"] for line in out.splitlines() if line.strip()) == 4
    assert "4. Zero-shot generation" in out and out.count("rouge1=") == 2
    assert (tmp_path / "w" / "zero-shot" / "predictions.json").exists()
    assert (tmp_path / "w" / "zero-shot" / "no_profile" / "predictions.json").exists()
