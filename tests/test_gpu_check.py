"""scripts/gpu_check.sh stays runnable without a GPU: every check skips cleanly with a reason, the checks whose
logic means something on a CPU pass there, and the command lines it drives (train.py flags, evaluate_llm.py with
the transformers backend) still work."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(PASS|FAIL|SKIP) (\w+): \S.*$")


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_script(*args, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.multiprocess
def test_without_a_gpu_every_check_skips_with_a_reason_and_the_script_succeeds(gpu_check):
    done = run_script()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [LINE.match(line).group(2) for line in lines] == list(gpu_check.CHECKS)
    assert all(line.startswith("SKIP ") and "no CUDA GPU visible" in line for line in lines)
    assert any("vllm not installed" in line for line in lines) == (importlib.util.find_spec("vllm") is None)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_check_runs_in_its_own_process_and_needs_only_its_own_packages(tmp_path):
    # As on the lent GPU machine, which has no datasets: the checks that do not need it still run.
    hidden = tmp_path / "hidden" / "datasets"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('datasets is hidden')\n")
    done = run_script("--device", "cpu", "--only", "packed_vs_padded,bf16_training", "--work", str(tmp_path),
                      PYTHONPATH=str(hidden.parent))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        done.stdout.splitlines()[0], "SKIP bf16_training: needs a CUDA GPU (not run with --device cpu)"]
    assert done.stdout.startswith("PASS packed_vs_padded: sdpa (float32): per-example losses within ")


@pytest.mark.parametrize("name", ["sdpa_attention", "hf_generation_batched_vs_single", "lora_throughput",
                                  pytest.param("per_user_adapters", marks=[pytest.mark.e2e, pytest.mark.multiprocess,
                                                                           pytest.mark.slow])])
def test_the_checks_logic_passes_on_cpu(gpu_check, name, tmp_path):
    assert gpu_check.CHECKS[name].on_cpu
    assert gpu_check.CHECKS[name].run(tmp_path, "cpu")


def test_a_failing_check_is_a_fail_line_and_exit_code_1(gpu_check, tmp_path, capsys, monkeypatch):
    def broken(work, device):
        raise AssertionError("logits differ\nby a lot")

    monkeypatch.setitem(gpu_check.CHECKS, "broken", gpu_check.Check("broken", broken, on_cpu=True))
    gpu_check.run_one("broken", "cpu", tmp_path)
    assert capsys.readouterr().out.strip() == '{"status": "FAIL", "message": "AssertionError: logits differ by a lot"}'


def test_the_training_runs_it_launches_parse_as_train_py_flags(gpu_check, tmp_path):
    from training.config import parse_args

    config = gpu_check.train_config(tmp_path, "zero3", mixed_precision="bf16", use_lora=True, merge_lora=True)
    assert parse_args(gpu_check.flags(config)).to_dict() == config.validate().to_dict()


@pytest.mark.slow
def test_backends_are_compared_through_evaluate_llm(gpu_check, tmp_path, tiny_chat_llama):
    pytest.importorskip("datasets")
    hf = gpu_check.evaluate_llm(tmp_path, "hf", tiny_chat_llama, "transformers")
    assert len(hf) == 4
    assert gpu_check.compare_backends(hf, dict(hf)) == "4 greedy predictions identical on both backends"
    first = next(iter(hf))
    with pytest.raises(AssertionError, match=f"{first}: first divergence at character 0"):
        gpu_check.compare_backends(hf, {**hf, first: "\u2603" + hf[first]})
