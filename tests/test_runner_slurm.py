"""`--executor slurm --dry_run` on the paper's grid: a job array per stage kind for the stages ready together (one
job per stage with `array: false`), with its kind's resources (the experiment's `resources`, else the defaults), the
stages each waits for, and as what each task runs the stage's own command line, which is one of the README's
commands and parses with that command's parser. `--status` starts nothing."""

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


def commands_of(script: str) -> list[tuple[list[str], str]]:
    """What a job runs, task by task: (argv, log) of the one command of a job, or of each `case` branch of an
    array's (task i runs branch i)."""
    body = script.split("export SUBMITIT_EXECUTOR=slurm\n", 1)[1].strip()
    if body.startswith('case "$SLURM_ARRAY_TASK_ID" in\n'):
        assert body.endswith("\nesac")
        branches = [re.fullmatch(r"  (\d+)\) (.*) ;;", line).groups() for line in body.splitlines()[1:-1]]
        assert [int(index) for index, _ in branches] == list(range(len(branches)))
        body_lines = [line for _, line in branches]
    else:
        body_lines = [body]
    found = []
    for line in body_lines:
        command, log = line.rsplit(" >> ", 1)
        found.append((shlex.split(command), shlex.split(log.removesuffix(" 2>&1"))[0]))
    return found


def check_dry_run(output: Path, sets: list[str], capsys) -> dict:
    """The dry run's scripts for paper.yaml checked against the plan: every stage in one job, each job with its
    kind's resources, an array `--array=0-(N-1)%P` over N stages, the commands the README's; the jobs per kind."""
    argv = ["--config", PAPER, "--output_dir", output, "--executor", "slurm", "--dry_run"]
    for item in sets:
        argv += ["--set", item]
    code, out, _ = runner(argv, capsys)
    assert code == 0 and "The job scripts it would submit" in out
    folder = output / "slurm" / "dry_run"
    jobs = json.loads((folder / "plan.json").read_text())
    stages = {stage.name: stage for stage in plan(load_experiment(PAPER, {"output_dir": str(output)}, sets))}
    assert len(stages) == 246 and sorted(name for job in jobs for name in job["stages"]) == sorted(stages)
    script_of = {name: job["script"] for job in jobs for name in job["stages"]}
    readme = (REPO / "README.md").read_text()
    counts: dict[str, list[int]] = {}
    for job in jobs:
        group = [stages[name] for name in job["stages"]]
        assert {stage.kind for stage in group} == {job["kind"]}
        assert job["after"] == sorted({script_of[need.name] for stage in group for need in stage.needs})
        script = (folder / job["script"]).read_text()
        options = sbatch(script)
        counts.setdefault(job["kind"], []).append(len(group))
        assert (options["partition"], options["account"]) == ("gpu", "lab")
        expected = {"rank": ("1", "8", "32G", "240"), "train": ("8", "8", "64G", "1440"),
                    "generate": ("1", "8", "64G", "720"), "score": (None, "4", "16G", "30")}[job["kind"]]
        assert (options.get("gpus-per-node"), options["cpus-per-task"], options["mem"], options["time"]) == expected
        assert options.get("constraint") == ("a100" if job["kind"] == "train" else None)
        parallelism = {"generate": 4}.get(job["kind"], 256)
        assert options.get("array") == (f"0-{len(group) - 1}%{min(len(group), parallelism)}" if len(group) > 1
                                        else None)
        assert "srun" not in script and f"cd {REPO}" in script
        for stage in group:
            assert "".join(f"# after: {need.name}\n" for need in stage.needs) in script
        # what each task runs: its stage's own command line, a README command, its output into the stage's log
        ran = commands_of(script)
        assert [argv_run for argv_run, _ in ran] == [stage.portable_command() for stage in group]
        assert [log for _, log in ran] == [str(stage.folder / "stage.log") for stage in group]
        for argv_run, _ in ran:
            path, launcher, _ = split_command(argv_run)
            assert (f"accelerate launch --config_file accelerate_configs/cpu.yaml {path}" if launcher
                    else f"python {path}") in readme  # the README's own spelling of the command
        # (its arguments were parsed by the command's own parser before any script was written: test_runner_checks)
    assert {kind: sum(sizes) for kind, sizes in counts.items()} == {"rank": 36, "train": 42, "generate": 84,
                                                                    "score": 84}
    trains = [stage for stage in stages.values() if stage.kind == "train" and "bm25-k2" in stage.name]
    assert trains and all(len(stage.needs) == 2 and all(need.kind == "rank" for need in stage.needs)
                          for stage in trains)
    return counts


def test_the_dry_run_writes_a_job_array_per_kind_and_wave_with_its_resources_and_the_readme_commands(
        tmp_path, capsys):
    counts = check_dry_run(tmp_path, [*SETS, "resources.train.gpus=8", "resources.generate.array_parallelism=4"],
                           capsys)
    # stages ready together (when every job of a wave ends together) are one array per kind: 9 jobs, not 246
    assert counts == {"rank": [36], "generate": [6, 42, 36], "train": [6, 36], "score": [6, 42, 36]}


def test_with_arrays_off_the_dry_run_writes_one_job_script_per_stage(tmp_path, capsys):
    counts = check_dry_run(tmp_path, [*SETS, "resources.train.gpus=8", "resources.default.array=false",
                                      "resources.generate.array_parallelism=4"], capsys)
    assert {kind: set(sizes) for kind, sizes in counts.items()} == {kind: {1} for kind in counts}


def test_status_starts_nothing_and_says_every_stage_is_pending(written, capsys):
    output, argv = written
    argv = [a for a in argv if a != "--dry_run"] + ["--set", "resources.train.gpus=8", "--status"]
    code, out, _ = runner(argv, capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "246 stages: 246 pending"
    assert not (output / "runs").exists() and not (output / "ranked").exists()
