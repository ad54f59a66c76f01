"""Run a LongLaMP experiment end to end: rank, fine-tune, generate, score, tabulate, plot, card, publish.

    python scripts/run_benchmark.py --config experiments/demo.yaml
    python scripts/run_benchmark.py --config experiments/paper_review_user.yaml --output_dir runs/review
    python scripts/run_benchmark.py --config experiments/demo.yaml --set models.smollm2-lora.train.max_steps=2
    python scripts/run_benchmark.py --config experiments/personalization.yaml
    python scripts/run_benchmark.py --config experiments/demo.yaml --max_parallel 2
    python scripts/run_benchmark.py --config experiments/paper.yaml --executor slurm
    python scripts/run_benchmark.py --config experiments/paper.yaml --executor slurm --status

The experiment file describes a grid (configs x ({no profile} + retrievers x k + per-user methods) x models, each
model zero-shot or fine-tuned; see benchmark_runner/experiment.py). Every stage is the real command
(rank_profiles.py, `accelerate launch training/train.py`, train_per_user.py, train_style_vectors.py,
evaluate_llm.py, evaluate_per_user.py, eval_task.py), logged in its folder, started once the stages it needs have
finished: on this machine (`--executor local`, `--max_parallel` at once) or as SLURM jobs (`--executor slurm`,
through submitit, with the experiment's `resources`: the stages of a kind that become ready together as one job
array). Everything is checked before the first stage. Killed
and started again with the same arguments, the runner skips every stage finished from the same inputs, redoes one
whose data, model or earlier stage changed since, and the stages resume where they stopped. A failed stage stops
only the stages that need it; the runner then names it and its log and exits with 1.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmark_runner.checks import check_allocations, check_commands  # noqa: E402
from benchmark_runner.execute import LocalExecutor, SlurmExecutor, execute  # noqa: E402
from benchmark_runner.experiment import load_experiment  # noqa: E402
from benchmark_runner.results import (  # noqa: E402
    collect,
    markdown_table,
    push_results,
    reading,
    write_cards,
    write_results,
)
from benchmark_runner.stages import plan, stage_env  # noqa: E402
from benchmark_runner.status import grid_status, write_job_scripts  # noqa: E402
from longlamp_cli import (  # noqa: E402
    ArgumentParser,
    DataArguments,
    OutputArguments,
    arg,
    output_folder,
    positive_int,
    reuse,
    run_command,
)
from longlamp_io import RunLock  # noqa: E402
from publishing.cli import HubArguments  # noqa: E402


@dataclass(kw_only=True)
class RunnerArguments:
    """The experiment, and what the command line changes of it."""

    _argument_group_name = "experiment"
    # The experiment file is this command's settings file: its output_dir, data_dir and cache_dir are the flags
    # below, which win over it. So `--config` (the README's spelling) is this flag here, not a second file.
    experiment: str = arg("the experiment file (YAML), e.g. experiments/demo.yaml: this command's settings file, "
                          "whose output_dir, data_dir and cache_dir the flags below override", aliases=("--config",))
    output_dir: str | None = reuse(OutputArguments, "output_dir", default=None,
                                   help="the one output folder (default: the experiment's output_dir)")
    data_dir: str | None = reuse(DataArguments, "data_dir", help="local copy of the data (default: the "
                                 "experiment's; none: the Hub)")
    cache_dir: str | None = reuse(DataArguments, "cache_dir", help="datasets cache for every stage (default: the "
                                  "experiment's, else the datasets library's)")
    set: list[str] = arg("override one setting of the experiment file, e.g. k=[1] or "
                         "models.smollm2-lora.train.max_steps=2 (the value is read as YAML); repeatable (default: "
                         "none)", default_factory=list, action="append", metavar="KEY=VALUE")
    executor: str = arg("where the stages run: local (processes on this machine, --max_parallel at once) or slurm "
                        "(SLURM jobs through submitit with the experiment's resources: a job array per stage kind "
                        "for the stages ready together, or one job per stage where the kind's array is false)",
                        default="local", choices=("local", "slurm"))
    max_parallel: int = arg("--executor local: how many stages run at once (each starts once the stages it needs "
                            "have finished)", default=1, type=positive_int)
    dry_run: bool = arg("print the plan (each stage, what it needs, its command) and stop; with --executor slurm "
                        "also write the job scripts it would submit under <output_dir>/slurm/dry_run", default=False)
    status: bool = arg("print each stage's state (done, running with its job id, failed with its log, pending) "
                       "from the output folder and the scheduler, and stop: nothing is started", default=False)
    push_to_hub: bool = reuse(HubArguments, "push_to_hub", help="publish the results, plots, cards and fine-tuned "
                              "adapters in one commit to --hub_model_id (token: HF_TOKEN or `hf auth login`); "
                              "--push_to_hub NAMESPACE/NAME names it")
    hub_model_id: str | None = reuse(HubArguments, "hub_model_id")
    hub_private: bool = reuse(HubArguments, "hub_private")
    hub_dry_run_dir: str | None = arg("write what would be uploaded into this folder instead of uploading (default: "
                                      "none)", default=None, type=output_folder)


def make_parser() -> ArgumentParser:
    return ArgumentParser(RunnerArguments, description=__doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_into(argv)
    experiment = load_experiment(args.experiment, {"output_dir": args.output_dir, "data_dir": args.data_dir,
                                               "cache_dir": args.cache_dir}, args.set)
    if args.push_to_hub:
        from publishing.hub import check_repo_id

        check_repo_id(args.hub_model_id)  # before hours of work, not after
    stages = plan(experiment)
    check_commands(stages, args.experiment)
    if args.executor == "slurm":
        check_allocations(stages, experiment.resources, args.experiment)
    if args.status:
        print(grid_status(stages, experiment.output_dir))
        return 0
    if args.dry_run:
        for stage in stages:
            needs = f"  (after: {', '.join(need.name for need in stage.needs)})" if stage.needs else ""
            print(f"# {stage.name}{needs}\n{' '.join(stage.portable_command())}")
        if args.executor == "slurm":
            folder = write_job_scripts(stages, experiment)
            print(f"\nThe job scripts it would submit (a job array per stage kind and wave where the kind's `array` "
                  f"is on, else one job per stage): {folder}")
        return 0
    root = experiment.output_dir
    started = time.monotonic()
    with RunLock(root, "scripts/run_benchmark.py"):
        env = stage_env(experiment)
        executor = (SlurmExecutor(root, experiment.resources) if args.executor == "slurm"
                    else LocalExecutor(args.max_parallel))
        outcomes = execute(stages, executor, env)
        failed = [(stage, outcomes[stage.name]) for stage in stages if outcomes[stage.name].state == "failed"]
        if failed:
            blocked = sum(outcome.state == "blocked" for outcome in outcomes.values())
            for stage, outcome in failed:
                print(f"run_benchmark.py: error: {outcome.reason}", file=sys.stderr)
            print(f"run_benchmark.py: {len(failed)} stage(s) failed, {blocked} not started because they need one; "
                  "the others finished. Fix the cause and run the same command again.", file=sys.stderr)
            return 1
        results = collect(experiment)
        written = write_results(experiment, results)
        cards = write_cards(experiment)
        print(f"\n{experiment.name}: {experiment.eval_split} split, 95% intervals, Δ = paired difference against "
              "no profile\n")
        print(markdown_table(results))
        print("\n" + "\n".join(reading(results, experiment.plot_metric)))
        print(f"\nEverything is in {root} (this run: {time.monotonic() - started:.0f} s):")
        for label, path in written.items():
            print(f"  {label:<24} {path}")
        print(f"  {'run cards':<24} {len(cards)} README.md files, e.g. {cards[0]}")
        print(f"  {'stage logs':<24} {root}/runs/*/*/*/*/stage.log, {root}/ranked/*/*/*/stage.log")
        if args.push_to_hub:
            where = push_results(experiment, args.hub_model_id, private=args.hub_private,
                                 dry_run_dir=args.hub_dry_run_dir)
            print(f"  {'staged for the Hub' if args.hub_dry_run_dir else 'published':<24} {where}")
        else:
            print("\nTo publish, the same command with: --push_to_hub --hub_model_id NAMESPACE/NAME")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
