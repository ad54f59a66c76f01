"""What every command shares: the entry-point contract and the one vocabulary of flags.

Contract: `main(argv) -> int`, run through `run_command`. Bad input (a `ValueError` raised by the project's own
checks, which its errors subclass: data, config, model-loading, run-folder and usage errors) becomes one
`<prog>: error: <message>` line on stderr and exit code 2, with no traceback: the message says what to fix.
Anything else, a ValueError raised inside a library included, is a bug and keeps its traceback. Every Hub request
of a command gives up after LONGLAMP_HUB_TIMEOUT seconds (60) without an answer (`limit_hub_requests`).

Vocabulary: flags are fields of argument dataclasses, one dataclass per concept (the data here, the prompt, the
run folder, logging; the model, backend and decoding in `generation.cli`; retrieval in `retrieval.cli`; scoring in
`scoring.cli`; publishing in `publishing.cli`), combined by each command the way TRL's scripts combine
`ScriptArguments` and `ModelConfig` through transformers' `HfArgumentParser`. `ArgumentParser` below follows that
parser (dataclass types in, instances out, `help` and `aliases` in the field metadata as `HfArg` writes them) and
adds what the commands need: `--no_x` for every switch, a settings file (`--config FILE.{json,yaml,yml}`, the
command line winning over it), errors as one line, every default in `--help`, and a fine-tuned model's trained
settings as defaults. It is not transformers' own class: importing that costs seconds and would make the light
scoring commands need transformers. docs/flags.md is generated from the dataclasses (scripts/make_flags_doc.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from longlamp_errors import ConfigError, UsageError

EXIT_BAD_INPUT = 2
logger = logging.getLogger("longlamp")
SETTINGS_SUFFIXES = (".json", ".yaml", ".yml")
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are 32-bit unsigned


def json_object(flag: str, text: str | None) -> dict:
    """The JSON object a flag such as --chat_template_kwargs holds ({} when not given); UsageError naming the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{flag} is not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object, got {text!r}")
    return value



def as_flags(options: dict) -> list[str]:
    """`{"use_lora": True, "max_steps": 4}` as `--use_lora --max_steps 4` (False: `--no-name`, None: left out): the
    command line the parser reads back as the same values (the runner's stage commands, tests' runs)."""
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

# The project's top-level modules and packages (pyproject.toml's); "__main__" is a command run as a script.
PROJECT_MODULES = frozenset({"longlamp", "longlamp_tasks", "longlamp_errors", "longlamp_io", "longlamp_runs",
                             "longlamp_cli", "longlamp_prompts", "retrieval", "scoring", "generation",
                             "personalization", "publishing", "training", "evaluation", "benchmark_runner",
                             "__main__"})


def raised_by_the_project(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is the project's own code: a check that refused on
    purpose. A ValueError raised inside a library (torch, accelerate, ...) is an unexpected failure: a bug to see.
    Judged by the frame's module name, so it holds for an editable and a regular install alike."""
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    if trace is None:
        return True
    module = trace.tb_frame.f_globals.get("__name__", "")
    return module.split(".")[0] in PROJECT_MODULES


def run_command(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
                prog: str | None = None) -> int:
    """Call main(argv); a ValueError the project raised becomes one error line and exit code 2; one raised inside
    a library keeps its traceback (it is not a refusal the project wrote a message for). Every Hub request of the
    command gives up after the toolkit's Hub timeout (`limit_hub_requests`): model downloads included."""
    try:
        limit_hub_requests()
        return main(argv) or 0
    except ValueError as error:
        if not raised_by_the_project(error):
            raise
        print(f"{prog or Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


HUB_TIMEOUT_S = 60.0  # seconds one Hub request may wait for an answer (LONGLAMP_HUB_TIMEOUT overrides)


def hub_timeout() -> float:
    """Seconds one Hub request may wait for an answer: LONGLAMP_HUB_TIMEOUT, else HUB_TIMEOUT_S."""
    value = os.environ.get("LONGLAMP_HUB_TIMEOUT")
    try:
        seconds = HUB_TIMEOUT_S if value is None else float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ConfigError(f"LONGLAMP_HUB_TIMEOUT={value!r}: give the seconds a Hub request may wait for an answer, a "
                          "number above 0")
    return seconds


def limit_hub_requests() -> float:
    """Make every request of this process's Hub client give up after `hub_timeout()` seconds without an answer;
    returns that limit. A LONGLAMP_HUB_TIMEOUT that is no number of seconds is refused here, before any request.

    The library's client has no limit, and setting the session's default is not enough: `repo_info` (what
    `snapshot_download` and transformers' `from_pretrained` ask first) and the tree listing pass `timeout=None`
    (wait for ever) themselves, which overrides any default. So each request's limits are capped as it is sent
    (an event hook), in every client the library makes: it builds a new one after a connection error.
    """
    limit = hub_timeout()
    _cap_every_client()
    return limit


@functools.cache
def _cap_every_client() -> None:
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    def cap(request) -> None:
        limit, asked = hub_timeout(), request.extensions.get("timeout", {})
        request.extensions = {**request.extensions, "timeout": {
            phase: limit if asked.get(phase) is None else min(asked[phase], limit)
            for phase in ("connect", "read", "write", "pool")}}

    def client():
        made = default_client_factory()
        made.event_hooks["request"].append(cap)
        return made

    set_client_factory(client)


# Argument types: the checks every command gets by naming one in a field's metadata (`type=`). Each raises
# argparse.ArgumentTypeError, which the parser turns into one error line naming the flag.

def non_negative_int(value: str) -> int:
    """An integer >= 0."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def positive_int(value: str) -> int:
    """An integer >= 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def seed_value(value: str) -> int:
    """A random seed: an integer from 0 to 2**32 - 1 (what numpy and torch accept)."""
    number = non_negative_int(value)
    if number > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEED} (2**32 - 1), got {number}")
    return number


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An integer from `low` to `high`: a count that must stay within what memory or time allows."""
    def convert(value: str) -> int:
        number = (non_negative_int if low == 0 else positive_int if low == 1 else int)(value)
        if number < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {number}")
        if number > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {number:,}")
        return number

    convert.__name__ = "int"
    return convert


def _first_existing_parent(path: Path) -> Path | None:
    return next((parent for parent in path.absolute().parents if parent.exists()), None)


def output_file(value: str) -> str:
    """A file the command will write: not a folder, and its parent not a file."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give the path of the file to write")
    parent = _first_existing_parent(path)
    if parent is not None and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: {parent} is a file, not a folder")
    return value


def output_folder(value: str) -> str:
    """A folder the command will write into (created when missing): not a file, nor inside one."""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file, not a folder")
    parent = _first_existing_parent(path)
    if parent is not None and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: {parent} is a file, not a folder")
    return value


def missing_folder(value: str) -> str | None:
    """Why `value` is not an existing folder, or None. Checked when a command runs, not when its command line is
    only parsed (the runner checks stage command lines before earlier stages have written)."""
    path = Path(value).expanduser()
    if not path.exists():
        return f"{value} does not exist"
    return None if path.is_dir() else f"{value} is a file, not a folder"


def check_output_file(path: str | Path, flag: str) -> Path:
    """`output_file` for library callers: a UsageError naming the flag."""
    try:
        return Path(output_file(str(path)))
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"{flag} {error}") from None


def check_folder(path: str | Path, flag: str) -> Path:
    """`output_folder` for library callers: a UsageError naming the flag; the folder made absolute."""
    try:
        return Path(output_folder(str(path))).expanduser().absolute()
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"{flag} {error}") from None


# Fields: `arg` writes one flag's definition (help, aliases, negative spellings of a switch, choices, a type from
# above); `reuse` takes a field of another argument dataclass, so that a command needing one flag of a concept
# keeps its one definition.

def arg(help: str, default: Any = dataclasses.MISSING, *, aliases: Sequence[str] = (), negations: Sequence[str] = (),
        choices: Sequence | None = None, type: Callable | None = None, metavar: str | None = None,
        positional: bool = False, action: type | None = None, config_alias: bool = False,
        secret: bool = False, exists: str | None = None,
        default_factory: Callable[[], Any] = dataclasses.MISSING) -> dataclasses.Field:
    """A dataclass field that is a flag (`--<name>`, then `aliases`); without a default it is required.
    `config_alias`: a LongLaMP config-name flag that `--config NAME` still spells (see ArgumentParser.route_config);
    `secret`: a value never shown (a token): left out of the dataclass's repr; `exists="folder"`: the value must name
    a folder when the command runs (not when its command line is only checked)."""
    metadata = {"help": help, "aliases": tuple(aliases), "negations": tuple(negations), "choices": choices,
                "type": type, "metavar": metavar, "positional": positional, "action": action,
                "config_alias": config_alias, "exists": exists}
    return dataclasses.field(default=default, default_factory=default_factory, repr=not secret,
                             metadata={key: value for key, value in metadata.items() if value not in (None, (), False)})


def not_a_flag(default: Any = None) -> dataclasses.Field:
    """A field filled by the parser or the library, never from the command line."""
    return dataclasses.field(default=default, metadata={"flag": False})


def reuse(group: type, name: str, **changes) -> dataclasses.Field:
    """Field `name` of argument dataclass `group`, its definition kept (a command may change the default with
    `default=`, which tests/test_flags.py lists and docs/flags.md shows)."""
    spec = group.__dataclass_fields__[name]
    metadata = {**spec.metadata, "group": field_group(group, spec)}
    default = changes.pop("default", spec.default)
    metadata.update(changes)
    return dataclasses.field(default=default, default_factory=spec.default_factory, repr=spec.repr, metadata=metadata)


def group_name(cls: type) -> str:
    return getattr(cls, "_argument_group_name", None) or cls.__name__


def is_flag(spec: dataclasses.Field) -> bool:
    return spec.init and spec.metadata.get("flag", True)


def field_group(cls: type, spec: dataclasses.Field) -> str:
    """The concept a field belongs to: the argument dataclass that defines it (the most basic one in the class's
    ancestry), or the one it was reused from."""
    if spec.metadata.get("group"):
        return spec.metadata["group"]
    for base in reversed(cls.__mro__):
        if spec.name in getattr(base, "__annotations__", {}) and dataclasses.is_dataclass(base):
            return group_name(base)
    return group_name(cls)


@dataclass(frozen=True)
class FieldType:
    """What a field's annotation says: the base type, whether None is allowed, whether it is a list."""

    base: type
    optional: bool
    is_list: bool


def field_type(annotation) -> FieldType:
    args = typing.get_args(annotation)
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"a flag takes one type or None, not {annotation}")
        annotation, args = rest[0], typing.get_args(rest[0])
    if typing.get_origin(annotation) in (list, tuple):
        return FieldType(args[0], optional, True)
    return FieldType(annotation, optional, False)


def flag_fields(cls: type) -> list[tuple[dataclasses.Field, FieldType]]:
    """Each flag field of an argument dataclass with its resolved type."""
    hints = typing.get_type_hints(cls)
    return [(spec, field_type(hints[spec.name])) for spec in dataclasses.fields(cls) if is_flag(spec)]


def flag_names(spec: dataclasses.Field) -> list[str]:
    """The flag's spellings: canonical first, then its aliases."""
    return [f"--{spec.name}", *spec.metadata.get("aliases", ())]


def switch_negations(spec: dataclasses.Field) -> list[str]:
    return [f"--no_{spec.name}", f"--no-{spec.name}", *spec.metadata.get("negations", ())]


_TYPE_NAMES = {int: "an int", float: "a float", str: "a str", bool: "a bool"}


def check_fields(instance) -> None:
    """What the command line checks, for an argument dataclass built by Python code: each value's type, its
    choices and its flag's own check (e.g. at least 1). ConfigError naming the setting."""
    for spec, kind in flag_fields(type(instance)):
        value = getattr(instance, spec.name)
        _check_value(spec.name, value, kind, "--")
        choices = spec.metadata.get("choices")
        if value is None:
            continue
        if choices is not None and value not in choices:
            raise ConfigError(f"--{spec.name} {value!r} is not one of: {', '.join(map(str, choices))}")
        check = spec.metadata.get("type")
        if check is not None and not kind.is_list and not isinstance(value, tuple):
            try:
                check(str(value))
            except (argparse.ArgumentTypeError, ValueError) as error:
                raise ConfigError(f"--{spec.name} {error}") from None


def _check_value(name: str, value, kind: FieldType, where: str) -> None:
    if value is None and kind.optional:
        return
    values = value if kind.is_list and isinstance(value, (list, tuple)) else [value]
    for item in values:
        number = isinstance(item, (int, float)) and not isinstance(item, bool)
        ok = {bool: isinstance(item, bool), int: number and isinstance(item, int), float: number,
              str: isinstance(item, str)}.get(kind.base, True)
        if not ok or (kind.is_list and not isinstance(value, (list, tuple))):
            expected = _TYPE_NAMES.get(kind.base, kind.base.__name__)
            hint = (" (YAML reads numbers like 2e-4 as strings: write 2.0e-4)"
                    if kind.base in (int, float) and isinstance(item, str) else "")
            raise ConfigError(f"{where}{name}: expected {'a list of ' if kind.is_list else ''}{expected}"
                              f"{' or nothing' if kind.optional else ''}, got {type(value).__name__} {value!r}"
                              f"{hint}")


class Switch(argparse.Action):
    """A boolean flag: `--x` sets it, `--no_x`, `--no-x` and any older negative spelling unset it."""

    def __init__(self, option_strings, dest, negations=(), default=False, required=False, help=None):
        super().__init__([*option_strings, *negations], dest, nargs=0, default=default, required=required, help=help)
        self.negations = frozenset(negations)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, option_string not in self.negations)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every default after its help text (0 and False too; a default of None is said in the help text itself,
    which tests/test_flags.py checks); required flags say so."""

    def _get_help_string(self, action):
        text = action.help or ""
        if isinstance(action, argparse._HelpAction) or "(default:" in text or "%(default)" in text:
            return text
        if action.required or action.default is REQUIRED:
            return f"{text} (required)"
        if action.default is None or action.default is argparse.SUPPRESS:
            return text
        default = ",".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
        return f"{text} (default: {str(default).replace('%', '%%')})"


class _Required:
    """The value of a required flag not (yet) given."""

    def __repr__(self):
        return "required"


REQUIRED = _Required()


class ArgumentParser(argparse.ArgumentParser):
    """One parser over argument dataclasses (see the module docstring).

    `trained_settings_from` names the flag holding a model path: when that folder holds a training record
    (longlamp_runs.trained_settings), the prompt settings it was trained with become the defaults of the flags not
    given, and what was taken is logged and stored in the `from_training_record` field where a dataclass has one.
    `given` holds, after parsing, the flags set on the command line or in the settings file.
    """

    def __init__(self, dataclass_types: type | Sequence[type] = (), *, trained_settings_from: str | None = None,
                 **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # a prefix of one flag could become another's tomorrow
        super().__init__(**kwargs)
        self.dataclass_types = [dataclass_types] if isinstance(dataclass_types, type) else list(dataclass_types)
        self.trained_settings_from = trained_settings_from
        self.kinds: dict[str, FieldType] = {}
        self.must_exist: list[str] = []  # folders that must exist when the command runs
        self.given: set[str] = set()
        self.required: list[str] = []
        self._groups: dict[str, argparse._ArgumentGroup] = {}
        self._config_name_flag: str | None = None
        for cls in self.dataclass_types:
            for spec, kind in flag_fields(cls):
                self._add_field(cls, spec, kind)
        if "--config" not in self._option_string_actions:  # the runner's --config is its experiment file
            also = (f"; any other value is a LongLaMP config name, as {self._config_name_flag}"
                    if self._config_name_flag else "")
            self.add_argument_group("settings file").add_argument("--config", metavar="FILE", default=None,
                              help="a settings file (.json, .yaml or .yml) whose keys are this command's flag names "
                                   f"or their aliases; flags on the command line win over it{also} (default: none)")

    def _add_field(self, cls: type, spec: dataclasses.Field, kind: FieldType) -> None:
        meta = spec.metadata
        title = field_group(cls, spec)
        group = self._groups.get(title) or self._groups.setdefault(title, self.add_argument_group(title))
        required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        default = REQUIRED if required else (spec.default_factory() if spec.default is dataclasses.MISSING
                                             else spec.default)
        if required:
            self.required.append(spec.name)
        self.kinds[spec.name] = kind
        if meta.get("exists") == "folder":
            self.must_exist.append(spec.name)
        options = {"help": meta["help"].replace("%", "%%"), "default": default}
        if meta.get("positional"):
            group.add_argument(spec.name, nargs="*" if kind.is_list else "?", type=meta.get("type") or kind.base,
                               metavar=meta.get("metavar") or spec.name.upper(), **options)
            return
        names = flag_names(spec)
        if meta.get("config_alias"):
            self._config_name_flag = names[0]
        if kind.base is bool and not kind.is_list:
            group.add_argument(*names, dest=spec.name, action=meta.get("action", Switch),
                               negations=switch_negations(spec), **options)
            return
        choices = meta.get("choices")
        converter = meta.get("type") or kind.base
        metavar = meta.get("metavar")
        if metavar is None and choices is None:
            metavar = {int: "INT", float: "FLOAT"}.get(kind.base)
        action = meta.get("action", "store")
        nargs = "+" if kind.is_list and action == "store" else None
        group.add_argument(*names, dest=spec.name, action=action, type=converter, choices=choices, metavar=metavar,
                           nargs=nargs, **options)

    def error(self, message: str):
        message = re.sub(r"^argument (--\w+)(/-[-\w]+)+:", r"argument \1:", message)  # the flag, not its aliases
        raise UsageError(f"{message} (see {self.prog} --help)")

    # parsing

    def route_config(self, args: list[str]) -> list[str]:
        """`--config X`: a settings file when X ends in .json, .yaml or .yml, else (in a command with a config-name
        flag) that flag, e.g. export_dataset.py's `--config product_review_user topic_writing_temporal`."""
        if self._config_name_flag is None:
            return args
        routed = []
        for index, token in enumerate(args):
            value = token.split("=", 1)[1] if token.startswith("--config=") else (
                args[index + 1] if token == "--config" and index + 1 < len(args) else None)
            if value is not None and not value.endswith(SETTINGS_SUFFIXES):
                token = token.replace("--config", self._config_name_flag, 1)
            routed.append(token)
        return routed

    def _given_on_command_line(self, args: list[str]) -> set[str]:
        given = set()
        for token in args:
            if token == "--":
                break
            action = self._option_string_actions.get(token.split("=", 1)[0]) if token.startswith("-") else None
            if action is not None:
                given.add(action.dest)
        return given

    def parse_args(self, args: Sequence[str] | None = None, namespace=None) -> argparse.Namespace:
        """The flags' values, without running anything (what the runner's and the README's checks use): defaults <
        the settings file < the command line; then the trained settings for what is still at its default. Required
        flags are checked after the settings file."""
        args = self.route_config(list(sys.argv[1:] if args is None else args))
        namespace = super().parse_args(args, namespace)
        self.given = self._given_on_command_line(args) - {"config"}
        self.given |= {action.dest for action in self._actions if not action.option_strings
                       and getattr(namespace, action.dest) not in (action.default, [])}
        settings_file = vars(namespace).pop("config", None)
        if settings_file:
            for dest, value in self.read_settings(settings_file).items():
                if dest not in self.given:
                    setattr(namespace, dest, value)
                    self.given.add(dest)
        missing = [self._spelling(dest) for dest in self.required if getattr(namespace, dest) is REQUIRED
                   or (self.kinds[dest].is_list and getattr(namespace, dest) == [])]
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)}")
        if self.trained_settings_from:
            self._apply_trained_settings(namespace)
        return namespace

    def parse_args_into_dataclasses(self, args: Sequence[str] | None = None) -> tuple:
        """One instance per dataclass type, in order (HfArgumentParser's method of the same name), once the paths
        that must exist do."""
        namespace = self.parse_args(args)
        for dest in self.must_exist:
            value = getattr(namespace, dest)
            problem = missing_folder(str(value)) if value is not None else None
            if problem:
                self.error(f"argument {self._spelling(dest)}: {problem}")
        values = vars(namespace)
        return tuple(cls(**{spec.name: values[spec.name] for spec in dataclasses.fields(cls)
                            if spec.name in values and spec.init}) for cls in self.dataclass_types)

    def parse_into(self, args: Sequence[str] | None = None):
        """The one dataclass instance of a parser over one dataclass type."""
        (instance,) = self.parse_args_into_dataclasses(args)
        return instance

    def _spelling(self, dest: str) -> str:
        action = next(action for action in self._actions if action.dest == dest)
        return action.option_strings[0] if action.option_strings else dest

    def _action_for_key(self, key: str) -> argparse.Action | None:
        return self._option_string_actions.get(f"--{key}") or next(
            (action for action in self._actions if not action.option_strings and action.dest == key), None)

    def read_settings(self, path: str | Path) -> dict[str, Any]:
        """A settings file's values by destination: keys are flag names or aliases (a switch's `no_x: true` too);
        each value is checked as the flag's own value is. ConfigError naming the file and the key."""
        path = Path(path)
        values = load_mapping(path)
        settings, keys = {}, {}
        for key, value in values.items():
            action = self._action_for_key(str(key))
            if action is None or action.dest in ("help", "config"):
                raise ConfigError(f"{path}: unknown setting {key!r} (the keys are the flag names of {self.prog}; "
                                  f"see {self.prog} --help)")
            if action.dest in settings:
                raise ConfigError(f"{path}: {keys[action.dest]} and {key} name the same setting; keep one")
            keys[action.dest] = key
            settings[action.dest] = self._file_value(action, f"--{key}", value, path)
        return settings

    def _file_value(self, action: argparse.Action, key: str, value, path: Path):
        kind = self.kinds.get(action.dest)
        if kind is None:
            raise ConfigError(f"{path}: {key[2:]} cannot be set in a settings file")
        if isinstance(value, dict) and kind.base is str:
            value = json.dumps(value)  # a JSON-object flag (--chat_template_kwargs) written as a mapping
        _check_value(key[2:], value, kind, f"{path}: ")
        if isinstance(action, Switch):
            return value if key not in action.negations else not value
        try:
            items = value if kind.is_list else [value]
            converted = [item if item is None else action.type(str(item)) if action.type else item for item in items]
        except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
            raise ConfigError(f"{path}: {key[2:]}: {error}") from None
        for item in converted:
            if action.choices is not None and item is not None and item not in action.choices:
                raise ConfigError(f"{path}: {key[2:]}: {item!r} is not one of: "
                                  f"{', '.join(map(str, action.choices))}")
        return converted if kind.is_list else converted[0]

    def _apply_trained_settings(self, namespace: argparse.Namespace) -> None:
        from longlamp_runs import trained_settings

        model = getattr(namespace, self.trained_settings_from)
        record = trained_settings(model) if model else None
        if not record:
            return
        taken = {}
        for name, value in record.items():
            if value is None or not hasattr(namespace, name):  # None: the run left it to the default rule
                continue
            if name in self.given:
                if getattr(namespace, name) != value:
                    logger.warning("--%s %s is given: %s was trained with %s", name, getattr(namespace, name), model,
                                   value)
                continue
            setattr(namespace, name, value)
            taken[name] = value
        if taken:
            logger.warning("%s was fine-tuned with these prompt settings, used as defaults (a flag given wins): %s",
                           model, ", ".join(f"{name}={value}" for name, value in taken.items()))
            namespace.from_training_record = taken


def load_mapping(path: Path) -> dict:
    """A JSON or YAML file holding a mapping (ConfigError naming the file otherwise)."""
    if path.suffix not in SETTINGS_SUFFIXES:
        raise ConfigError(f"settings file {path}: expected a .json, .yaml or .yml file")
    if not path.is_file():
        raise ConfigError(f"settings file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"settings file {path} is not text: {error}") from None
    if path.suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON: {error}") from None
    else:
        import yaml

        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of setting names to values")
    return values


def warn_ignored_profile_flags(use_profile: bool, given: Sequence[str], warn: bool = True) -> str | None:
    """Retrieval flags given without --use_profile do nothing: say so loudly (and return what was said, for the
    run's record), since the run is then the non-personalised baseline."""
    if use_profile or not given:
        return None
    message = (f"{' and '.join(given)} given without --use_profile: this run is the NON-PERSONALISED baseline (no "
               "profile items in the prompts); add --use_profile to personalise")
    if warn:
        logger.warning("%s", message)
    return message


# The concepts that need nothing above this layer. Each command combines these with the dataclasses of the layers
# above (generation.cli, retrieval.cli, scoring.cli, publishing.cli) and its own.

@dataclass(kw_only=True)
class DataSourceArguments:
    """Where LongLaMP data comes from, for config names and data files alike."""

    _argument_group_name = "data"
    task: str | None = arg("task or config name, e.g. product_review_user (default: the config name of the data "
                           "when it is one, or the task ranked data names)", default=None)
    data_dir: str | None = arg("local copy of the LongLaMP data (e.g. data/sample; the Avocado folder for email) "
                               "(default: none, the Hub)", default=None, exists="folder")
    cache_dir: str | None = arg("datasets cache folder (default: the datasets library's)", default=None)
    revision: str | None = arg("branch, tag or commit of the Hub's LongLaMP data for config names (default: the "
                               "newest); recorded with the run", default=None)


@dataclass(kw_only=True)
class DataArguments(DataSourceArguments):
    """Which LongLaMP data a command reads: its source, the split, how many rows."""

    _argument_group_name = "data"
    split: str = arg("which split is read: of a config name (train, validation or test), of a save_to_disk folder "
                     "holding several, or the id prefix of a LaMP-style questions file; a single data file is read "
                     "whole", default="validation")
    max_eval_examples: int | None = arg("use only the first N rows (a quick look) (default: all)", default=None,
                                        aliases=("--limit",), type=positive_int)


@dataclass(kw_only=True)
class PromptArguments:
    """How a prompt is built from the task input and the profile items."""

    _argument_group_name = "prompt"
    max_prompt_length: int | None = arg(
        "token budget of a prompt: profile items are shortened to fit it, the task input never (default: 1024, "
        "lowered to what the model's position limit leaves after the generated tokens; "
        "longlamp_prompts.prompt_budget)", default=None, aliases=("--max_prompt_tokens",), type=positive_int)
    use_chat_template: bool | None = arg("wrap prompts in the tokenizer's chat template (default: when the "
                                         "tokenizer has one)", default=None, negations=("--no_chat_template",))
    chat_template_kwargs: str | None = arg("JSON object passed to the chat template, e.g. "
                                           '{"enable_thinking": false} (default: none)', default=None)

    def template_kwargs(self) -> dict:
        """--chat_template_kwargs as a dict (an error naming the flag when it is not a JSON object)."""
        return json_object("--chat_template_kwargs", self.chat_template_kwargs)


@dataclass(kw_only=True)
class OutputArguments:
    """Where a run writes."""

    _argument_group_name = "output"
    output_dir: str = arg("the run's folder: everything it writes, and what a restart resumes from",
                          type=output_folder)


@dataclass(kw_only=True)
class SeedArguments:
    _argument_group_name = "randomness"
    seed: int = arg("seed of what the command draws at random (sampling, resampling, a random retriever; training "
                    "takes 42, as transformers does)", default=0, type=seed_value)


@dataclass(kw_only=True)
class WorkerArguments:
    _argument_group_name = "parallelism"
    num_workers: int | None = arg("worker processes (threads for BM25 ranking) (default: all cores when scoring, 1 "
                                  "when ranking, none when encoding training data)", default=None,
                                  aliases=("--preprocessing_num_workers",), type=positive_int)


@dataclass(kw_only=True)
class LoggingArguments:
    _argument_group_name = "logging"
    log_level: str = arg("how much the run logs", default="info", choices=("debug", "info", "warning"))
