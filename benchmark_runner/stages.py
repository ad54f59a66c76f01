"""Each stage of an experiment as the real command a user would type, run in a subprocess and skipped when done.

A stage is done when its folder holds its stage record (`longlamp_runs.StageRecord` in `.stage.json`, written last,
atomically, after the command succeeded and its outputs were checked) and every output it names exists. A killed stage
has no such file and runs again: the stage commands resume by themselves (rank_profiles.py, evaluate_llm.py and
evaluate_per_user.py continue where they stopped, train.py is given `--resume_from_checkpoint latest`,
train_per_user.py and train_style_vectors.py continue with the next unfinished user). A stage whose recorded command
differs from today's is an error, not a silent reuse: the folder holds another experiment's result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmark_runner.experiment import TRAINED_METHODS, Experiment, Run
from longlamp_errors import RunFolderError, StageError
from longlamp_runs import (
    FINAL_DIR,
    GOLDS_FILE,
    PER_SAMPLE_FILE,
    PER_USER_REPORT_FILE,
    PREDICTIONS_FILE,
    SCORES_FILE,
    STYLE_SELECTION_FILE,
    StageRecord,
    read_stage_record,
    write_stage_record,
)
from longlamp_tasks import parse_config_name, scorer_task_name

REPO = Path(__file__).resolve().parents[1]
# `accelerate launch` from the same environment as this interpreter (its console script, else its module).
_ACCELERATE = Path(sys.executable).with_name("accelerate")
LAUNCH = [str(_ACCELERATE), "launch"] if _ACCELERATE.is_file() else [sys.executable, "-m", "accelerate.commands.launch"]
_PORTABLE = {sys.executable: "python", str(_ACCELERATE): "accelerate"}
LOG = "stage.log"


@dataclass
class Stage:
    """One command with the folder it writes and the outputs that prove it finished."""

    name: str
    folder: Path
    command: list[str]
    outputs: list[str] = field(default_factory=list)  # paths relative to `folder`

    def is_done(self) -> bool:
        recorded = read_stage_record(self.folder)
        if recorded is None:
            return False
        if recorded.command != self.portable_command():
            raise RunFolderError(
                f"{self.folder} holds stage {self.name} done with another command:\n  {' '.join(recorded.command)}"
                f"\nnow:\n  {' '.join(self.portable_command())}\nchoose another --output_dir or remove that folder")
        return all((self.folder / output).exists() for output in self.outputs)

    def portable_command(self) -> list[str]:
        """The command as recorded: the interpreter as `python` (and `accelerate`), so a moved venv still matches."""
        return [_PORTABLE.get(part, part) for part in self.command]

    def run(self, env: dict) -> float:
        """Run the command (its output into stage.log); raise with the log's tail when it fails."""
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.folder / LOG, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(self.portable_command())}\n")
            log.flush()
            code = subprocess.call(self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            tail = (self.folder / LOG).read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
            raise StageError(f"stage {self.name} failed (exit {code}); the end of {self.folder / LOG}:\n"
                             + "\n".join(tail))
        missing = [output for output in self.outputs if not (self.folder / output).exists()]
        if missing:
            raise StageError(f"stage {self.name} finished but did not write {', '.join(missing)} in {self.folder}")
        write_stage_record(self.folder, StageRecord(self.name, self.portable_command(), self.outputs,
                                                    time.monotonic() - started))
        return time.monotonic() - started


def _flags(options: dict) -> list[str]:
    """`{"use_lora": True, "max_steps": 4}` as `--use_lora --max_steps 4` (False: `--no-name`, None: left out)."""
    flags = []
    for name, value in options.items():
        if value is None:
            continue
        if value is True:
            flags.append(f"--{name}")
        elif value is False:
            flags.append(f"--no-{name}")
        else:
            flags += [f"--{name}", str(value)]
    return flags


def _data_flags(experiment: Experiment) -> list[str]:
    return ["--data_dir", str(experiment.data_dir)] if experiment.data_dir else []


class Layout:
    """Where each stage of an experiment writes, under its one output folder."""

    def __init__(self, experiment: Experiment):
        self.experiment, self.root = experiment, experiment.output_dir

    def ranked(self, config: str, retriever: str, split: str) -> Path:
        return self.root / "ranked" / config / retriever / split / f"{split}.parquet"

    def run_dir(self, run: Run) -> Path:
        return self.root / "runs" / run.config / run.model.name / run.variant

    def predictions(self, run: Run) -> Path:
        return self.run_dir(run) / "generate" / PREDICTIONS_FILE

    def golds(self, run: Run) -> Path:
        return self.run_dir(run) / "generate" / GOLDS_FILE

    def scores(self, run: Run) -> Path:
        return self.run_dir(run) / "score" / SCORES_FILE

    def per_sample(self, run: Run) -> Path:
        return self.run_dir(run) / "score" / PER_SAMPLE_FILE


def rank_stage(layout: Layout, config: str, retriever, split: str) -> Stage:
    experiment = layout.experiment
    output = layout.ranked(config, retriever.name, split)
    command = [sys.executable, "retrieval/rank_profiles.py", "--config", config, "--split", split,
               *_data_flags(experiment), "--retriever", retriever.retriever, "--output", str(output)]
    if retriever.retriever_model:
        command += ["--retriever_model", retriever.retriever_model]
    command += _flags({**experiment.rank, **retriever.options})
    return Stage(f"rank {config} {retriever.name} {split}", output.parent, command, [output.name])


def _retrieval_flags(run: Run) -> list[str]:
    """Retrieval when the prompts are built (a retriever with ranked: false): its name, encoder and k."""
    retriever = run.retriever
    return ["--use_profile", "--retriever", retriever.retriever, "--num_retrieved", str(run.k),
            *(["--retriever_model", retriever.retriever_model] if retriever.retriever_model else [])]


def train_stage(layout: Layout, run: Run) -> Stage:
    """`accelerate launch ... training/train.py`: ranked train/validation data with profile, the config without
    (or with retrieval on the fly)."""
    experiment, folder = layout.experiment, layout.run_dir(run) / "train"
    if run.retriever is None or not run.retriever.ranked:
        data = ["--train_data", run.config, "--validation_data", run.config, *_data_flags(experiment)]
        profile = ["--no-use_profile"] if run.retriever is None else _retrieval_flags(run)
    else:
        data = ["--train_data", str(layout.ranked(run.config, run.retriever.name, "train")),
                "--validation_data", str(layout.ranked(run.config, run.retriever.name, "validation"))]
        profile = ["--use_profile", "--is_ranked", "--retriever", run.retriever.retriever,
                   "--num_retrieved", str(run.k)]
    command = [*LAUNCH, "--config_file", run.model.accelerate_config,
               "training/train.py", *data, "--task", run.config, "--model_name", run.model.model_name,
               "--output_dir", str(folder), *profile, "--resume_from_checkpoint", "latest",
               *(["--cache_dir", experiment.cache_dir] if experiment.cache_dir else []), *_flags(run.model.train)]
    return Stage(f"train {run.key}", folder, command, [FINAL_DIR])


def trained_model(layout: Layout, run: Run) -> str:
    """The model a run generates with: the fine-tuned one, else the model itself; a method's is its baseline's."""
    if run.method is not None:
        return trained_model(layout, run.baseline)
    return str(layout.run_dir(run) / "train" / FINAL_DIR) if run.model.mode == "fine_tuned" else run.model.model_name


def generate_stage(layout: Layout, run: Run) -> Stage:
    """evaluate_llm.py on the evaluated split: ranked data with profile, the config itself without (or with
    retrieval on the fly); evaluate_per_user.py for a per-user method."""
    if run.method is not None:
        return per_user_generate_stage(layout, run)
    experiment, folder = layout.experiment, layout.run_dir(run) / "generate"
    if run.retriever is None or not run.retriever.ranked:
        data = ["--validation_data", run.config, "--split", experiment.eval_split, *_data_flags(experiment)]
        profile = [] if run.retriever is None else _retrieval_flags(run)
    else:
        data = ["--validation_data", str(layout.ranked(run.config, run.retriever.name, experiment.eval_split)),
                "--task", run.config, "--split", experiment.eval_split]
        profile = ["--use_profile", "--is_ranked", "--retriever", run.retriever.retriever,
                   "--num_retrieved", str(run.k)]
    command = [sys.executable, "evaluation/evaluate_llm.py", *data, "--model_name", trained_model(layout, run),
               "--output_dir", str(folder), *profile,
               *(["--cache_dir", experiment.cache_dir] if experiment.cache_dir else []),
               *_flags({**experiment.evaluate, **run.model.evaluate})]
    return Stage(f"generate {run.key}", folder, command, [PREDICTIONS_FILE, GOLDS_FILE])


def _per_user_data(layout: Layout, run: Run) -> list[str]:
    """The evaluated split of the config, as the run without profile reads it: the same rows and data record."""
    experiment = layout.experiment
    return ["--data", run.config, "--split", experiment.eval_split, *_data_flags(experiment),
            *(["--cache_dir", experiment.cache_dir] if experiment.cache_dir else [])]


def per_user_train_stage(layout: Layout, run: Run) -> Stage:
    """A method's per-user files for the evaluated split's users: `accelerate launch training/train_per_user.py`
    (on the fine-tuned model's task adapter when there is one) or training/train_style_vectors.py (with the
    generation settings the run is evaluated with)."""
    experiment, method, folder = layout.experiment, run.method, layout.run_dir(run) / "train"
    if method.method == "per_user_adapters":
        base = trained_model(layout, run)
        if run.model.mode == "fine_tuned" and run.model.train.get("use_lora"):
            model = ["--model_name", run.model.model_name, "--task_adapter", base]
        else:
            model = ["--model_name", base]
        command = [*LAUNCH, "--config_file", method.accelerate_config or run.model.accelerate_config,
                   "training/train_per_user.py", *model, *_per_user_data(layout, run), "--output_dir", str(folder),
                   *_flags(method.train)]
        return Stage(f"train {run.key}", folder, command, [PER_USER_REPORT_FILE])
    command = [sys.executable, "training/train_style_vectors.py", "--model_name", trained_model(layout, run),
               *_per_user_data(layout, run), "--output_dir", str(folder),
               *_flags({**experiment.evaluate, **run.model.evaluate, **method.train})]
    chosen = [] if method.train.get("selection_split") == "none" else [STYLE_SELECTION_FILE]
    return Stage(f"train {run.key}", folder, command, chosen)


METHOD_FLAGS = {"per_user_adapters": "--adapters_dir", "style_vectors": "--style_vectors_dir"}


def per_user_generate_stage(layout: Layout, run: Run) -> Stage:
    """evaluate_per_user.py on the evaluated split with the method's per-user files (or summaries): a zero-shot
    run folder, scored like the others."""
    experiment, method, folder = layout.experiment, run.method, layout.run_dir(run) / "generate"
    uses = ["--use_summary"] if method.method == "profile_summary" else [METHOD_FLAGS[method.method],
                                                                          str(layout.run_dir(run) / "train")]
    command = [sys.executable, "evaluation/evaluate_per_user.py", "--model_name", trained_model(layout, run),
               *_per_user_data(layout, run), "--output_dir", str(folder), *uses,
               *_flags({**experiment.evaluate, **run.model.evaluate, **method.evaluate})]
    return Stage(f"generate {run.key}", folder, command, [PREDICTIONS_FILE, GOLDS_FILE])


def score_stage(layout: Layout, run: Run) -> Stage:
    """The benchmark's scorer, eval_task.py, on the predictions against the golds of the same rows."""
    scoring = layout.experiment.scoring
    folder = layout.scores(run).parent
    task, setting = parse_config_name(run.config)
    command = [sys.executable, "evaluation/eval_task.py", "--golds_json", str(layout.golds(run)),
               "--preds_json", str(layout.predictions(run)), "--task_name", scorer_task_name(task, setting),
               "--output_file", str(layout.scores(run)), "--per_sample_file", str(layout.per_sample(run)),
               *_flags(scoring)]
    return Stage(f"score {run.key}", folder, command, [layout.per_sample(run).name, layout.scores(run).name])


def plan(experiment: Experiment) -> list[Stage]:
    """Every stage of the experiment, in an order where each one's inputs come first."""
    layout = Layout(experiment)
    stages = [rank_stage(layout, config, retriever, split)
              for config in experiment.configs for retriever in experiment.retrievers
              for split in experiment.ranked_splits(retriever)]
    for run in experiment.runs():
        if run.method is not None:
            if run.method.method in TRAINED_METHODS:
                stages.append(per_user_train_stage(layout, run))
        elif run.model.mode == "fine_tuned":
            stages.append(train_stage(layout, run))
        stages += [generate_stage(layout, run), score_stage(layout, run)]
    return stages


def stage_env(experiment: Experiment) -> dict:
    """The stages' environment: the experiment's variables under the caller's own, the repository importable, no
    tokenizer thread warnings, the datasets cache."""
    env = {**experiment.env, **os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if experiment.cache_dir:
        env["HF_DATASETS_CACHE"] = str(Path(experiment.cache_dir).resolve())
    return env
