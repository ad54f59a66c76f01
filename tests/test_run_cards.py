"""A card built from a run reads back every setting the run recorded, and its "How to reproduce" command parses
with the command's real parser into the same settings: for zero-shot runs with and without profile and with
--compare_no_profile, a fine-tuned LoRA run (and its adapter evaluated zero-shot), and a per-user run. Runs are real,
on tiny models built here and the bundled sample; the command's local paths (`<local>/NAME`) are put back before it
is parsed, and the location flags it leaves out (--cache_dir) added. The commands of a zero-shot and a LoRA card are
also run as they stand (placeholders restored, another output folder) and give the same predictions and scores."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support.kill import same_threads
from support.training import CONFIG, run_flags

from evaluation import evaluate_llm, evaluate_per_user
from longlamp_runs import read_model_record, read_record, read_run, trained_settings
from publishing.cards import build_run_card, cell
from publishing.runs import public_name, public_record


def settings_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The card's settings table: its column labels and {setting: [cell per column]}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| setting |"))
    labels = [part.strip() for part in lines[start].strip("|").split(" | ")][1:]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        cells = [part.strip() for part in line[2:-2].split(" | ")]
        rows[cells[0]] = cells[1:]
    return labels, rows


REPO = Path(__file__).resolve().parents[1]


def reproduce_argv(text: str, places: list[Path], program_words: int = 0) -> list[str]:
    """The card's command as argv (its first `program_words` words, the program, left out), local paths put back."""
    command = text.split("## How to reproduce")[1].split("```bash\n")[1].split("\n```")[0]
    known = {public_name(str(path)): str(path) for path in places}
    words = shlex.split(command.replace("\\\n", " "))[program_words:]
    assert all(word in known for word in words if word.startswith("<local>/")), (words, known)
    return [known.get(word, word) for word in words]


def run_card_command(text: str, places: list[Path], output: Path, cache_dir: Path | str) -> None:
    """Run the card's command as it stands, from the repository's root as the card says: its local paths put back,
    its output folder moved to `output`, the datasets cache it leaves out added. `python` and `accelerate` are this
    environment's; the child computes with this process's thread count (tests/support/kill.py says why)."""
    argv = reproduce_argv(text, places)
    argv[argv.index("--output_dir") + 1] = str(output)
    program = {"python": sys.executable, "accelerate": str(Path(sys.executable).with_name("accelerate"))}
    done = subprocess.run([program.get(argv[0], argv[0]), *argv[1:], "--cache_dir", str(cache_dir)], cwd=REPO,
                          env={**os.environ, **same_threads(), "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def json_of(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def title(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("# "))


def assert_every_setting_shown(run_dir: Path, text: str) -> None:
    """Every setting of every variant's record is in the card, its value as recorded (local paths by their last
    part); a training run's outcome too."""
    run = read_run(run_dir)
    labels, rows = settings_table(text)
    records = [variant.record for variant in run.variants] if run.kind != "training" else [run.record]
    assert len(labels) == len(records)
    for column, record in enumerate(records):
        shown = {name: cells[column] for name, cells in rows.items() if not name.startswith("outcome.")}
        assert shown == {name: cell(value) for name, value in public_record(record).flat().items()}
    if run.outcome is not None:
        assert rows["outcome.global_step"] == [cell(run.outcome.global_step)]


def zero_shot(tmp_path, tiny_llama, sample_dir, sample_cache, name: str, *extra: str) -> Path:
    folder = tmp_path / name
    assert evaluate_llm.main(["--validation_data", CONFIG, "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
                              "--model_name", str(tiny_llama), "--output_dir", str(folder), "--max_new_tokens", "6",
                              "--batch_size", "2", "--max_eval_examples", "3", *extra]) == 0
    return folder


def assert_zero_shot_command_repeats(folder: Path, text: str, places: list[Path], sample_cache: str) -> None:
    from evaluation.zero_shot.run import prepare

    argv = reproduce_argv(text, places, 2)
    assert "--no_use_chat_template" not in argv and not any(word.startswith("{'") for word in argv)
    options = evaluate_llm.parse_args([*argv, "--cache_dir", sample_cache])
    recorded = [variant.record for variant in read_run(folder).variants]
    assert prepare(options).records == recorded  # the same settings, to the fingerprints of weights and data


@pytest.mark.parametrize("profile, label", [
    (["--use_profile", "--num_retrieved", "2", "--compare_no_profile"], "(zero-shot, with and without profile)"),
    (["--use_profile", "--retriever", "recency", "--num_retrieved", "1"], "(zero-shot, with profile)"),
    ([], "(zero-shot, no profile)"),
], ids=["compare", "profile", "no-profile"])
def test_a_zero_shot_card_reads_back_every_setting_and_its_command_repeats_the_run(
        profile, label, tmp_path, tiny_llama, sample_dir, sample_cache):
    folder = zero_shot(tmp_path, tiny_llama, sample_dir, sample_cache, "run", *profile)
    text = (folder / "README.md").read_text(encoding="utf-8")  # written by the run itself
    assert text == str(build_run_card(folder))
    assert_every_setting_shown(folder, text)
    assert title(text).endswith(label)
    assert "| model.dtype | float32 |" in text or "| model.dtype | float32 | float32 |" in text  # never "None"
    assert "dtype None" not in text and str(tmp_path) not in text and str(tiny_llama) not in text
    if not profile:
        assert "without the user's profile" in text and "with retrieval-augmented" not in text
    assert ("--retriever_model" in text) == ("contriever" in profile)  # BM25 and recency have no encoder
    assert_zero_shot_command_repeats(folder, text, [tiny_llama, sample_dir], sample_cache)


@pytest.mark.slow
def test_a_lora_card_reads_back_every_setting_and_its_adapter_evaluates_with_its_training_settings(
        tmp_path, tiny_llama, short_data, sample_dir, sample_cache, fresh_accelerate):
    from training.config import parse_args
    from training.loop import train
    from training.record import prompt_rules, training_record

    train_rows, validation_rows = short_data
    output = tmp_path / "lora"
    train(parse_args(run_flags(tiny_llama, output, train_rows, validation_rows, max_steps=2, use_lora=True,
                               use_profile=True, num_retrieved=2, eval_generation_examples=2, max_new_tokens=6,
                               no_use_chat_template=True)))
    text = str(build_run_card(output))
    assert_every_setting_shown(output, text)
    assert title(text).endswith(f"fine-tuned for LongLaMP {CONFIG} (LoRA adapter, with profile)")
    assert "library_name: peft" in text and str(tmp_path) not in text
    config = parse_args(reproduce_argv(text, [tiny_llama, train_rows, validation_rows], 3))
    _, tokenizer, _, budget = prompt_rules(config)
    assert training_record(config, budget, tokenizer) == read_model_record(output / "final" / "training_config.json")[0]

    # the adapter folder says how it was trained: evaluation can default to the same retrieval and prompt
    final = output / "final"
    assert trained_settings(final) == {"use_profile": True, "retriever": "bm25", "num_retrieved": 2,
                                       "max_prompt_length": 128, "use_chat_template": False}
    assert trained_settings(tiny_llama) is None
    evaluated = zero_shot(tmp_path, final, sample_dir, sample_cache, "evaluated", "--use_profile", "--num_retrieved",
                          "2", "--max_prompt_length", "128", "--no-use_chat_template")
    record = read_record(evaluated / "scores.json")
    assert record.model.fine_tuned and record.model.base_model == str(tiny_llama)
    evaluated_text = (evaluated / "README.md").read_text(encoding="utf-8")
    assert title(evaluated_text).endswith("(fine-tuned model, with profile)")
    assert_every_setting_shown(evaluated, evaluated_text)
    assert_zero_shot_command_repeats(evaluated, evaluated_text, [final, tiny_llama, sample_dir], sample_cache)


@pytest.mark.slow
def test_a_per_user_card_reads_back_every_setting_and_its_command_repeats_the_run(tmp_path, tiny_llama, sample_dir,
                                                                                 sample_cache):
    from evaluation.zero_shot.per_user import prepare

    folder = tmp_path / "summaries"
    assert evaluate_per_user.main(["--model_name", str(tiny_llama), "--data", CONFIG, "--data_dir", str(sample_dir),
                                   "--cache_dir", sample_cache, "--max_new_tokens", "6", "--max_prompt_length", "300",
                                   "--use_profile", "--use_summary", "--summary_of", "retrieved",
                                   "--summary_max_new_tokens", "6", "--output_dir", str(folder)]) == 0
    text = str(build_run_card(folder))
    assert_every_setting_shown(folder, text)
    assert title(text).endswith("(a summary of the retrieved items, with profile)")
    argv = reproduce_argv(text, [tiny_llama, sample_dir], 2)
    assert prepare(evaluate_per_user.parse_args([*argv, "--cache_dir", sample_cache])).record == read_record(
        folder / "scores.json")


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_zero_shot_cards_command_run_as_it_stands_gives_the_same_predictions_and_scores(
        tmp_path, tiny_llama, sample_dir, sample_cache):
    folder = tmp_path / "run"
    assert evaluate_llm.main(["--validation_data", CONFIG, "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
                              "--model_name", str(tiny_llama), "--output_dir", str(folder), "--max_new_tokens", "6",
                              "--max_eval_examples", "3", "--use_profile", "--num_retrieved", "2",
                              "--compare_no_profile"]) == 0
    again = tmp_path / "again"
    run_card_command((folder / "README.md").read_text(encoding="utf-8"), [tiny_llama, sample_dir], again,
                     tmp_path / "cache")
    for variant in ("", "no_profile"):  # with profile, and the run without profile it was compared with
        assert json_of(again / variant / "predictions.json") == json_of(folder / variant / "predictions.json")
        assert json_of(again / variant / "scores.json")["scores"] == json_of(folder / variant / "scores.json")["scores"]
    assert [v.record for v in read_run(again).variants] == [v.record for v in read_run(folder).variants]


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_lora_cards_command_run_as_it_stands_trains_the_same_adapter_to_the_same_scores(
        tmp_path, tiny_llama, short_data):
    import torch
    from support.training import weights

    train_rows, validation_rows = short_data
    output = tmp_path / "lora"
    flags = run_flags(tiny_llama, output, train_rows, validation_rows, max_steps=2, use_lora=True,
                      use_profile=True, num_retrieved=2, eval_generation_examples=2, max_new_tokens=6,
                      no_use_chat_template=True)
    done = subprocess.run([sys.executable, "-m", "training.train", *flags], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **same_threads(), "PYTHONPATH": str(REPO)}, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    again = tmp_path / "again"
    run_card_command((output / "README.md").read_text(encoding="utf-8"), [tiny_llama, train_rows, validation_rows],
                     again, tmp_path / "cache")
    first, second = (weights(folder / "final" / "adapter_model.safetensors") for folder in (output, again))
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)
    for name in ("predictions.json", "scores.json"):  # the validation generations at the end of training
        first, second = json_of(output / "validation" / name), json_of(again / "validation" / name)
        assert (second.get("scores"), second.get("golds")) == (first.get("scores"), first.get("golds"))
    assert read_model_record(again / "final" / "training_config.json")[0] == read_model_record(
        output / "final" / "training_config.json")[0]
