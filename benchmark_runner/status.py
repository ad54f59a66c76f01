"""What the runner can say without starting anything: the grid's state (`--status`) and, for SLURM, the job
scripts it would submit (`--dry_run --executor slurm`)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from benchmark_runner.execute import ACTIVE, import_submitit, submitit_parameters
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


def job_script(stage: Stage, experiment: Experiment) -> str:
    """The batch script of a stage's job: submitit's own #SBATCH header for the stage kind's resources, then what
    the job runs (the stage's command, in the repository, its output appended to stage.log)."""
    _make_sbatch_string = import_submitit().slurm.slurm._make_sbatch_string

    parameters = submitit_parameters(experiment.resources[stage.kind], stage)
    slurm = {key.removeprefix("slurm_"): value for key, value in parameters.items() if key.startswith("slurm_")}
    slurm["additional_parameters"] = slurm.pop("additional_parameters", {})
    command = shlex.join(stage.portable_command())
    text = _make_sbatch_string(command=f"{command} >> {shlex.quote(str(stage.folder / LOG))} 2>&1",
                               setup=[f"cd {shlex.quote(str(REPO))}"],
                               folder=str(experiment.output_dir / "slurm" / "%j"), job_name=parameters["name"],
                               time=parameters["timeout_min"], **slurm)
    after = "".join(f"# after: {need.name}\n" for need in stage.needs)
    return text.replace("\n", f"\n# stage: {stage.name}\n{after}", 1)


def write_job_scripts(stages: list[Stage], experiment: Experiment) -> Path:
    """One script per stage under <output_dir>/slurm/dry_run, numbered in plan order, and plan.json: each script
    with the stage kind and the scripts it waits for (the runner submits a job once those have finished)."""
    folder = experiment.output_dir / SCRIPTS
    folder.mkdir(parents=True, exist_ok=True)
    names = {stage.name: f"{number:03d}-{stage.name.replace(' ', '-').replace('/', '-')}.sh"
             for number, stage in enumerate(stages, 1)}
    for stage in stages:
        (folder / names[stage.name]).write_text(job_script(stage, experiment), encoding="utf-8")
    plan = [{"stage": stage.name, "kind": stage.kind, "script": names[stage.name],
             "after": [names[need.name] for need in stage.needs]} for stage in stages]
    (folder / "plan.json").write_text(json.dumps(plan, indent=1) + "\n", encoding="utf-8")
    return folder
