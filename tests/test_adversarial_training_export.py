"""Merging a trained adapter into its base model (training/export.py) as an adversarial user meets it: bad folders
(not an adapter, a run folder whose final/ is missing or given as the run, corrupt weights, an output that is a
file), SIGKILL while writing then rerun, and two exports to one output at once. Each ends as one
`export.py: error: ...` line with exit 2 and the output as it was, or as the same files a clean export writes. It
talks to no server."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longlamp_io import RunLock

REPO = Path(__file__).resolve().parents[1]
EXPORT = str(REPO / "training" / "export.py")


@pytest.fixture(scope="module")
def adapter(tiny_llama, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model, saved as training saves final/ (the tokenizer beside it)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("run") / "final"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(folder)
    return folder


def export(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, EXPORT, *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    errors = [line for line in done.stderr.strip().splitlines() if line.startswith("export.py: error: ")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0]


def files_in(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.multiprocess
@pytest.mark.slow
def test_bad_folders_are_one_error_line_and_write_nothing(adapter, tmp_path):
    run = adapter.parent
    out = tmp_path / "merged"
    line = one_error_line(finished(export(run, out)))  # the run folder, not its final/
    assert f"{run}: not a LoRA adapter folder (no adapter_config.json) (it holds final/: give that)" in line
    line = one_error_line(finished(export(tmp_path, out)))  # not a run at all
    assert f"{tmp_path}: not a LoRA adapter folder" in line and "final/" not in line
    line = one_error_line(finished(export(run / "best", out)))  # a run without that folder
    assert str(run / "best") in line
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for source in adapter.iterdir():
        (corrupt / source.name).write_bytes(source.read_bytes())
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # cut short
    line = one_error_line(finished(export(corrupt, out)))
    assert f"{corrupt}: cannot merge the adapter" in line
    assert entries(tmp_path) == ["corrupt"]  # no output, no staging folder, no lock left
    (tmp_path / "a-file").write_text("not a folder")
    assert "a-file" in one_error_line(finished(export(adapter, tmp_path / "a-file")))
    assert (tmp_path / "a-file").read_text() == "not a folder"


@pytest.mark.multiprocess
@pytest.mark.slow
def test_an_export_killed_while_writing_then_rerun_equals_a_clean_export(adapter, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert finished(export(adapter, clean)).returncode == 0
    process = export(adapter, killed)
    staging = tmp_path / "killed.tmp"
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not any(staging.glob("*")):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the export ended before it could be killed"
    assert not killed.exists()  # the output appears whole or not at all
    assert finished(export(adapter, killed)).returncode == 0
    assert files_in(killed) == files_in(clean)
    assert entries(tmp_path) == ["clean", "killed"]  # the staging folder and the stale lock are gone


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_second_export_to_an_output_in_use_is_refused_and_leaves_the_first_alone(adapter, tmp_path):
    out = tmp_path / "merged"
    with RunLock(tmp_path / ".merged.export", "training/export.py"):  # the first export, still writing
        (tmp_path / "merged.tmp").mkdir()
        (tmp_path / "merged.tmp" / "half.bin").write_bytes(b"the first export's")
        line = one_error_line(finished(export(adapter, out)))
        assert "is in use by training/export.py" in line
        assert (tmp_path / "merged.tmp" / "half.bin").read_bytes() == b"the first export's" and not out.exists()
    (tmp_path / "merged.tmp" / "half.bin").unlink()
    assert finished(export(adapter, out)).returncode == 0 and (out / "config.json").is_file()
