"""Each stage of an experiment as the real command a user would type, run in a subprocess and skipped when done.

A stage is done when its folder holds its stage record (`longlamp_runs.StageRecord` in `.stage.json`, written last,
atomically, after the command succeeded and its outputs were checked), every output it names exists, and it was made
from today's inputs: the record holds a digest of every data folder and local model it read and of the outputs of
every stage it needs; when one differs (data changed in place, a model saved again, an earlier stage redone with
other results) the stage's folder is emptied and the stage redone, and so, through their own records, is every
stage after it. A killed stage has no record and runs again: the stage commands resume by themselves
(rank_profiles.py, evaluate_llm.py and evaluate_per_user.py continue where they stopped, train.py is given
`--resume_from_checkpoint latest`, train_per_user.py and train_style_vectors.py continue with the next unfinished
user). A stage whose recorded command differs from today's is an error, not a silent reuse: the folder holds another
experiment's result. Paths in the output folder are recorded as `{output_dir}/...`, so a finished folder that was
moved or copied resumes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmark_runner.experiment import PROMPT_SETTINGS, TRAINED_METHODS, Experiment, Run
from longlamp_cli import as_flags
from longlamp_errors import RunFolderError, StageError
from longlamp_io import folder_content_digest, folder_stat_digest, write_json_atomic
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
JOB_FILE = ".job.json"  # where (executor, job id) a stage was last started, and whether it failed
OUTPUT_MARK = "{output_dir}"
CACHE_MARK = "{cache_dir}"  # a datasets cache is where rows are kept, not a setting: recorded by this name
KINDS = ("rank", "train", "generate", "score")


def path_digest(what: str, path: Path) -> str:
    """What a path read by a stage is now: data by its bytes (a change in place is seen even when sizes and times
    agree), a model or encoder (gigabytes) by its files' sizes and modification times."""
    if not path.is_dir():
        return _file_digest(path)
    return folder_content_digest(path) if what == "data" else folder_stat_digest(path)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


@dataclass
class Stage:
    """One command with the folder it writes, the outputs that prove it finished, the stages whose outputs it
    reads (`needs`) and the paths outside the output folder it reads (`reads`: data, models)."""

    name: str
    kind: str  # one of KINDS: which resources it asks a cluster for
    folder: Path
    command: list[str]
    outputs: list[str] = field(default_factory=list)  # paths relative to `folder`
    needs: list[Stage] = field(default_factory=list)
    reads: dict[str, Path] = field(default_factory=dict)  # what it is (data, model, encoder) -> its path
    root: Path | None = None  # the experiment's output folder
    cache: Path | None = None  # the experiment's datasets cache

    def state(self, digests: dict | None = None) -> str:
        """"done" (finished from today's inputs), "stale" (finished from other inputs: to redo) or "todo"."""
        recorded = read_stage_record(self.folder)
        if recorded is None:
            return "todo"
        if recorded.command != self.recorded_command():
            raise RunFolderError(
                f"{self.folder} holds stage {self.name} done with another command:\n  {' '.join(recorded.command)}"
                f"\nnow:\n  {' '.join(self.recorded_command())}\nchoose another --output_dir or remove that folder")
        if not all((self.folder / output).exists() for output in self.outputs):
            return "todo"
        return "done" if recorded.inputs == self.inputs(digests) else "stale"

    def is_done(self) -> bool:
        return self.state() == "done"

    def changed_inputs(self, digests: dict | None = None) -> list[str]:
        """The inputs that differ from the recorded ones (why a stage is redone)."""
        recorded = read_stage_record(self.folder)
        now = self.inputs(digests)
        old = recorded.inputs if recorded else {}
        return sorted(key for key in set(now) | set(old) if now.get(key) != old.get(key))

    def inputs(self, digests: dict | None = None) -> dict[str, str]:
        """What the stage is made from now: each path it reads (digested once per runner, in `digests`) and each
        needed stage's recorded outputs (None while that stage is not done)."""
        digests = {} if digests is None else digests
        found = {}
        for what, path in self.reads.items():
            if path not in digests:
                digests[path] = path_digest(what, path)
            found[f"{what} {self.portable(str(path))}"] = digests[path]
        for need in self.needs:
            record = read_stage_record(need.folder)
            found[f"stage {need.name}"] = record.outputs_digest if record else None
        return found

    def portable(self, part: str) -> str:
        """One argument as recorded: the interpreter as `python` (and `accelerate`), so a moved venv still matches;
        a path in the output folder as `{output_dir}/...`, so a moved output folder does too; the datasets cache as
        `{cache_dir}`."""
        part = _PORTABLE.get(part, part)
        if self.cache is not None and part == str(self.cache):
            return CACHE_MARK
        if self.root is not None:
            root = str(self.root)
            if part == root or part.startswith(root + os.sep):
                return OUTPUT_MARK + part[len(root):]
        return part

    def portable_command(self) -> list[str]:
        """The command as a user would type it (the interpreter as `python`, `accelerate`)."""
        return [_PORTABLE.get(part, part) for part in self.command]

    def recorded_command(self) -> list[str]:
        return [self.portable(part) for part in self.command]

    def outputs_digest(self) -> str:
        digest = hashlib.sha256()
        for output in self.outputs:
            path = self.folder / output
            digest.update(f"{output}\0{folder_content_digest(path) if path.is_dir() else _file_digest(path)}\n"
                          .encode())
        return "sha256:" + digest.hexdigest()

    def clear(self) -> None:
        """Empty the folder of a stage made from other inputs, so that nothing of it is resumed."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, env: dict, job: str = "local", inputs: dict | None = None) -> float:
        """Run the command (its output into stage.log); raise with the log's path when it fails. `job` names where
        it runs (kept in the folder's job file for --status); `inputs`, what it is started from (default: now): a
        change while it runs is seen on the next run."""
        inputs = self.inputs() if inputs is None else inputs
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.folder / LOG, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(self.portable_command())}\n")
            log.flush()
            process = subprocess.Popen(self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            write_json_atomic(self.folder / JOB_FILE, {"job": job, "pid": process.pid, "state": "running"})
            code = process.wait()
        if code != 0:
            write_json_atomic(self.folder / JOB_FILE, {"job": job, "state": "failed", "exit": code})
            raise StageError(f"stage {self.name} failed (exit {code}); its log: {self.folder / LOG}")
        missing = [output for output in self.outputs if not (self.folder / output).exists()]
        if missing:
            write_json_atomic(self.folder / JOB_FILE, {"job": job, "state": "failed", "exit": 0})
            raise StageError(f"stage {self.name} finished but did not write {', '.join(missing)}; its log: "
                             f"{self.folder / LOG}")
        write_stage_record(self.folder, StageRecord(self.name, self.recorded_command(), self.outputs,
                                                    time.monotonic() - started, inputs,
                                                    self.outputs_digest()))
        (self.folder / JOB_FILE).unlink(missing_ok=True)
        return time.monotonic() - started


def _data_flags(experiment: Experiment) -> list[str]:
    return ["--data_dir", str(experiment.data_dir)] if experiment.data_dir else []


class Layout:
    """Where each stage of an experiment writes, under its one output folder, and the stages planned so far (by
    name: what a later stage needs)."""

    def __init__(self, experiment: Experiment):
        self.experiment, self.root = experiment, experiment.output_dir
        self.stages: dict[str, Stage] = {}

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

    def stage(self, name: str, kind: str, folder: Path, command: list[str], outputs: list[str], needs: list[str],
              data: bool = False, models: dict[str, str | None] | None = None) -> Stage:
        """A planned stage: `needs` names earlier stages (ones not planned are ignored: nothing makes them),
        `data` says whether it reads the data folder, `models` the models or encoders it reads (a local folder among
        them is digested; a Hub id is in the command)."""
        reads = {"data": Path(self.experiment.data_dir)} if data and self.experiment.data_dir else {}
        for what, name_or_path in (models or {}).items():
            if name_or_path and Path(name_or_path).is_absolute() and Path(name_or_path).exists() \
                    and self.root not in Path(name_or_path).parents:
                reads[what] = Path(name_or_path)
        stage = Stage(name, kind, folder, command, outputs, [self.stages[n] for n in needs if n in self.stages],
                      reads, self.root, Path(self.experiment.cache_dir) if self.experiment.cache_dir else None)
        self.stages[name] = stage
        return stage


def rank_name(config: str, retriever, split: str) -> str:
    return f"rank {config} {retriever.name} {split}"


def rank_stage(layout: Layout, config: str, retriever, split: str) -> Stage:
    experiment = layout.experiment
    output = layout.ranked(config, retriever.name, split)
    command = [sys.executable, "retrieval/rank_profiles.py", "--config", config, "--split", split,
               *_data_flags(experiment), "--retriever", retriever.retriever, "--output", str(output)]
    if retriever.retriever_model:
        command += ["--retriever_model", retriever.retriever_model]
    command += as_flags({**experiment.rank, **retriever.options})
    return layout.stage(rank_name(config, retriever, split), "rank", output.parent, command, [output.name], [],
                        data=True, models={"encoder": retriever.retriever_model})


def _retrieval_flags(run: Run) -> list[str]:
    """Retrieval when the prompts are built (a retriever with ranked: false): its name, encoder and k."""
    retriever = run.retriever
    return ["--use_profile", "--retriever", retriever.retriever, "--num_retrieved", str(run.k),
            *(["--retriever_model", retriever.retriever_model] if retriever.retriever_model else [])]


def _ranked_flags(run: Run) -> list[str]:
    """Ranked data with profile: the retriever that ranked it, with its encoder (what the run records), and k."""
    retriever = run.retriever
    return ["--use_profile", "--is_ranked", "--retriever", retriever.retriever,
            *(["--retriever_model", retriever.retriever_model] if retriever.retriever_model else []),
            "--num_retrieved", str(run.k)]


def _encoder(run: Run) -> dict[str, str | None]:
    return {"encoder": run.retriever.retriever_model if run.retriever is not None else None}


def train_stage(layout: Layout, run: Run) -> Stage:
    """`accelerate launch ... training/train.py`: ranked train/validation data with profile, the config without
    (or with retrieval on the fly)."""
    experiment, folder = layout.experiment, layout.run_dir(run) / "train"
    needs = []
    if run.retriever is None or not run.retriever.ranked:
        data = ["--train_data", run.config, "--validation_data", run.config, *_data_flags(experiment)]
        profile = ["--no-use_profile"] if run.retriever is None else _retrieval_flags(run)
    else:
        data = ["--train_data", str(layout.ranked(run.config, run.retriever.name, "train")),
                "--validation_data", str(layout.ranked(run.config, run.retriever.name, "validation"))]
        profile = _ranked_flags(run)
        needs = [rank_name(run.config, run.retriever, split) for split in ("train", "validation")]
    command = [*LAUNCH, "--config_file", run.model.accelerate_config,
               "training/train.py", *data, "--task", run.config, "--model_name", run.model.model_name,
               "--output_dir", str(folder), *profile, "--resume_from_checkpoint", "latest",
               *(["--cache_dir", experiment.cache_dir] if experiment.cache_dir else []), *as_flags(run.model.train)]
    return layout.stage(f"train {run.key}", "train", folder, command, [FINAL_DIR], needs, data=not needs,
                        models={"model": run.model.model_name, **_encoder(run)})


def trained_model(layout: Layout, run: Run) -> str:
    """The model a run generates with: the fine-tuned one, else the model itself; a method's is its baseline's."""
    if run.method is not None:
        return trained_model(layout, run.baseline)
    return str(layout.run_dir(run) / "train" / FINAL_DIR) if run.model.mode == "fine_tuned" else run.model.model_name


def _model_needs(run: Run) -> list[str]:
    """The training stage a run's model comes from (its own, or its baseline's for a method), if any."""
    return [f"train {run.baseline.key if run.method is not None else run.key}"] \
        if run.model.mode == "fine_tuned" else []


def generate_stage(layout: Layout, run: Run) -> Stage:
    """evaluate_llm.py on the evaluated split: ranked data with profile, the config itself without (or with
    retrieval on the fly); evaluate_per_user.py for a per-user method."""
    if run.method is not None:
        return per_user_generate_stage(layout, run)
    experiment, folder = layout.experiment, layout.run_dir(run) / "generate"
    ranked = run.retriever is not None and run.retriever.ranked
    if not ranked:
        data = ["--validation_data", run.config, "--split", experiment.eval_split, *_data_flags(experiment)]
        profile = [] if run.retriever is None else _retrieval_flags(run)
        needs = []
    else:
        data = ["--validation_data", str(layout.ranked(run.config, run.retriever.name, experiment.eval_split)),
                "--task", run.config, "--split", experiment.eval_split]
        profile = _ranked_flags(run)
        needs = [rank_name(run.config, run.retriever, experiment.eval_split)]
    command = [sys.executable, "evaluation/evaluate_llm.py", *data, "--model_name", trained_model(layout, run),
               "--output_dir", str(folder), *profile,
               *(["--cache_dir", experiment.cache_dir] if experiment.cache_dir else []),
               *as_flags({**experiment.evaluate, **run.model.evaluate})]
    return layout.stage(f"generate {run.key}", "generate", folder, command, [PREDICTIONS_FILE, GOLDS_FILE],
                        needs + _model_needs(run), data=not ranked,
                        models={"model": trained_model(layout, run), **_encoder(run)})


def _per_user_data(layout: Layout, run: Run) -> list[str]:
    """The evaluated split of the config, as the run without profile reads it: the same rows and data record."""
    experiment = layout.experiment
    return ["--data", run.config, "--split", experiment.eval_split, *_data_flags(experiment),
            *(["--cache_dir", experiment.cache_dir] if experiment.cache_dir else [])]


# OPPU's task LoRA (TamSiuhin/OPPU, task_LoRA.py: its LoraConfig and TrainingArguments) as train.py flags: the
# numbers of its per-user adapters (train_per_user.py's defaults) with 3 epochs, batches grouped by length.
TASK_LORA = {"use_lora": True, "lora_r": 8, "lora_alpha": 8, "lora_dropout": 0.05, "learning_rate": 1e-4,
             "weight_decay": 0.01, "lr_scheduler": "linear", "warmup_ratio": 0.1, "num_train_epochs": 3,
             "per_device_train_batch_size": 16, "max_grad_norm": 0.3, "group_by_length": True}


def task_lora_dir(layout: Layout, run: Run) -> Path:
    """Where a per-user adapters method's task LoRA is trained (its adapter: `final/` in it)."""
    return layout.run_dir(run) / "task_lora"


def uses_task_lora(run: Run) -> bool:
    """A per-user adapters method on a zero-shot model with its task LoRA on (a fine-tuned model's own training is
    its task model)."""
    return (run.method is not None and run.method.method == "per_user_adapters" and run.model.mode == "zero_shot"
            and run.method.task_lora is not None)


def task_lora_stage(layout: Layout, run: Run) -> Stage:
    """`accelerate launch training/train.py --use_lora` on the config's train split (no validation: nothing is
    chosen on a split), with the method's prompt settings and OPPU's task-LoRA settings (the method's task_lora
    flags win): what the per-user adapters then train on and are evaluated with."""
    experiment, method, folder = layout.experiment, run.method, task_lora_dir(layout, run)
    prompt = {"use_profile": False, **{key: value for key, value in method.train.items() if key in PROMPT_SETTINGS}}
    command = [*LAUNCH, "--config_file", method.accelerate_config or run.model.accelerate_config,
               "training/train.py", "--train_data", run.config, *_data_flags(experiment), "--task", run.config,
               "--model_name", run.model.model_name, "--output_dir", str(folder), "--resume_from_checkpoint", "latest",
               *(["--cache_dir", experiment.cache_dir] if experiment.cache_dir else []),
               *as_flags({**TASK_LORA, **prompt, **method.task_lora})]
    return layout.stage(f"train {run.key} task LoRA", "train", folder, command, [FINAL_DIR], [], data=True,
                        models={"model": run.model.model_name,
                                "encoder": method.train.get("retriever_model") if prompt["use_profile"] else None})


def per_user_model(layout: Layout, run: Run) -> str:
    """The model a method's per-user files are made and evaluated on: its task LoRA where it has one, else the
    model its run without profile generates with."""
    return str(task_lora_dir(layout, run) / FINAL_DIR) if uses_task_lora(run) else trained_model(layout, run)


def _per_user_needs(run: Run) -> list[str]:
    """The training a method's per-user stages start from: its task LoRA, or its baseline's training."""
    return [f"train {run.key} task LoRA"] if uses_task_lora(run) else _model_needs(run)


def per_user_train_stage(layout: Layout, run: Run) -> Stage:
    """A method's per-user files for the evaluated split's users: `accelerate launch training/train_per_user.py`
    (on a task adapter: the fine-tuned model's LoRA, or the method's task LoRA on a zero-shot model) or
    training/train_style_vectors.py (with the generation settings the run is evaluated with)."""
    experiment, method, folder = layout.experiment, run.method, layout.run_dir(run) / "train"
    if method.method == "per_user_adapters":
        base = per_user_model(layout, run)
        models = {"model": base}
        if uses_task_lora(run) or run.model.mode == "fine_tuned" and run.model.train.get("use_lora"):
            model = ["--model_name", run.model.model_name, "--task_adapter", base]
            models["base model"] = run.model.model_name
        else:
            model = ["--model_name", base]
        command = [*LAUNCH, "--config_file", method.accelerate_config or run.model.accelerate_config,
                   "training/train_per_user.py", *model, *_per_user_data(layout, run), "--output_dir", str(folder),
                   *as_flags(method.train)]
        return layout.stage(f"train {run.key}", "train", folder, command, [PER_USER_REPORT_FILE],
                            _per_user_needs(run), data=True, models=models)
    command = [sys.executable, "training/train_style_vectors.py", "--model_name", trained_model(layout, run),
               *_per_user_data(layout, run), "--output_dir", str(folder),
               *as_flags({**experiment.evaluate, **run.model.evaluate, **method.train})]
    chosen = [] if method.train.get("selection_split") == "none" else [STYLE_SELECTION_FILE]
    return layout.stage(f"train {run.key}", "train", folder, command, chosen, _model_needs(run), data=True,
                        models={"model": trained_model(layout, run)})


METHOD_FLAGS = {"per_user_adapters": "--adapters_dir", "style_vectors": "--style_vectors_dir"}


def per_user_generate_stage(layout: Layout, run: Run) -> Stage:
    """evaluate_per_user.py on the evaluated split with the method's per-user files (or summaries): a zero-shot
    run folder, scored like the others."""
    experiment, method, folder = layout.experiment, run.method, layout.run_dir(run) / "generate"
    uses = ["--use_summary"] if method.method == "profile_summary" else [METHOD_FLAGS[method.method],
                                                                          str(layout.run_dir(run) / "train")]
    command = [sys.executable, "evaluation/evaluate_per_user.py", "--model_name", per_user_model(layout, run),
               *_per_user_data(layout, run), "--output_dir", str(folder), *uses,
               *as_flags({**experiment.evaluate, **run.model.evaluate, **method.evaluate})]
    needs = _per_user_needs(run) + ([f"train {run.key}"] if method.method in TRAINED_METHODS else [])
    return layout.stage(f"generate {run.key}", "generate", folder, command, [PREDICTIONS_FILE, GOLDS_FILE], needs,
                        data=True, models={"model": per_user_model(layout, run)})


def score_stage(layout: Layout, run: Run) -> Stage:
    """The benchmark's scorer, eval_task.py, on the predictions against the golds of the same rows."""
    scoring = layout.experiment.scoring
    folder = layout.scores(run).parent
    task, setting = parse_config_name(run.config)
    command = [sys.executable, "evaluation/eval_task.py", "--golds_json", str(layout.golds(run)),
               "--preds_json", str(layout.predictions(run)), "--task_name", scorer_task_name(task, setting),
               "--output_file", str(layout.scores(run)), "--per_sample_file", str(layout.per_sample(run)),
               *as_flags(scoring)]
    return layout.stage(f"score {run.key}", "score", folder, command,
                        [layout.per_sample(run).name, layout.scores(run).name], [f"generate {run.key}"])


def plan(experiment: Experiment) -> list[Stage]:
    """Every stage of the experiment, in an order where each one's inputs come first; each names the stages it
    needs (the dependency graph an executor runs)."""
    layout = Layout(experiment)
    stages = [rank_stage(layout, config, retriever, split)
              for config in experiment.configs for retriever in experiment.retrievers
              for split in experiment.ranked_splits(retriever)]
    for run in experiment.runs():
        if run.method is not None:
            if uses_task_lora(run):
                stages.append(task_lora_stage(layout, run))
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
