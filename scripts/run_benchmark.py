"""Run a LongLaMP experiment end to end: rank, fine-tune, generate, score, tabulate, plot, card, publish.

    python scripts/run_benchmark.py --config experiments/demo.yaml
    python scripts/run_benchmark.py --config experiments/paper_review_user.yaml --output_dir runs/review
    python scripts/run_benchmark.py --config experiments/demo.yaml --set models.smollm2-lora.train.max_steps=2
    python scripts/run_benchmark.py --config experiments/personalization.yaml

The experiment file describes a grid (configs x ({no profile} + retrievers x k + per-user methods) x models, each
model zero-shot or fine-tuned; see benchmark_runner/experiment.py). Every stage is the real command
(rank_profiles.py, `accelerate launch training/train.py`, train_per_user.py, train_style_vectors.py,
evaluate_llm.py, evaluate_per_user.py, eval_task.py), logged in its folder; killed and started
again with the same arguments, the runner skips every finished stage and the stages resume where they stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

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
from longlamp_cli import run_command  # noqa: E402
from longlamp_io import RunLock  # noqa: E402


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the experiment file (YAML), e.g. experiments/demo.yaml")
    parser.add_argument("--output_dir", help="the one output folder (default: the experiment's output_dir)")
    parser.add_argument("--data_dir", help="local copy of the data (default: the experiment's; none: the Hub)")
    parser.add_argument("--cache_dir", help="datasets cache for every stage (default: the datasets library's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the experiment file, e.g. k=[1] or "
                             "models.smollm2-lora.train.max_steps=2 (the value is read as YAML); repeatable")
    parser.add_argument("--dry_run", action="store_true", help="print the stage commands and stop")
    hub = parser.add_argument_group("publishing")
    hub.add_argument("--push_to_hub", action="store_true", help="publish the results, plots, cards and fine-tuned "
                     "adapters in one commit to --hub_model_id (token: HF_TOKEN or `hf auth login`)")
    hub.add_argument("--hub_model_id", metavar="NAMESPACE/NAME", help="the Hub repository to push to")
    hub.add_argument("--hub_private", action="store_true", help="create the repository private")
    hub.add_argument("--hub_dry_run_dir", help="write what would be uploaded into this folder instead of uploading")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    experiment = load_experiment(args.config, {"output_dir": args.output_dir, "data_dir": args.data_dir,
                                               "cache_dir": args.cache_dir}, args.set)
    if args.push_to_hub:
        from publishing.hub import check_repo_id

        check_repo_id(args.hub_model_id)  # before hours of work, not after
    stages = plan(experiment)
    if args.dry_run:
        for stage in stages:
            print(f"# {stage.name}\n{' '.join(stage.portable_command())}")
        return 0
    root = experiment.output_dir
    started = time.monotonic()
    with RunLock(root, "scripts/run_benchmark.py"):
        env = stage_env(experiment)
        for number, stage in enumerate(stages, 1):
            prefix = f"[{number:>2}/{len(stages)}] {stage.name}"
            if stage.is_done():
                print(f"{prefix}: done before, skipped", flush=True)
                continue
            print(f"{prefix} ...", flush=True)
            seconds = stage.run(env)
            print(f"{prefix}: {seconds:.0f} s (log: {stage.folder / 'stage.log'})", flush=True)
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
