"""One vocabulary of flags: every command's parser has the canonical names and keeps the older ones as aliases."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from evaluation import eval_all, eval_task, evaluate_llm, evaluate_per_user
from longlamp_cli import FLAGS
from longlamp_errors import UsageError
from retrieval import rank_profiles
from training import train_per_user, train_style_vectors

FLAGS_DOC = Path(__file__).resolve().parents[1] / "docs" / "flags.md"
# Shared by the per-user commands (docs/personalization.md).
PER_USER = {"--model_name": ["--model_addr"], "--max_prompt_length": ["--max_prompt_tokens"], "--data": [],
            "--task": [], "--split": [], "--data_dir": [], "--cache_dir": [], "--revision": [], "--use_profile": [],
            "--retriever": [], "--retriever_model": [], "--num_retrieved": [], "--dtype": [],
            "--use_chat_template": ["--no-use_chat_template"], "--output_dir": []}
GENERATING = {"--max_new_tokens": [], "--batch_size": [], "--max_eval_examples": ["--limit"]}

# command -> {canonical flag: aliases that must still parse to it}
VOCABULARY = {
    "evaluate_llm": {
        "--model_name": ["--model_addr"], "--max_prompt_length": ["--max_prompt_tokens"],
        "--max_eval_examples": ["--limit"], "--use_chat_template": ["--no-use_chat_template", "--no_chat_template"],
        "--retriever_model": [], "--embedding_cache_dir": [], "--cache_dir": [], "--dtype": [], "--split": [],
        "--max_new_tokens": [], "--validation_data": [], "--task": [], "--use_profile": [], "--retriever": [],
        "--is_ranked": [], "--num_retrieved": [], "--output_dir": [], "--chat_template_kwargs": [],
        "--keep_reasoning": [], "--trust_remote_code": [], "--tensor_parallel_size": [],
        "--gpu_memory_utilization": [], "--enforce_eager": [], "--max_num_seqs": [],
    },
    "rank_profiles": {
        "--retriever_model": ["--model_name"], "--embedding_cache_dir": [], "--cache_dir": [], "--num_workers": [],
        "--split": [], "--task": [], "--data_dir": [], "--input_data": [], "--output": [], "--retriever": [],
    },
    "eval_task": {"--golds_json": [], "--preds_json": [], "--task_name": [], "--output_file": [], "--seed": [],
                  "--num_workers": [], "--metrics": [], "--bootstrap": []},
    "eval_all": {"--golds_zip": [], "--preds_zip": [], "--temp_dir": [], "--output_file": [], "--seed": [],
                 "--num_workers": [], "--metrics": [], "--bootstrap": []},
    "train_per_user": {**PER_USER, "--dtype": ["--model_dtype"], "--task_adapter": [], "--max_target_length": [],
                       "--lora_r": [], "--lora_alpha": [], "--lora_dropout": [], "--lora_target_modules": [],
                       "--learning_rate": [], "--num_train_epochs": [], "--per_device_train_batch_size": [],
                       "--max_grad_norm": [], "--seed": [], "--log_level": []},
    "train_style_vectors": {**PER_USER, **GENERATING, "--layers": [], "--scales": [], "--selection_split": []},
    "evaluate_per_user": {**PER_USER, **GENERATING, "--adapters_dir": [], "--style_vectors_dir": [],
                          "--use_summary": [], "--backend": [], "--tensor_parallel_size": [],
                          "--gpu_memory_utilization": [], "--enforce_eager": [], "--max_num_seqs": [],
                          "--max_loras": []},
}
PARSERS = {"evaluate_llm": evaluate_llm.build_parser, "rank_profiles": rank_profiles.build_parser,
           "eval_task": eval_task.build_parser, "eval_all": eval_all.build_parser,
           "train_per_user": train_per_user.parser, "train_style_vectors": train_style_vectors.parser,
           "evaluate_per_user": evaluate_per_user.parser}


def options_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every option string of a parser -> its destination."""
    return {option: action.dest for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize("command", sorted(VOCABULARY))
def test_each_command_has_the_canonical_flags_and_their_aliases(command):
    options = options_of(PARSERS[command]())
    for canonical, aliases in VOCABULARY[command].items():
        assert canonical in options, f"{command} lacks {canonical}"
        for alias in aliases:
            assert options.get(alias) == options[canonical], f"{command}: {alias} is not an alias of {canonical}"


@pytest.mark.parametrize("command", sorted(VOCABULARY))
def test_shared_concepts_take_their_one_definition(command):
    """A concept's canonical flag, wherever it appears, stores into the concept's name."""
    options = options_of(PARSERS[command]())
    own_aliases = {alias for aliases in VOCABULARY[command].values() for alias in aliases}
    for concept, flag in FLAGS.items():
        if flag.names[0] in options and flag.names[0] not in own_aliases:  # rank_profiles' --model_name: the encoder
            assert options[flag.names[0]] == concept, f"{command}: {flag.names[0]} stores {options[flag.names[0]]}"


def test_benchmark_readme_command_line_parses():
    options = evaluate_llm.parse_args([
        "--validation_data", "ranked.parquet", "--model_addr", "m", "--task", "product_review_user", "--output_dir",
        "out", "--use_profile", "--retriever", "bm25", "--is_ranked", "--num_retrieved", "4", "--limit", "3",
        "--max_prompt_tokens", "700", "--no_chat_template"])
    assert (options.model_name, options.max_eval_examples, options.max_prompt_length) == ("m", 3, 700)
    assert options.use_chat_template is False and options.num_retrieved == 4


def test_help_shows_defaults_and_choices(capsys):
    with pytest.raises(SystemExit):
        evaluate_llm.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 512)" in text and "(default: facebook/contriever)" in text
    assert "{auto,transformers,vllm,openai}" in text and "{auto,bfloat16,float16,float32}" in text
    assert "(default: validation)" in text


def test_a_bad_flag_is_one_error_line_not_a_usage_dump():
    with pytest.raises(UsageError, match=r"argument --bootstrap: must be 0 or more, got -5 \(see .* --help\)"):
        eval_task.build_parser().parse_args(["--golds_json", "g", "--preds_json", "p", "--output_file", "o",
                                             "--bootstrap", "-5"])


def test_every_shared_concept_is_in_the_flags_table():
    """docs/flags.md's table names each concept's canonical flag (and the per-user commands have their column)."""
    table = [line for line in FLAGS_DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    flags_in_table = set(re.findall(r"`(--[a-z_]+)", "\n".join(table)))
    missing = [flag.names[0] for flag in FLAGS.values() if flag.names[0] not in flags_in_table]
    assert not missing, f"docs/flags.md's table lacks {missing}"
    assert "`evaluate_per_user.py`" in table[0] and "`train_per_user.py`" in table[0]
