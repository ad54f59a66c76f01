"""What the runner can say without starting anything: the grid's state (`--status`) and, for SLURM, the job
scripts it would submit (`--dry_run --executor slurm`)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from benchmark_runner.execute import ACTIVE, array_groups, import_submitit, submitit_parameters
from benchmark_runner.experiment import Experiment
from benchmark_runner.stages import JOB_FILE, LOG, REPO, Stage

SCRIPTS = "slurm/dry_run"  # under the output folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _scheduler_state(root: Path, job: str) -> str:
    """A SLURM job's state as the scheduler tells it (sacct/squeue through submitit), UNKNOWN where there is none."""
    try:
        return import_submitit().SlurmJob(folder=root / "slurm" / "%j", job_id=job).state
    except Exception as error:  # no scheduler here (no sacct), or no submitit: say so rather than guess
        return f"UNKNOWN ({type(error).__name__})"


def stage_status(stage: Stage, root: Path, digests: dict) -> str:
    """done / running (job id) / failed (log) / pending, for one stage."""
    state = stage.state(digests)
    if state == "done":
        waiting = [need.name for need in stage.needs if need.state(digests) != "done"]
        return f"done (redone if {waiting[0]} changes when it runs)" if waiting else "done"
    job_file = stage.folder / JOB_FILE
    job = json.loads(job_file.read_text()) if job_file.is_file() else None
    if job and job.get("state") == "failed":
        return f"failed (exit {job.get('exit')}), log: {stage.folder / LOG}"
    if job and job.get("job") == "local" and job.get("pid"):
        return (f"running (process {job['pid']})" if _alive(job["pid"])
                else "pending (was running when its runner stopped: resumed on the next run)")
    if job and job.get("job") not in (None, "local"):
        scheduler = _scheduler_state(root, str(job["job"]))
        if scheduler in ACTIVE:
            return f"running (job {job['job']}, {scheduler})"
        if scheduler.startswith(("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")):
            return f"failed (job {job['job']}, {scheduler}), log: {stage.folder / LOG}"
        return f"pending (job {job['job']}: {scheduler})"
    if state == "stale":
        return f"pending (made from other inputs: {', '.join(stage.changed_inputs(digests))})"
    return "pending"


def grid_status(stages: list[Stage], root: Path) -> str:
    """One line per stage and a count per state."""
    digests, lines, counts = {}, [], {}
    for stage in stages:
        status = stage_status(stage, root, digests)
        word = status.split(" ", 1)[0]
        counts[word] = counts.get(word, 0) + 1
        lines.append(f"{word:<8} {stage.name}{status[len(word):]}")
    summary = ", ".join(f"{counts[word]} {word}" for word in ("done", "running", "failed", "pending") if word in counts)
    return "\n".join(lines + [f"{len(stages)} stages: {summary}"])


def waves(stages: list[Stage]) -> list[list[Stage]]:
    """The stages in the order they become ready when every job of a wave ends together: wave 0 needs nothing,
    wave i needs wave i-1 (and earlier). A run submits each wave's stages of one kind as one job array; when jobs
    end at other times, a stage joins the array of the stages of its kind that become ready in the same poll."""
    wave: dict[str, int] = {}
    for stage in stages:  # planned in an order where each stage's needs come first
        wave[stage.name] = 1 + max((wave[need.name] for need in stage.needs if need.name in wave), default=-1)
    return [[stage for stage in stages if wave[stage.name] == i] for i in range(max(wave.values(), default=-1) + 1)]


def job_script(group: list[Stage], experiment: Experiment) -> str:
    """The batch script of one job: submitit's own #SBATCH header for the stage kind's resources (with
    `--array=0-N%P` for a job array of several stages), then what the job runs: the stage's command in the
    repository, its output appended to its stage.log; in an array, task i runs the i-th stage's."""
    _make_sbatch_string = import_submitit().slurm.slurm._make_sbatch_string

    kind = group[0].kind
    parameters = submitit_parameters(experiment.resources[kind], kind)
    slurm = {key.removeprefix("slurm_"): value for key, value in parameters.items() if key.startswith("slurm_")}
    slurm["additional_parameters"] = slurm.pop("additional_parameters", {})
    commands = [f"{shlex.join(stage.portable_command())} >> {shlex.quote(str(stage.folder / LOG))} 2>&1"
                for stage in group]
    if len(group) > 1:
        slurm["map_count"] = len(group)
        command = "\n".join(['case "$SLURM_ARRAY_TASK_ID" in',
                             *(f"  {index}) {line} ;;" for index, line in enumerate(commands)), "esac"])
    else:
        command = commands[0]
    text = _make_sbatch_string(command=command, setup=[f"cd {shlex.quote(str(REPO))}"],
                               folder=str(experiment.output_dir / "slurm" / "%j"), job_name=parameters["name"],
                               time=parameters["timeout_min"], **slurm)
    about = "".join(f"# stage{f' (task {index})' if len(group) > 1 else ''}: {stage.name}\n"
                    + "".join(f"# after: {need.name}\n" for need in stage.needs)
                    for index, stage in enumerate(group))
    return text.replace("\n", f"\n{about}", 1)


def write_job_scripts(stages: list[Stage], experiment: Experiment) -> Path:
    """The job scripts of the grid under <output_dir>/slurm/dry_run, numbered in submission order (wave by wave,
    see `waves`; one job array per kind with `array` on, else one job per stage), and plan.json: each script with
    its kind, its stages and the scripts it waits for (the runner submits a stage once those have finished)."""
    folder = experiment.output_dir / SCRIPTS
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [[stage for stage, _ in group] for wave in waves(stages)
            for group in array_groups([(stage, {}) for stage in wave], experiment.resources)]
    script = {}
    for number, group in enumerate(jobs, 1):
        what = f"{group[0].kind}-array" if len(group) > 1 else group[0].name.replace(" ", "-").replace("/", "-")
        name = f"{number:03d}-{what}.sh"
        script.update({stage.name: name for stage in group})
        (folder / name).write_text(job_script(group, experiment), encoding="utf-8")
    plan = [{"script": script[group[0].name], "kind": group[0].kind, "stages": [stage.name for stage in group],
             "after": sorted({script[need.name] for stage in group for need in stage.needs})} for group in jobs]
    (folder / "plan.json").write_text(json.dumps(plan, indent=1) + "\n", encoding="utf-8")
    return folder
