"""Running the stage graph: each stage starts once the stages it needs have finished, through an executor.

- `LocalExecutor`: up to `max_parallel` stages at once as processes on this machine (1: one after another).
- `SlurmExecutor`: SLURM jobs through submitit, with the resources of the stage's kind (see `resources`): the
  stages of one kind that become ready together as one job array (a task per stage) where the kind's `array` is on,
  else one job per stage.

Whatever the executor, a stage is decided on when it becomes ready: done before (skipped), made from other inputs
(its folder emptied, redone) or to run. A failed stage fails only the stages that need it, directly or not; the
others run to the end. The outcome of every stage is returned for the summary.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from benchmark_runner.stages import JOB_FILE, LOG, REPO, Stage
from longlamp_errors import StageError
from longlamp_io import write_json_atomic

POLL_SECONDS = 5  # how often a SLURM job's state is asked for
ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")  # queued or running


def import_submitit():
    """submitit, imported without its logging set-up: on import it calls logging.config.dictConfig, which closes
    every logging handler this process already has. Its warnings still reach stderr (Python's last resort)."""
    saved = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        import submitit
    finally:
        if saved is None:
            del os.environ["SUBMITIT_LOG_LEVEL"]
        else:
            os.environ["SUBMITIT_LOG_LEVEL"] = saved
    return submitit


@dataclass
class Outcome:
    """What became of a stage in this run: done (now or before), failed (with its log) or not started (a stage it
    needs failed)."""

    state: str  # "ran", "skipped", "failed", "blocked"
    seconds: float = 0.0
    reason: str = ""
    job: str = ""


def run_stage(stage: Stage, env: dict, job: str, inputs: dict) -> float:
    """What a job runs: the stage's command, its record written last (module level, so submitit can pickle it).
    `job` "submitit": the job id is submitit's, read inside the job, and `env` holds only what the runner adds to
    the environment the job inherits (nothing of the caller's, a token say, is pickled to disk)."""
    if job == "submitit":
        job, env = str(import_submitit().JobEnvironment().job_id), {**os.environ, **env}
    return stage.run(env, job, inputs)


class LocalExecutor:
    """Stages as processes on this machine, `max_parallel` at once."""

    def __init__(self, max_parallel: int = 1):
        self.pool = ThreadPoolExecutor(max_workers=max_parallel)
        self.max_parallel = max_parallel

    def submit(self, ready: list[tuple[Stage, dict]], env: dict) -> list[tuple[Future, str]]:
        """Each (stage, its inputs) started: (future, "local") for each."""
        return [(self.pool.submit(run_stage, stage, env, "local", inputs), "local") for stage, inputs in ready]

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


class _JobFuture:
    """A submitit job seen as a future (done(), result())."""

    def __init__(self, job):
        self.job = job

    def done(self) -> bool:
        return self.job.done()

    def result(self) -> float:
        try:
            return self.job.result()
        except Exception as error:  # submitit wraps what the job raised (or the scheduler's failure) in its own
            raise StageError(str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)) from None


class SlurmExecutor:
    """One job per stage through submitit (`submitit.AutoExecutor`: SLURM on a cluster; its local executor in
    tests), each with its stage kind's resources; stages of a kind with `array` on that are submitted together go
    as one job array (`executor.batch()`: one sbatch, task i the i-th stage, job id `<array id>_<i>`; submitit's
    local executor starts them as separate processes). submitit's own files (pickled job, its stdout) go under
    `<output_dir>/slurm/`."""

    def __init__(self, root: Path, resources: dict, *, cluster: str | None = None):
        self.submitit, self.root, self.resources, self.cluster = import_submitit(), root, resources, cluster
        self.max_parallel = None  # the scheduler queues what it cannot start yet
        # The job's Python unpickles run_stage: the repository must be importable there (sbatch exports this
        # environment to the job; submitit's local executor passes it on).
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    def executor_for(self, kind: str):
        executor = self.submitit.AutoExecutor(folder=self.root / "slurm" / "%j", cluster=self.cluster)
        executor.update_parameters(**submitit_parameters(self.resources[kind], kind))
        return executor

    def submit(self, ready: list[tuple[Stage, dict]], env: dict) -> list[tuple[_JobFuture, str]]:
        """Each (stage, its inputs) submitted, in order: one job array per kind with `array` on (one job when a
        single stage of it is ready), else one job each; (handle, job id) for each."""
        added = {key: value for key, value in env.items() if os.environ.get(key) != value}
        jobs = {}
        for group in array_groups(ready, self.resources):
            executor = self.executor_for(group[0][0].kind)
            with executor.batch() if len(group) > 1 else nullcontext():
                submitted = [executor.submit(run_stage, stage, added, "submitit", inputs) for stage, inputs in group]
            jobs.update({stage.name: job for (stage, _), job in zip(group, submitted)})
        return [(_JobFuture(jobs[stage.name]), str(jobs[stage.name].job_id)) for stage, _ in ready]

    def attach(self, stage: Stage):
        """The job a stopped runner submitted for this stage, if the scheduler still has it queued or running (a
        second job would write the same folder): (handle, job id), else None."""
        job_file = stage.folder / JOB_FILE
        job_id = json.loads(job_file.read_text()).get("job") if job_file.is_file() else None
        if not job_id or job_id == "local":
            return None
        job = self.submitit.SlurmJob(folder=self.root / "slurm" / "%j", job_id=str(job_id))
        if job.state not in ACTIVE:
            return None
        return _JobFuture(job), str(job_id)

    def shutdown(self) -> None:
        pass


def array_groups(ready: list[tuple[Stage, dict]], resources: dict) -> list[list[tuple[Stage, dict]]]:
    """The stages submitted together, in order: those of a kind with `array` on in one group (one job array), any
    other stage in a group of its own."""
    groups: dict[str, list] = {}
    for item in ready:
        kind = item[0].kind
        groups.setdefault(kind if resources[kind]["array"] else item[0].name, []).append(item)
    return list(groups.values())


def submitit_parameters(resources: dict, kind: str) -> dict:
    """An experiment's resources for one stage kind as submitit's SLURM parameters (`slurm_` ones apply only on a
    cluster; the local executor ignores them)."""
    # No srun: the batch step runs the stage's command itself (a multi-GPU stage's `accelerate launch` starts one
    # process per GPU of the allocation).
    parameters = {"name": f"longlamp-{kind}", "timeout_min": int(resources["time"]), "slurm_use_srun": False,
                  "slurm_gpus_per_node": int(resources["gpus"]) or None, "slurm_cpus_per_task": int(resources["cpus"]),
                  "slurm_mem": str(resources["mem"])}
    if resources.get("partition"):
        parameters["slurm_partition"] = resources["partition"]
    if resources.get("account"):
        parameters["slurm_account"] = resources["account"]
    if resources.get("sbatch"):
        parameters["slurm_additional_parameters"] = dict(resources["sbatch"])
    if resources.get("array_parallelism"):
        parameters["slurm_array_parallelism"] = int(resources["array_parallelism"])
    return {key: value for key, value in parameters.items() if value is not None}


@dataclass
class Progress:
    """One line per stage as it starts and ends (and the job id), a bar over the grid."""

    total: int
    bar: object = None

    def __post_init__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, unit="stage", desc="grid", disable=None)

    def say(self, line: str) -> None:
        self.bar.write(line)

    def advance(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def execute(stages: list[Stage], executor, env: dict, digests: dict | None = None) -> dict[str, Outcome]:
    """Run the graph; returns each stage's outcome by name."""
    digests = {} if digests is None else digests
    outcomes: dict[str, Outcome] = {}
    waiting = list(stages)
    running: dict[object, tuple[Stage, float, str]] = {}
    progress = Progress(len(stages))
    number = {stage.name: i for i, stage in enumerate(stages, 1)}

    def prefix(stage: Stage) -> str:
        return f"[{number[stage.name]:>{len(str(len(stages)))}}/{len(stages)}] {stage.name}"

    def started(stage: Stage, handle, job: str) -> None:
        if job != "local":
            stage.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(stage.folder / JOB_FILE, {"job": job, "state": "submitted"})
        running[handle] = (stage, time.monotonic(), job)
        progress.say(f"{prefix(stage)} ..." + (f" (job {job})" if job != "local" else ""))

    try:
        while waiting or running:
            ready: list[tuple[Stage, dict]] = []  # submitted together, after this pass (a job array per kind)
            for stage in list(waiting):
                if executor.max_parallel is not None and len(running) + len(ready) >= executor.max_parallel:
                    break
                planned = [need for need in stage.needs if need.name in number]  # others: their record decides
                needs = [outcomes.get(need.name) for need in planned]
                failed = [need.name for need, outcome in zip(planned, needs)
                          if outcome is not None and outcome.state in ("failed", "blocked")]
                if failed:
                    waiting.remove(stage)
                    outcomes[stage.name] = Outcome("blocked", reason=f"needs {failed[0]}, which did not finish")
                    progress.say(f"{prefix(stage)}: not started (it needs {failed[0]})")
                    progress.advance()
                    continue
                if any(outcome is None for outcome in needs):
                    continue
                waiting.remove(stage)
                # a job a stopped runner left queued or running is waited for, not submitted again
                attached = executor.attach(stage) if isinstance(executor, SlurmExecutor) else None
                state = "attached" if attached else stage.state(digests)
                if state == "done":
                    outcomes[stage.name] = Outcome("skipped")
                    progress.say(f"{prefix(stage)}: done before, skipped")
                    progress.advance()
                    continue
                if state == "stale":
                    changed = stage.changed_inputs(digests)
                    progress.say(f"{prefix(stage)}: made from other inputs ({'; '.join(changed)}): redone")
                    stage.clear()
                if attached:
                    started(stage, *attached)
                else:
                    ready.append((stage, stage.inputs(digests)))  # what it starts from
            for (stage, _), (handle, job) in zip(ready, executor.submit(ready, env) if ready else []):
                started(stage, handle, job)
            if not running:
                continue
            finished = _wait_any(list(running))
            for handle in finished:
                stage, since, job = running.pop(handle)
                try:
                    handle.result()
                except StageError as error:
                    outcomes[stage.name] = Outcome("failed", reason=str(error), job=job)
                    progress.say(f"{prefix(stage)}: FAILED, log: {stage.folder / LOG}")
                else:
                    outcomes[stage.name] = Outcome("ran", time.monotonic() - since, job=job)
                    progress.say(f"{prefix(stage)}: {time.monotonic() - since:.0f} s (log: {stage.folder / LOG})")
                progress.advance()
    finally:
        executor.shutdown()
        progress.close()
    return outcomes


def _wait_any(handles: list) -> list:
    """The handles that are done, waiting for at least one (futures are waited on, jobs are polled)."""
    futures = [handle for handle in handles if isinstance(handle, Future)]
    if len(futures) == len(handles):
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return list(done)
    while True:
        done = [handle for handle in handles if handle.done()]
        if done:
            return done
        time.sleep(POLL_SECONDS)
