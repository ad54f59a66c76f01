"""One vocabulary of flags for the sixteen commands (longlamp_cli's argument dataclasses): docs/flags.md is what the
generator writes and holds every flag, alias, default and choice of every command's real parser; older spellings
still parse; every default and choice is in --help; a bad flag is one error line; --config is a settings file in
every command, the command line winning; defaults that change results agree; a fine-tuned model is evaluated with
the settings it was trained with."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from support.parsers import script_parser

from longlamp_cli import REQUIRED, Switch, run_command
from longlamp_runs import TrainingOutcome, record_from_flags, write_model_record

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def _generator():
    spec = importlib.util.spec_from_file_location("make_flags_doc", REPO / "scripts" / "make_flags_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOC = _generator()
COMMANDS = DOC.COMMANDS


@pytest.fixture(scope="module")
def parsers():
    """Each command's parser as its make_parser() builds it (the generator's source)."""
    return DOC.parsers()


@pytest.fixture(scope="module")
def real_parsers():
    """Each command's parser as its main() builds it when run: captured at parse time, nothing else runs."""
    return {path: script_parser(path) for path in COMMANDS}


def test_every_command_is_listed_once():
    assert len(COMMANDS) == len(set(COMMANDS)) == 16
    assert all((REPO / path).is_file() for path in COMMANDS)


def test_docs_flags_md_is_what_the_generator_writes(parsers):
    assert (REPO / "docs" / "flags.md").read_text(encoding="utf-8") == DOC.render(parsers), \
        "docs/flags.md is stale: run `make flags-doc`"


def doc_rows() -> list[dict]:
    """docs/flags.md's table rows: flag, its other spellings, default, choices, commands."""
    rows = []
    for line in (REPO / "docs" / "flags.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 6 or not cells[0].startswith("`"):
            continue
        rows.append({"flag": cells[0].strip("`"), "spellings": set(re.findall(r"`([^`]+)`", cells[1])),
                     "default": cells[2].strip("`").replace("\\|", "|"),
                     "choices": [] if cells[3] == "-" else cells[3].split(", "), "commands": cells[4].split(", ")})
    return rows


@pytest.mark.parametrize("path", COMMANDS)
def test_the_doc_has_every_flag_alias_default_and_choice_of_the_real_parser(real_parsers, path):
    rows = doc_rows()
    for action in real_parsers[path]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = list(action.option_strings) or [action.metavar or action.dest]
        found = [row for row in rows if row["flag"] == names[0] and Path(path).name in row["commands"]]
        assert len(found) == 1, f"docs/flags.md has {len(found)} rows for {path} {names[0]}"
        row = found[0]
        assert row["spellings"] == set(names[1:]), f"{path} {names[0]}: spellings {names[1:]}"
        assert row["default"] == DOC.shown_default(action), f"{path} {names[0]}: default {action.default!r}"
        assert row["choices"] == [str(c) for c in action.choices or []], f"{path} {names[0]}: choices"


# command -> {canonical flag: older spellings that must still parse to it}: the benchmark README's, and every alias
# the previous docs/flags.md and this test listed.
PER_USER = {"--model_name": ["--model_addr"], "--max_prompt_length": ["--max_prompt_tokens"],
            "--use_chat_template": ["--no-use_chat_template", "--no_use_chat_template"], "--dtype": ["--model_dtype"]}
OLD_SPELLINGS = {
    "evaluation/evaluate_llm.py": {
        "--model_name": ["--model_addr"], "--max_prompt_length": ["--max_prompt_tokens"],
        "--max_eval_examples": ["--limit"], "--use_chat_template": ["--no-use_chat_template", "--no_chat_template"],
        "--hub_private": ["--private"]},
    "retrieval/rank_profiles.py": {"--retriever_model": ["--model_name"], "--resume": ["--no-resume"]},
    "training/train.py": {"--model_name": ["--model_addr"], "--dtype": ["--model_dtype"],
                          "--max_prompt_length": ["--max_prompt_tokens"],
                          "--max_new_tokens": ["--generation_max_new_tokens"],
                          "--num_workers": ["--preprocessing_num_workers"],
                          "--use_chat_template": ["--no_use_chat_template", "--no-use_chat_template"],
                          "--use_profile": ["--no-use_profile"]},
    "training/train_per_user.py": PER_USER,
    "training/train_style_vectors.py": {**PER_USER, "--max_eval_examples": ["--limit"]},
    "evaluation/evaluate_per_user.py": {**PER_USER, "--max_eval_examples": ["--limit"]},
    "evaluation/compare.py": {"--golds": ["--golds_json"]},
    "evaluation/judge.py": {"--golds": ["--golds_json"], "--preds": ["--preds_json"]},
    "evaluation/style_similarity.py": {"--preds": ["--preds_json"]},
    "evaluation/leaderboard.py": {"--output": ["--output_dir"]},
    "evaluation/push_results.py": {"--hub_private": ["--private"]},
    "scripts/run_benchmark.py": {"--experiment": ["--config"]},
    "scripts/export_dataset.py": {"--hub_private": ["--private"]},
}


@pytest.mark.parametrize("path", sorted(OLD_SPELLINGS))
def test_older_spellings_are_aliases(parsers, path):
    options = {option: action.dest for action in parsers[path]._actions for option in action.option_strings}
    for canonical, aliases in OLD_SPELLINGS[path].items():
        assert canonical in options, f"{path} lacks {canonical}"
        for alias in aliases:
            assert options.get(alias) == options[canonical], f"{path}: {alias} is not an alias of {canonical}"


def test_the_benchmark_readme_command_lines_parse(parsers):
    options = parsers["evaluation/evaluate_llm.py"].parse_args_into_dataclasses([
        "--validation_data", "ranked.parquet", "--model_addr", "m", "--task", "product_review_user", "--output_dir",
        "out", "--use_profile", "--retriever", "bm25", "--is_ranked", "--num_retrieved", "4", "--limit", "3",
        "--max_prompt_tokens", "700", "--no_chat_template"])[0]
    assert (options.model_name, options.max_eval_examples, options.max_prompt_length) == ("m", 3, 700)
    assert options.use_chat_template is False and options.num_retrieved == 4 and options.is_ranked


def test_config_names_and_the_experiment_keep_their_readme_spelling(parsers):
    export = parsers["scripts/export_dataset.py"].parse_into(
        ["--config", "product_review_user", "topic_writing_temporal", "--data_dir", str(SAMPLE), "--output", "out/"])
    assert export.config_name == ["product_review_user", "topic_writing_temporal"]
    rank = parsers["retrieval/rank_profiles.py"].parse_into(
        ["--config", "product_review_user", "--retriever", "bm25", "--output", "r.parquet"])
    assert rank.config_name == "product_review_user"
    runner = parsers["scripts/run_benchmark.py"].parse_into(["--config", "experiments/demo.yaml"])
    assert runner.experiment == "experiments/demo.yaml"


@pytest.mark.parametrize("path", COMMANDS)
def test_help_shows_every_default_and_every_choice(parsers, path):
    parser = parsers[path]
    text = " ".join(parser.format_help().split())
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        shown = formatter._get_help_string(action)
        name = action.option_strings[0] if action.option_strings else action.dest
        if action.default is None:  # said in words: what happens when the flag is not given
            assert "(default:" in shown, f"{path} {name}: the help does not say what its default of none means"
        elif action.default is REQUIRED:
            assert "(required)" in shown, f"{path} {name}"
        else:
            assert "(default:" in shown, f"{path} {name}: default {action.default!r} not shown"
        for choice in action.choices or []:
            assert str(choice) in text, f"{path} {name}: choice {choice} not in --help"
    assert "(default: False)" in text or not any(isinstance(a, Switch) and a.default is False
                                                 for a in parser._actions)


def test_help_texts_name_only_what_exists(parsers):
    """A help text pointing at a function or a file that does not exist (longlamp_prompts.default_prompt_budget
    did) is caught here."""
    for path, parser in parsers.items():
        for action in parser._actions:
            for module, name in re.findall(r"\b(longlamp_\w+|longlamp)\.(\w+)\b", action.help or ""):
                assert hasattr(importlib.import_module(module), name), f"{path}: {module}.{name} does not exist"
            for file in re.findall(r"\b([\w/]+\.py)\b", action.help or ""):
                if "/" in file:
                    assert (REPO / file).is_file(), f"{path}: {file} does not exist"


@pytest.mark.parametrize("path", COMMANDS)
def test_a_bad_flag_or_settings_file_is_one_error_line(path, capsys):
    main = DOC.load_command(path).main
    for argv, message in ((["--no_such_flag"], "unrecognized arguments: --no_such_flag"),
                          (["--config", "absent.yaml"], "settings file absent.yaml does not exist")):
        if path == "scripts/run_benchmark.py" and argv[0] == "--config":
            continue  # its --config is the experiment file (the runner's own checks)
        assert run_command(main, argv, prog=Path(path).name) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"{Path(path).name}: error: ") and message in err, err


# A valid command line of each command: the first flag and its value move into a settings file in the next test.
def minimal(path: str, tmp: Path) -> list[str]:
    model, out = str(tmp / "model"), str(tmp / "out")
    return {
        "retrieval/rank_profiles.py": ["--chunk_size", "5", "--output", str(tmp / "r.parquet"), "--config_name",
                                       "product_review_user"],
        "training/train.py": ["--learning_rate", "0.001", "--train_data", "product_review_user", "--model_name", model,
                              "--output_dir", out],
        "training/train_per_user.py": ["--num_retrieved", "2", "--model_name", model, "--data", "product_review_user",
                                       "--output_dir", out],
        "training/train_style_vectors.py": ["--split", "validation", "--model_name", model, "--data",
                                            "product_review_user", "--output_dir", out],
        "training/export.py": [str(tmp), out],
        "evaluation/eval_task.py": ["--bootstrap", "10", "--golds_json", "g.json", "--preds_json", "p.json",
                                    "--output_file", str(tmp / "o.json")],
        "evaluation/eval_all.py": ["--seed", "3", "--golds_zip", "g.zip", "--preds_zip", "p.zip", "--output_file",
                                   str(tmp / "o.json")],
        "evaluation/evaluate_llm.py": ["--num_retrieved", "2", "--validation_data", "product_review_user",
                                       "--model_name", model, "--output_dir", out],
        "evaluation/evaluate_per_user.py": ["--max_new_tokens", "9", "--model_name", model, "--data",
                                            "product_review_user", "--output_dir", out],
        "evaluation/compare.py": ["--resamples", "100", "--golds", "g.json", "--preds_a", "a.json", "--preds_b",
                                  "b.json"],
        "evaluation/leaderboard.py": ["--metric", "meteor", "--output", out, "run1"],
        "evaluation/judge.py": ["--protocol", "graded", "--golds", "g.json", "--preds", "p.json", "--judge_model", "j",
                                "--output_dir", out],
        "evaluation/style_similarity.py": ["--split", "test", "--validation_data", "product_review_user", "--preds",
                                           "p.json", "--output_file", str(tmp / "o.json")],
        "evaluation/push_results.py": ["--hub_revision", "dev", "--hub_model_id", "me/run", "--run_dir", str(tmp)],
        "scripts/run_benchmark.py": ["--output_dir", out, "--experiment", "experiments/demo.yaml"],
        "scripts/export_dataset.py": ["--revision", "v1", "--config_name", "product_review_user", "--output", out],
    }[path]


@pytest.mark.parametrize("path", COMMANDS)
def test_a_settings_file_sets_flags_and_the_command_line_wins(parsers, path, tmp_path):
    if path in ("training/export.py", "scripts/run_benchmark.py"):
        pytest.skip("two positional arguments; the runner's settings file is its experiment file")
    parser = parsers[path]
    argv = minimal(path, tmp_path)
    flag, rest = argv[0], argv[2:]
    expected = parser.parse_args_into_dataclasses(argv)
    given = getattr(expected[0], flag[2:])
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({flag[2:]: given}))
    assert parser.parse_args_into_dataclasses([*rest, "--config", str(settings)]) == expected
    default = getattr(parser.parse_args_into_dataclasses(rest)[0], flag[2:])
    assert default != given, f"{path}: {flag} {given} is its default; pick another flag for this test"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({flag[2:]: default}))
    assert parser.parse_args_into_dataclasses([*argv, "--config", str(settings)]) == expected  # the flag wins


def test_a_settings_file_value_is_checked_as_the_flag_is(parsers, tmp_path):
    parser = parsers["evaluation/compare.py"]
    settings = tmp_path / "s.yaml"
    for text, message in (("seed: -1\n", "seed: must be 0 or more"), ("resamples: 10000000000\n", "at most 1,000,000"),
                          ("metrics: rouge1,bleu\n", "unknown or corpus-level metrics"),
                          ("by_user: 'yes'\n", "by_user: expected a bool"), ("nope: 1\n", "unknown setting 'nope'"),
                          ("golds: a\ngolds_json: b\n", "golds and golds_json name the same setting")):
        settings.write_text(text)
        with pytest.raises(ValueError, match=message):
            parser.parse_into(["--preds_a", "a", "--preds_b", "b", "--golds", "g", "--config", str(settings)])


# Defaults that change results, and the commands that keep another default on purpose (docs/flags.md says why).
RESULT_FLAGS = ("--num_retrieved", "--retriever", "--retriever_model", "--max_prompt_length", "--use_chat_template",
                "--dtype", "--max_new_tokens", "--split", "--seed", "--do_sample", "--temperature", "--top_p",
                "--num_beams", "--bootstrap", "--resamples", "--confidence", "--lora_r", "--lora_alpha",
                "--lora_dropout", "--learning_rate", "--num_train_epochs", "--per_device_train_batch_size",
                "--max_grad_norm", "--max_target_length", "--long_targets", "--is_ranked", "--use_profile")
KEPT_APART = {
    ("--seed", "train.py"), ("--seed", "train_per_user.py"),  # training's 42 (transformers'); others draw with 0
    ("--split", "train_per_user.py"), ("--split", "train_style_vectors.py"),  # the per-user methods: test users
    ("--split", "evaluate_per_user.py"),
    ("--max_new_tokens", "train.py"), ("--max_new_tokens", "judge.py"),  # target length; the protocol's
    ("--dtype", "rank_profiles.py"),  # the retriever's encoder, not the language model
    *((flag, "train_per_user.py") for flag in ("--lora_r", "--lora_alpha", "--lora_dropout", "--learning_rate",
                                                "--num_train_epochs", "--long_targets", "--per_device_train_batch_size",
                                                "--max_grad_norm")),  # OPPU's per-user adapters
}


def test_defaults_that_change_results_agree_across_commands(parsers):
    defaults: dict[str, dict[str, set]] = {}
    for path, parser in parsers.items():
        for action in parser._actions:
            if action.option_strings and action.option_strings[0] in RESULT_FLAGS:
                if (action.option_strings[0], Path(path).name) not in KEPT_APART:
                    defaults.setdefault(action.option_strings[0], {}).setdefault(repr(action.default), set()).add(
                        Path(path).name)
    differing = {flag: found for flag, found in defaults.items() if len(found) > 1}
    assert not differing, f"defaults differ between commands: {differing}"
    assert set(defaults["--num_retrieved"]) == {"4"}


def test_training_and_evaluation_and_lm_eval_take_the_same_k():
    from evaluation.lm_eval_tasks import toolkit
    from evaluation.zero_shot import ZeroShotOptions
    from training.config import TrainConfig

    trained = TrainConfig(model_name="m", output_dir="o", train_data="product_review_user")
    evaluated = ZeroShotOptions(model_name="m", output_dir="o", validation_data="product_review_user")
    assert trained.num_retrieved == evaluated.num_retrieved == toolkit.DEFAULT_NUM_RETRIEVED == 4


# --- a fine-tuned model's own settings as defaults --------------------------------------------------------------

TRAINED = {"use_profile": True, "retriever": "contriever", "retriever_model": "my/encoder", "num_retrieved": 2,
           "max_prompt_length": 300, "use_chat_template": False}


def fine_tuned(folder: Path, **settings) -> Path:
    """A model folder holding only its training record (train.py's, written by the run record's writer)."""
    flags = {"model_name": "base", "learning_rate": 0.001, "task": "product_review_user",
             "train_data": "product_review_user",
             "max_target_length": 64, **TRAINED, **settings}
    write_model_record(folder, record_from_flags("training", flags), TrainingOutcome(global_step=2))
    return folder


@pytest.mark.parametrize("path, model_flag, extra", [
    ("evaluation/evaluate_llm.py", "--model_name", ["--validation_data", "product_review_user"]),
    ("evaluation/evaluate_per_user.py", "--model_name", ["--data", "product_review_user"]),
    ("training/train_style_vectors.py", "--model_name", ["--data", "product_review_user"]),
    ("training/train_per_user.py", "--task_adapter", ["--model_name", "base", "--data", "product_review_user"]),
])
def test_a_fine_tuned_model_is_evaluated_with_the_settings_it_was_trained_with(parsers, tmp_path, caplog, path,
                                                                              model_flag, extra):
    model = fine_tuned(tmp_path / "final")
    parser = parsers[path]
    base = [model_flag, str(model), "--output_dir", str(tmp_path / "out"), *extra]
    (args, *_) = parser.parse_args_into_dataclasses(base)
    assert {name: getattr(args, name) for name in TRAINED} == TRAINED
    assert args.from_training_record == TRAINED and "used as defaults" in caplog.text
    (args, *_) = parser.parse_args_into_dataclasses([*base, "--num_retrieved", "3", "--no-use_profile"])
    assert (args.num_retrieved, args.use_profile, args.max_prompt_length) == (3, False, 300)  # a flag given wins
    assert "num_retrieved" not in args.from_training_record and "--num_retrieved 3 is given" in caplog.text
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"max_prompt_length": 200}))  # a settings file's value is given too
    (args, *_) = parser.parse_args_into_dataclasses([*base, "--config", str(settings)])
    assert args.max_prompt_length == 200 and args.num_retrieved == 2


def test_a_model_trained_without_profile_gives_only_its_prompt_settings(parsers, tmp_path):
    model = fine_tuned(tmp_path / "final", use_profile=False, max_prompt_length=None)
    (options, _) = parsers["evaluation/evaluate_llm.py"].parse_args_into_dataclasses(
        ["--model_name", str(model), "--validation_data", "product_review_user", "--output_dir", str(tmp_path / "o")])
    assert options.from_training_record == {"use_profile": False, "use_chat_template": False}
    assert (options.retriever, options.num_retrieved, options.max_prompt_length) == (None, 4, None)
    (options, _) = parsers["evaluation/evaluate_llm.py"].parse_args_into_dataclasses(
        ["--model_name", "base/model", "--validation_data", "product_review_user", "--output_dir", str(tmp_path)])
    assert options.from_training_record is None  # a Hub id: no record, the defaults


@pytest.mark.slow
@pytest.mark.e2e
def test_a_model_fine_tuned_with_the_defaults_is_evaluated_as_it_was_trained(tiny_llama, tmp_path, sample_cache,
                                                                            fresh_accelerate):
    """train.py with a profile and k=2, then evaluate_llm.py on the model without retrieval flags: the run uses the
    training's retrieval, k, budget and chat template, and scores.json says they came from the training record."""
    from support.training import run_flags, short_sample

    from evaluation import evaluate_llm
    from training.train import main as train_main

    train_rows = short_sample(tmp_path, "train", limit=8)
    assert train_main(run_flags(tiny_llama, tmp_path / "ft", train_rows, max_steps=1, use_profile=True,
                                num_retrieved=2, use_chat_template=False)) == 0
    out = tmp_path / "eval"
    assert evaluate_llm.main(["--validation_data", "product_review_user", "--data_dir", str(SAMPLE), "--cache_dir",
                              sample_cache, "--model_name", str(tmp_path / "ft" / "final"), "--output_dir", str(out),
                              "--max_eval_examples", "2", "--max_new_tokens", "4"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["from_training_record"] == {"use_profile": True, "retriever": "bm25", "num_retrieved": 2,
                                              "max_prompt_length": 128, "use_chat_template": False}
    retrieval, prompt = scores["settings"]["retrieval"], scores["settings"]["prompt"]
    assert retrieval["use_profile"] and retrieval["num_retrieved"] == 2 and prompt["max_prompt_length"] == 128
    assert retrieval["retriever"] == "bm25" and prompt["chat_template"] is False
