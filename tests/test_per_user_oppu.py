"""Per-user adapters as OPPU trains them (TamSiuhin/OPPU, OPPU.py): its LoRA and optimisation defaults, warm-up then
linear decay, profile items cut to 768 words rather than skipped; and refusals that leave nothing behind: a
non-finite learning rate, a loss that turns non-finite (the user is not saved, and the corrected command runs)."""

from __future__ import annotations

import pytest
import torch

from longlamp_cli import run_command
from longlamp_runs import read_record
from longlamp_tasks import TASKS

REVIEW = TASKS["product_review"]
MINIMAL = ["--model_name", "m", "--data", "product_review_user", "--output_dir", "o"]


def test_the_defaults_are_oppus():
    from training.train_per_user import parse_args

    args = parse_args(MINIMAL)
    assert (args.lora_r, args.lora_alpha, args.lora_dropout) == (8, 8, 0.05)
    assert (args.learning_rate, args.num_train_epochs, args.per_device_train_batch_size) == (1e-4, 2, 16)
    assert (args.weight_decay, args.warmup_ratio, args.lr_scheduler, args.max_grad_norm) == (0.01, 0.1, "linear", 0.3)
    assert args.long_targets == "truncate"


def test_the_learning_rate_warms_up_over_a_tenth_of_the_steps_then_decays_linearly_to_zero():
    from training.user_adapters import TrainSettings, optimization

    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer, scheduler = optimization(TrainSettings(), [weight], steps=20)
    rates = []
    for _ in range(20):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0 and rates[1] == pytest.approx(5e-5) and rates[2] == pytest.approx(1e-4)
    assert rates[3:] == pytest.approx([1e-4 * (20 - step) / 18 for step in range(3, 20)])
    assert optimizer.param_groups[0]["weight_decay"] == 0.01


def test_long_profile_items_are_cut_to_768_words_and_long_targets_to_the_token_limit_not_skipped():
    from personalization.users import User, profile_examples
    from training.user_adapters import OPPU_MAX_WORDS, truncated

    long = " ".join(f"w{i}" for i in range(1000))
    item = {"overall": 5.0, "summary": "s", "description": long, "reviewText": long}
    (example,) = profile_examples(REVIEW, User("u", [], [item]), OPPU_MAX_WORDS)
    assert example["output"].split() == long.split()[:768] and len(example["input"].split()) < 800
    paragraphs = {**item, "reviewText": "First paragraph.\n\nSecond  one."}  # under the limit: kept as written
    (kept,) = profile_examples(REVIEW, User("u", [], [paragraphs]), OPPU_MAX_WORDS)
    assert kept["output"] == paragraphs["reviewText"]
    encoded = {"input_ids": list(range(10)) + list(range(100, 130)), "labels": [-100] * 10 + list(range(100, 130)),
               "prompt_length": 10, "target_length": 30, "length": 40}
    cut = truncated(encoded, 16, encoder_decoder=False)
    assert cut["input_ids"] == encoded["input_ids"][:26] and cut["labels"] == encoded["labels"][:26]
    assert (cut["target_length"], cut["length"]) == (16, 26)


def test_a_non_finite_learning_rate_is_refused_and_leaves_no_folder(tmp_path, capsys):
    from training.train_per_user import main

    output = tmp_path / "run"
    for value in ("inf", "nan", "-1"):
        argv = [*MINIMAL[:-1], str(output), "--learning_rate", value]
        assert run_command(main, argv) == 2
        assert "--learning_rate" in capsys.readouterr().err
    assert not output.exists()


def test_an_output_dir_that_is_a_file_is_one_error_line(tiny_llama, tmp_path, capsys):
    from training.train_per_user import main

    output = tmp_path / "a-file"
    output.write_text("not a folder")
    assert run_command(main, ["--model_name", str(tiny_llama), *MINIMAL[2:-1], str(output)]) == 2
    assert "--output_dir" in capsys.readouterr().err and output.read_text() == "not a folder"


@pytest.fixture
def broken_llama(tiny_llama, tmp_path):
    """The tiny Llama with one NaN weight: every loss it gives is NaN."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        model.get_output_embeddings().weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "broken")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(tmp_path / "broken")
    return tmp_path / "broken"


@pytest.mark.slow
def test_a_non_finite_loss_saves_no_user_and_leaves_no_settings_so_the_corrected_command_runs(
        tiny_llama, broken_llama, sample_dir, sample_cache, tmp_path, fresh_accelerate, capsys):
    from support.training import reset_accelerate

    from personalization.user_adapters import AdapterStore
    from training.train_per_user import main

    output = tmp_path / "run"
    common = ["--data", "product_review_user", "--split", "validation", "--data_dir", str(sample_dir), "--cache_dir",
              sample_cache, "--output_dir", str(output), "--max_users", "2", "--max_items_per_user", "2",
              "--max_prompt_length", "256", "--num_train_epochs", "1"]
    assert run_command(main, ["--model_name", str(broken_llama), *common]) == 2
    assert "the training loss is nan" in capsys.readouterr().err
    assert not AdapterStore(output).adapters() and not (output / "per_user_config.json").exists()
    reset_accelerate()
    assert main(["--model_name", str(tiny_llama), *common]) == 0  # not refused as "trained with other settings"
    assert len(AdapterStore(output).adapters()) == 1  # the first user has no profile
    assert read_record(output / "per_user_config.json").model.name == str(tiny_llama)
