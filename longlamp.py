"""LongLaMP: the Hugging Face `datasets` builder for every task and setting of the benchmark.

    import longlamp
    ds = longlamp.load("product_review", split="validation")          # user setting, from the Hub
    ds = datasets.load_dataset("longlamp", "topic_writing_temporal")    # after `import longlamp`

Sources, in order of preference, all producing the same rows and ids:
1. the Hub repository `LongLaMP/LongLaMP` (or `repo_id`/`revision`), through `huggingface_hub`, so that
   HF_ENDPOINT, the local cache, HF_HUB_OFFLINE and tokens behave as everywhere else;
2. `data_dir` holding the same layout (a mirror: `<config>/<split>-*.parquet`, or the config folder itself);
3. `data_dir` holding LaMP-style JSON (`<split>_questions.json` with `<split>_outputs.json`).
The email task is built from a manual download of the Avocado collection (see `AVOCADO_INSTRUCTIONS`).
Row ids, split names and type normalisation are documented in docs/dataset.md.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Protocol

import datasets
import pyarrow.parquet as pq

from longlamp_errors import DataError
from longlamp_io import folder_stat_digest
from longlamp_tasks import CITATION, SETTINGS, TASKS, Task, config_names, parse_config_name

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
LongLaMP is a benchmark for personalized long-text generation: given a task input and the profile of one user
(their earlier texts), generate the long text that this user wrote. Four tasks (email completion, abstract
generation, product review writing, Reddit topic writing), each in a user setting (test users unseen in training)
and a temporal setting (each user's latest items are the targets, earlier items the profile).
"""
_HOMEPAGE = "https://longlamp-benchmark.github.io"
_LICENSE = "See the LongLaMP data card; the email task derives from the Avocado collection (LDC2015T03, licensed)."
DEFAULT_REPO_ID = "LongLaMP/LongLaMP"

# The source names the validation split `val` (Hub parquet) or `dev` (LaMP-style JSON and Avocado files).
SOURCE_SPLIT_NAMES = {"train": ("train",), "validation": ("val", "dev", "validation"), "test": ("test",)}

AVOCADO_INSTRUCTIONS = """\
The email_generation task is built from the Avocado Research Email Collection (LDC2015T03), which is licensed and
cannot be downloaded automatically. Get it from https://catalog.ldc.upenn.edu/LDC2015T03, then make one folder
holding:
  - the collection's zip archives (the files in `avocado-1.0.2/data/text/`, directly, under `text/`, or the
    release folder `avocado-1.0.2/` itself with its `data/text/`), and
  - the benchmark's question files `train_questions.json`, `dev_questions.json` and `test_questions.json`, in
    `<folder>/user/` and `<folder>/temporal/` (or directly in `<folder>/` for a single setting).
and pass it as `data_dir`: longlamp.load("email_generation_user", data_dir="<folder>")."""


def features_for(task: Task) -> datasets.Features:
    """The declared schema of a task's rows (profile items as a `datasets.List` of structs)."""
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            task.user_column: datasets.Value("string"),
            "input": datasets.Value("string"),
            "output": datasets.Value("string"),
            "profile": datasets.List({field: datasets.Value(dtype) for field, dtype in task.profile_fields.items()}),
        }
    )


class LongLaMPConfig(datasets.BuilderConfig):
    """One task in one setting; `source_repo_id` and `revision` choose the Hub source.

    `local_fingerprint` summarises the files of a local `data_dir` (set by the builder): the datasets cache
    key includes it, so editing local files prepares the config again instead of serving stale rows.
    """

    def __init__(self, *, task: str, setting: str, source_repo_id: str = DEFAULT_REPO_ID, revision: str | None = None,
                 local_fingerprint: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.task, self.setting, self.source_repo_id, self.revision = task, setting, source_repo_id, revision
        self.local_fingerprint = local_fingerprint

    @property
    def source_name(self) -> str:
        """The canonical config name, also for the bare-task aliases ("product_review" -> "..._user")."""
        return f"{self.task}_{self.setting}"


def _make_config(name: str) -> LongLaMPConfig:
    task, setting = parse_config_name(name)
    alias = "" if name.endswith(setting) else f" (alias of {task.name}_{setting})"
    return LongLaMPConfig(name=name, task=task.name, setting=setting, version=datasets.Version("1.0.0"),
                          description=f"LongLaMP {task.name}, {setting} setting{alias}.")


class LongLaMP(datasets.GeneratorBasedBuilder):
    """All LongLaMP tasks and settings (see the module docstring for sources and conventions)."""

    BUILDER_CONFIG_CLASS = LongLaMPConfig
    BUILDER_CONFIGS = [_make_config(name) for name in config_names()]
    DEFAULT_CONFIG_NAME = "product_review_user"
    # Rows can carry profiles of thousands of items: flush to disk often to keep memory bounded.
    DEFAULT_WRITER_BATCH_SIZE = 16

    def __init__(self, *args, **kwargs):
        # DatasetBuilder has a `repo_id` of its own (a cache namespace): here it names the source repository.
        if "repo_id" in kwargs:
            kwargs["source_repo_id"] = kwargs.pop("repo_id")
        if kwargs.get("data_dir") and "local_fingerprint" not in kwargs:
            kwargs["local_fingerprint"] = folder_stat_digest(Path(kwargs["data_dir"]).expanduser())
        super().__init__(*args, **kwargs)

    @property
    def task(self) -> Task:
        return TASKS[self.config.task]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION + "\n" + (self.config.description or ""),
            features=features_for(self.task),
            homepage=_HOMEPAGE,
            citation=CITATION,
            license=_LICENSE,
        )

    def _split_generators(self, dl_manager):
        if not self.task.public:
            return self._avocado_split_generators(dl_manager)
        data_dir = self.config.data_dir
        if data_dir:
            files = LocalFiles(Path(data_dir).expanduser())
        elif isinstance(dl_manager, datasets.StreamingDownloadManager) and not _hub_offline():
            files = HubFiles(self.config.source_repo_id, self.config.revision)
        else:
            files = LocalFiles(self._hub_snapshot())
        source = locate_public_source(files, self.config.source_name)
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"source": source, "split": split})
            for split in SOURCE_SPLIT_NAMES
            if source.has_split(split)
        ]

    def _hub_snapshot(self) -> Path:
        """Download (or find in the cache) only this config's files of the Hub repository."""
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            self.config.source_repo_id,
            repo_type="dataset",
            revision=self.config.revision,
            allow_patterns=[f"*{self.config.source_name}*"],
        )
        return Path(folder)

    def _generate_examples(self, source: "Source", split: str):
        for index, raw, where in source.rows(split):
            row = normalize_row(self.task, raw, where)
            row["id"] = row["id"] or example_id(self.config.source_name, split, index)
            yield row["id"], row

    # --- the Avocado email task ----------------------------------------------------------------------------

    def _avocado_split_generators(self, dl_manager):
        manual_dir = dl_manager.manual_dir or self.config.data_dir
        question_files = find_avocado_questions(manual_dir, self.config.setting)
        messages = read_avocado_messages(manual_dir, question_files)
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"source": AvocadoSource(path, messages), "split": split})
            for split, path in question_files.items()
        ]


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE: streaming then reads the files that an earlier download left in the cache."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def load(config: str = LongLaMP.DEFAULT_CONFIG_NAME, split: str | None = None, *, data_dir: str | None = None,
         cache_dir: str | None = None, streaming: bool = False, **config_kwargs):
    """Prepare (or stream) one LongLaMP config and return a `Dataset`, or a `DatasetDict` when split is None."""
    builder = LongLaMP(config_name=config, data_dir=data_dir, cache_dir=cache_dir, **config_kwargs)
    if streaming:
        return builder.as_streaming_dataset(split=split)
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as error:
        if isinstance(error.__cause__, DataError):  # datasets wraps it; the cause is the useful message
            raise error.__cause__ from None
        raise
    return builder.as_dataset(split=split)


def load_split(source: str, split: str = "validation", *, task: str | None = None, data_dir: str | None = None,
               cache_dir: str | None = None, revision: str | None = None):
    """One split from a config name or a local file, for the command-line tools (`--train_data` and friends).

    `source` may be a config name, a `save_to_disk` folder, a parquet/Arrow/JSON/JSONL file (e.g. ranked data),
    or a LaMP-style `*_questions.json` (its `*_outputs.json` beside it is read when present; needs `task`).
    `revision` (branch, tag or commit of the Hub source) applies to config names only.
    """
    path = Path(source).expanduser()
    if not path.exists():
        if source in LongLaMP.builder_configs:
            return load(source, split, data_dir=data_dir, cache_dir=cache_dir, revision=revision)
        raise FileNotFoundError(f"{source!r} is neither a file or folder nor a LongLaMP config "
                                f"({', '.join(config_names())})")
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    if path.name.endswith("_questions.json"):
        if task is None:
            raise ValueError(f"{path}: reading LaMP-style questions needs the task (e.g. task='product_review')")
        task_ = TASKS[parse_config_name(task)[0].name]
        rows = [dict(normalize_row(task_, raw, where), id=raw.get("id") or example_id(task, split, index))
                for index, raw, where in LampJsonSource({split: path}).rows(split)]
        return datasets.Dataset.from_list(rows, features=features_for(task_))
    if path.suffix == ".arrow":  # an Arrow stream, as datasets caches and rank_dataset writes: memory-mapped as is
        return datasets.Dataset.from_file(str(path))
    kind = {".parquet": "parquet", ".json": "json", ".jsonl": "json"}.get(path.suffix)
    if kind is None:
        raise ValueError(f"{path}: unsupported file type; expected .parquet, .arrow, .json, .jsonl or a save_to_disk "
                         "folder")
    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=cache_dir)


def load_rows(source: str, split: str = "validation", *, task: str | None = None, data_dir: str | None = None,
              cache_dir: str | None = None, revision: str | None = None, limit: int | None = None):
    """The rows of one split of any source (`load_split`'s: a config name, a file, a folder, LaMP-style questions)
    as a `datasets.Dataset`, its first `limit` rows when given: the one loader of training, zero-shot and per-user
    runs. A source that cannot be loaded is a DataError naming it and the split."""
    try:
        dataset = load_split(source, split, task=task, data_dir=data_dir, cache_dir=cache_dir, revision=revision)
    except (FileNotFoundError, KeyError) as error:
        raise DataError(f"{source}: cannot load the {split} split: {error}") from None
    return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset


# --- ids and normalisation ------------------------------------------------------------------------------------


def example_id(config_name: str, split: str, index: int) -> str:
    """Stable id of the index-th row of a split, in source order: "product_review_user-validation-17".

    Source order is the sorted shard file names, then row order within each shard, so the same source
    revision gives the same ids on every machine. Sources that carry ids (LaMP-style JSON) keep theirs.
    """
    return f"{config_name}-{split}-{index}"


def normalize_row(task: Task, raw: Mapping, where: str) -> dict:
    """One source row in the declared schema; `where` (file and row) goes into every error message."""
    missing = [column for column in (task.user_column, "input", "profile") if column not in raw]
    if task.user_column in missing and task.name == "email_generation":
        missing.remove(task.user_column)  # the user setting's question files carry no user id
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; a {task.name} row needs "
                        f"{[task.user_column, 'input', 'output', 'profile']}")
    if not isinstance(raw["input"], str):
        raise DataError(f"{where}: field 'input' must be a string, got {type(raw['input']).__name__}")
    profile = raw["profile"]
    if profile is None:
        profile = []
    if not isinstance(profile, (list, tuple)):
        raise DataError(f"{where}: field 'profile' must be a list of items, got {type(profile).__name__}")
    return {
        "id": _to_string(raw.get("id"), f"{where}, field 'id'"),
        task.user_column: _to_string(raw.get(task.user_column), f"{where}, field {task.user_column!r}"),
        "input": raw["input"],
        "output": _to_string(raw.get("output"), f"{where}, field 'output'"),
        "profile": [_normalize_item(task, item, f"{where}, profile item {i}") for i, item in enumerate(profile)],
    }


def _normalize_item(task: Task, item, where: str) -> dict:
    if not isinstance(item, Mapping):
        raise DataError(f"{where}: expected an object with fields {list(task.profile_fields)}, got {item!r:.80}")
    missing = [field for field in task.profile_fields if field not in item]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; {task.name} profile items have "
                        f"{list(task.profile_fields)}")
    convert = {"string": _to_string, "float64": _to_float, "int32": _to_int}
    return {field: convert[dtype](item[field], f"{where}, field {field!r}")
            for field, dtype in task.profile_fields.items()}


def _to_string(value, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"{where}: expected a string, got {value!r:.80}")


def _to_float(value, where: str) -> float | None:
    """Ratings are stored as numbers or as text ("5.0"); both become a float."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number (or numeric text), got {value!r:.80}") from None


def _to_int(value, where: str) -> int | None:
    """Years are stored as ints, floats (2001.0) or text ("2001"); all become an int."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a whole number (or numeric text), got {value!r:.80}") from None
    if not number.is_integer():
        raise DataError(f"{where}: expected a whole number, got {value!r:.80}")
    return int(number)


# --- public sources: parquet shards or LaMP-style JSON ------------------------------------------------------


class Source(Protocol):
    """Where a config's rows live; yields (index, raw row, "file, row N") per split in a stable order."""

    def has_split(self, split: str) -> bool: ...

    def rows(self, split: str) -> Iterator[tuple[int, dict, str]]: ...


@dataclass
class ParquetSource(Source):
    """Parquet shards per split, read one record batch at a time (shards can be gigabytes)."""

    files: "FileTree"
    shards: Mapping[str, list[str]]
    batch_size: int = 64

    def has_split(self, split: str) -> bool:
        return bool(self.shards.get(split))

    def rows(self, split: str):
        index = 0
        for shard in self.shards[split]:
            where = self.files.describe(shard)
            try:
                with self.files.open(shard) as handle:
                    for batch in pq.ParquetFile(handle).iter_batches(batch_size=self.batch_size):
                        for raw in batch.to_pylist():
                            yield index, raw, f"{where}, row {index}"
                            index += 1
            except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(f"{where}: not a readable parquet file ({error})") from error


@dataclass
class LampJsonSource(Source):
    """LaMP-style `<split>_questions.json` plus, when present, `<split>_outputs.json` (local files)."""

    questions: Mapping[str, Path]

    def has_split(self, split: str) -> bool:
        return split in self.questions

    def rows(self, split: str):
        path = self.questions[split]
        questions = read_questions(path)
        outputs_path = lamp_outputs_path(path)
        outputs = read_outputs(outputs_path) if outputs_path.exists() else None
        if outputs is not None:
            question_ids = [str(q.get("id")) for q in questions if isinstance(q, Mapping)]
            check_same_ids(question_ids, list(outputs), path, outputs_path)
        for index, question in enumerate(questions):
            if not isinstance(question, Mapping):
                raise DataError(f"{path}, question {index}: expected an object, got {question!r:.80}")
            if outputs is not None:
                question = {**question, "output": outputs[str(question["id"])]}
            yield index, question, f"{path}, question {index}"


def lamp_outputs_path(questions_path: Path) -> Path:
    return questions_path.with_name(questions_path.name.replace("_questions", "_outputs"))


def read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: invalid JSON ({error})") from error
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from error


def read_outputs(path: Path) -> dict[str, str]:
    """`*_outputs.json` as a plain list of {id, output} or as {"task", "golds": [...]}."""
    data = read_json(path)
    golds = data.get("golds") if isinstance(data, Mapping) else data
    if not isinstance(golds, list) or not all(isinstance(g, Mapping) and "id" in g and "output" in g for g in golds):
        raise DataError(f'{path}: expected [{{"id", "output"}}, ...] or {{"task", "golds": [...]}}')
    return {str(g["id"]): g["output"] for g in golds}


def check_same_ids(question_ids: list[str], output_ids: list[str], questions: Path, outputs: Path) -> None:
    missing, extra = set(question_ids) - set(output_ids), set(output_ids) - set(question_ids)
    if missing or extra:
        raise DataError(f"{outputs} does not match {questions}: {len(missing)} question id(s) without an output "
                        f"(e.g. {sorted(missing)[:3]}), {len(extra)} output id(s) without a question "
                        f"(e.g. {sorted(extra)[:3]})")


class FileTree(Protocol):
    """A folder of files, local or on the Hub: list relative paths, open one, name one in messages."""

    def list(self) -> list[str]: ...

    def open(self, relative: str): ...

    def describe(self, relative: str) -> str: ...


@dataclass
class LocalFiles:
    root: Path

    def list(self) -> list[str]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"data_dir {str(self.root)!r} is not a directory")
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def open(self, relative: str):
        return open(self.root / relative, "rb")

    def describe(self, relative: str) -> str:
        return str(self.root / relative)


@dataclass
class HubFiles:
    """A Hub dataset repository read through `HfFileSystem`: listing and byte ranges, no full download."""

    repo_id: str
    revision: str | None

    def __post_init__(self):
        from huggingface_hub import HfFileSystem

        self.fs = HfFileSystem()
        self.root = f"datasets/{self.repo_id}@{self.revision}" if self.revision else f"datasets/{self.repo_id}"

    def list(self) -> list[str]:
        return sorted(path[len(self.root) + 1:] for path in self.fs.find(self.root))

    def open(self, relative: str):
        return self.fs.open(f"{self.root}/{relative}", "rb", block_size=8 * 2**20)

    def describe(self, relative: str) -> str:
        return f"hf://{self.root}/{relative}"


def locate_public_source(files: FileTree, config_name: str) -> Source:
    """Find a config's files: parquet shards (preferred) or LaMP-style JSON.

    Shards are discovered by listing, never by guessed names: a file belongs to the config when a folder on its
    path is named after the config (or, for a folder holding one config, when none is), and to a split when its
    name starts with the split (`train-00000-of-00007.parquet`, `val.parquet`) or a folder is named after it.
    """
    paths = files.list()
    in_config = [p for p in paths if config_name in p.split("/")[:-1]] or paths
    shards = {split: [p for p in in_config if p.endswith(".parquet") and _split_of(p) == split]
              for split in SOURCE_SPLIT_NAMES}
    if any(shards.values()):
        return ParquetSource(files, shards)
    questions = {}
    if isinstance(files, LocalFiles):
        for path in in_config:
            split = _split_of(path, suffix="_questions.json")
            if split and split not in questions:
                questions[split] = files.root / path
    if questions:
        return LampJsonSource(questions)
    raise FileNotFoundError(
        f"{files.describe('')}: no data for config {config_name!r}: expected parquet shards such as "
        f"{config_name}/train-00000-of-00001.parquet, or LaMP-style {config_name}/train_questions.json"
    )


def _split_of(path: str, suffix: str = ".parquet") -> str | None:
    """The split a data file belongs to, from its name or its folder (None when neither says)."""
    *folders, name = path.split("/")
    for split, names in SOURCE_SPLIT_NAMES.items():
        for source_name in names:
            if suffix == ".parquet":
                if (name.startswith(source_name + "-") or name == source_name + suffix
                        or (folders and folders[-1] == source_name)):
                    return split
            elif name == source_name + suffix:
                return split
    return None


# --- the Avocado email task -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


def find_avocado_questions(manual_dir: str | None, setting: str) -> dict[str, Path]:
    """The question file of each split for `setting`, or an error that says exactly what to get."""
    if not manual_dir:
        raise FileNotFoundError("The email_generation task needs a manual download (data_dir).\n"
                                + AVOCADO_INSTRUCTIONS)
    root = Path(manual_dir).expanduser()
    folder = root / setting if (root / setting).is_dir() else root
    questions = {}
    for split, names in SOURCE_SPLIT_NAMES.items():
        found = [folder / f"{name}_questions.json" for name in names if (folder / f"{name}_questions.json").exists()]
        if found:
            questions[split] = found[0]
    missing = [f"{SOURCE_SPLIT_NAMES[s][-2] if s == 'validation' else s}_questions.json"
               for s in SOURCE_SPLIT_NAMES if s not in questions]
    if missing or not _avocado_archives(root):
        what = f"question files {missing} in {folder}" if missing else f"Avocado zip archives in {root}"
        raise FileNotFoundError(f"Missing {what}.\n" + AVOCADO_INSTRUCTIONS)
    return questions


def _avocado_archives(root: Path) -> list[Path]:
    """The zip archives in `root`, in `root/text/` or, for the release folder itself, in `root/data/text/`."""
    return sorted(set(root.glob("*.zip")) | set(root.glob("text/*.zip")) | set(root.glob("data/text/*.zip")))


def read_avocado_messages(manual_dir: str, question_files: Mapping[str, Path]) -> dict[str, Email]:
    """Parse, archive by archive, only the messages that the question files reference."""
    import mailparser

    needed: set[str] = set()
    for path in question_files.values():
        for index, question in enumerate(read_questions(path)):
            try:
                needed.add(question["input"])
                needed.update(item["text"] for item in question["profile"])
            except (KeyError, TypeError) as error:
                raise DataError(f"{path}, question {index}: expected 'input' and 'profile' items with 'text' "
                                f"holding Avocado message ids ({error!r})") from error
    messages: dict[str, Email] = {}
    for archive in _avocado_archives(Path(manual_dir).expanduser()):
        logger.info("reading %s", archive)
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                message_id = os.path.basename(member.filename)
                if member.is_dir() or message_id not in needed or message_id in messages:
                    continue
                mail = mailparser.parse_from_bytes(zf.read(member))
                messages[message_id] = Email(subject=mail.subject, body=mail.body.strip())
    absent = needed - set(messages)
    if absent:
        raise DataError(f"{len(absent)} referenced message(s) are not in the Avocado archives under {manual_dir} "
                        f"(e.g. {sorted(absent)[:3]}); is the collection complete?")
    return messages


def read_questions(path: Path) -> list:
    """A LaMP-style questions file: a list, or {"task", "golds": [...]} as the Avocado script writes test."""
    questions = read_json(path)
    if isinstance(questions, Mapping) and "golds" in questions:
        questions = questions["golds"]
    if not isinstance(questions, list):
        raise DataError(f"{path}: expected a list of questions, got {type(questions).__name__}")
    return questions


@dataclass
class AvocadoSource(Source):
    """Question files resolved against parsed messages, as the benchmark's Avocado script does."""

    questions: Path
    messages: Mapping[str, Email]

    def has_split(self, split: str) -> bool:
        return True

    def rows(self, split: str):
        task = TASKS["email_generation"]
        for index, question in enumerate(read_questions(self.questions)):
            where = f"{self.questions}, question {index}"
            email_ = self.messages[question["input"]]
            length = question.get("content_length")
            if not isinstance(length, int) or length < 0:
                raise DataError(f"{where}: 'content_length' must be a non-negative integer, got {length!r}")
            words = email_.body.split()
            row = {
                "id": question.get("id"),
                task.user_column: question.get(task.user_column),
                "input": task.input_template.format(subject=email_.subject, text=" ".join(words[:length])),
                "output": " ".join(words[length:]),
                "profile": [
                    {"id": item.get("id"), "title": self.messages[item["text"]].subject,
                     "text": self.messages[item["text"]].body}
                    for item in question["profile"]
                ],
            }
            yield index, row, where


def register_with_datasets() -> None:
    """Let `datasets.load_dataset("longlamp", ...)` find this builder (datasets >= 4 runs no scripts).

    datasets resolves a name first in its registry of packaged builders (csv, json, parquet...), which is the
    one route that needs no script, no network and no `trust_remote_code`. That registry is private, and its
    factory insists on finding data files in `data_dir` (or the working directory) even for builders that locate
    their own data, such as this one for the Hub: a factory subclass answers for "longlamp" alone without
    that look-up. tests/test_load_dataset.py pins both on the installed version; when datasets' internals
    change, registration is skipped with a warning and `longlamp.load` still works.
    """
    import inspect
    import sys

    try:
        from datasets import load as datasets_load
        from datasets.data_files import DataFilesDict
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES, _hash_python_lines

        base = datasets_load.PackagedDatasetModuleFactory
        DatasetModule = datasets_load.DatasetModule
    except (ImportError, AttributeError) as error:
        logger.warning("datasets.load_dataset('longlamp') is unavailable with this datasets version (%s); "
                       "use longlamp.load() instead", error)
        return

    class PackagedOrLongLaMPModuleFactory(base):
        def get_module(self):
            if self.name == "longlamp" and self.data_dir is None and self.data_files is None:
                module_path, module_hash = _PACKAGED_DATASETS_MODULES["longlamp"]
                return DatasetModule(module_path, module_hash,
                                     {"dataset_name": "longlamp", "data_files": DataFilesDict()})
            return super().get_module()

    source = inspect.getsource(sys.modules[__name__]).splitlines()
    _PACKAGED_DATASETS_MODULES.setdefault("longlamp", (__name__, _hash_python_lines(source)))
    if not getattr(base, "answers_for_longlamp", False):
        PackagedOrLongLaMPModuleFactory.answers_for_longlamp = True
        datasets_load.PackagedDatasetModuleFactory = PackagedOrLongLaMPModuleFactory


register_with_datasets()

__all__ = ["LongLaMP", "LongLaMPConfig", "load", "load_split", "load_rows", "features_for", "example_id", "SETTINGS"]
