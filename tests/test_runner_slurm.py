"""`--executor slurm --dry_run` on the paper's grid: one job script per stage with its kind's resources (the
experiment's `resources`, else the defaults), the stages each waits for, and as its command the stage's own command
line, which is one of the README's commands and parses with that command's parser. `--status` starts nothing."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from support.parsers import load_script, split_command

from benchmark_runner.experiment import load_experiment
from benchmark_runner.stages import plan
from longlamp_cli import run_command

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "experiments" / "paper.yaml"
SETS = ["resources.default.partition=gpu", "resources.default.account=lab", "resources.train.gpus=2",
        "resources.train.sbatch={constraint: a100}", "resources.score.time=30",
        "models.flan-t5-base.accelerate_config=accelerate_configs/multi_gpu.yaml"]


def runner(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_command(load_script("scripts/run_benchmark.py").main, [str(a) for a in argv], prog="run_benchmark.py")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sbatch(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", script, re.M))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The dry run's scripts for paper.yaml, with 2 GPUs per training job (and an accelerate config of 8)."""
    output = tmp_path_factory.mktemp("paper")
    argv = ["--config", PAPER, "--output_dir", output, "--executor", "slurm", "--dry_run"]
    for item in SETS:
        argv += ["--set", item]
    return output, argv


def test_a_multi_gpu_config_must_fit_its_jobs_allocation(written, capsys):
    output, argv = written
    code, _, err = runner(argv, capsys)
    assert code == 2 and "multi_gpu.yaml starts 8 processes (one per GPU) but resources.train.gpus is 2" in err
    assert not (output / "slurm").exists()


def test_the_dry_run_writes_one_job_script_per_stage_with_its_resources_and_the_readme_command(written, capsys):
    output, argv = written
    argv = [*argv, "--set", "resources.train.gpus=8"]
    code, out, _ = runner(argv, capsys)
    assert code == 0 and "one per stage" in out
    folder = output / "slurm" / "dry_run"
    jobs = json.loads((folder / "plan.json").read_text())
    stages = plan(load_experiment(PAPER, {"output_dir": str(output)}, [*SETS, "resources.train.gpus=8"]))
    assert len(jobs) == len(stages) == 246
    readme = (REPO / "README.md").read_text()
    names = {stage.name: job["script"] for stage, job in zip(stages, jobs)}
    kinds = {}
    for stage, job in zip(stages, jobs):
        assert job["stage"] == stage.name and job["after"] == [names[need.name] for need in stage.needs]
        script = (folder / job["script"]).read_text()
        options = sbatch(script)
        kinds[stage.kind] = kinds.get(stage.kind, 0) + 1
        assert (options["partition"], options["account"]) == ("gpu", "lab")
        expected = {"rank": ("1", "8", "32G", "240"), "train": ("8", "8", "64G", "1440"),
                    "generate": ("1", "8", "64G", "720"), "score": (None, "4", "16G", "30")}[stage.kind]
        assert (options.get("gpus-per-node"), options["cpus-per-task"], options["mem"], options["time"]) == expected
        assert options.get("constraint") == ("a100" if stage.kind == "train" else None)
        assert "srun" not in script and f"cd {REPO}" in script
        for need in stage.needs:
            assert f"# after: {need.name}\n" in script
        # what the job runs: the stage's own command line, a README command, accepted by its command's parser
        command = script.split("export SUBMITIT_EXECUTOR=slurm\n", 1)[1].strip()
        argv_run = shlex.split(command.rsplit(" >> ", 1)[0])
        assert argv_run == stage.portable_command()
        path, launcher, _ = split_command(argv_run)
        assert (f"accelerate launch --config_file accelerate_configs/cpu.yaml {path}" if launcher
                else f"python {path}") in readme  # the README's own spelling of the command
        # (its arguments were parsed by the command's own parser before any script was written: test_runner_checks)
    assert kinds == {"rank": 36, "train": 42, "generate": 84, "score": 84}
    trains = [stage for stage in stages if stage.kind == "train" and "bm25-k2" in stage.name]
    assert trains and all(len(stage.needs) == 2 and all(need.kind == "rank" for need in stage.needs)
                          for stage in trains)


def test_status_starts_nothing_and_says_every_stage_is_pending(written, capsys):
    output, argv = written
    argv = [a for a in argv if a != "--dry_run"] + ["--set", "resources.train.gpus=8", "--status"]
    code, out, _ = runner(argv, capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "246 stages: 246 pending"
    assert not (output / "runs").exists() and not (output / "ranked").exists()
