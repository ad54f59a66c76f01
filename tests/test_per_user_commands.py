"""The per-user commands end to end on the bundled sample: style vectors written per user with a layer and scale
chosen on validation, and read back by evaluate_per_user.py (scale 0: the plain predictions exactly); summaries
generated on the first run and reused by the next; refusals named in one error line."""

from __future__ import annotations

import json

from longlamp_cli import run_command

SAMPLE_FLAGS = ["--data", "product_review_user", "--max_new_tokens", "6", "--max_prompt_length", "300"]


def common(tiny_llama, sample_dir, sample_cache) -> list[str]:
    return ["--model_name", str(tiny_llama), "--data_dir", str(sample_dir), "--cache_dir", sample_cache, *SAMPLE_FLAGS]


def outputs(path) -> list[str]:
    return [gold["output"] for gold in json.loads(path.read_text())["golds"]]


def test_style_vectors_are_chosen_on_validation_and_scale_zero_predicts_as_the_plain_model(
        tiny_llama, sample_dir, sample_cache, tmp_path):
    from evaluation.evaluate_per_user import main as evaluate
    from training.train_style_vectors import main as train_vectors

    flags = common(tiny_llama, sample_dir, sample_cache)
    style_dir = tmp_path / "style"
    assert train_vectors([*flags, "--output_dir", str(style_dir), "--scales", "0,50", "--max_items_per_user",
                          "2"]) == 0
    assert len(list(style_dir.glob("*.safetensors"))) == 4  # test users with a profile (the first has none)
    selection = json.loads((style_dir / "style_selection.json").read_text())
    assert selection["layer"] == 1 and [t["scale"] for t in selection["tried"]] == [0.0, 50.0]

    assert evaluate([*flags, "--output_file", str(tmp_path / "plain.json")]) == 0
    assert evaluate([*flags, "--style_vectors_dir", str(style_dir), "--style_scale", "0",
                     "--output_file", str(tmp_path / "zero.json")]) == 0
    assert evaluate([*flags, "--style_vectors_dir", str(style_dir), "--style_scale", "50",
                     "--output_file", str(tmp_path / "steered.json")]) == 0
    plain = outputs(tmp_path / "plain.json")
    assert outputs(tmp_path / "zero.json") == plain
    assert outputs(tmp_path / "steered.json") != plain
    golds = json.loads((tmp_path / "plain.json").read_text())["golds"]
    assert golds[0]["user"] == "user_0017_jazz" and json.loads((tmp_path / "plain.json").read_text())["task"] \
        == "LongLaMP_product_review_user"


def test_summaries_are_generated_by_the_first_run_and_reused_by_the_next(tiny_llama, sample_dir, sample_cache,
                                                                        tmp_path):
    from evaluation.evaluate_per_user import main as evaluate

    flags = [*common(tiny_llama, sample_dir, sample_cache), "--use_summary", "--summary_max_new_tokens", "8",
             "--summary_cache_dir", str(tmp_path / "summaries")]
    assert evaluate([*flags, "--output_file", str(tmp_path / "first.json")]) == 0
    cached = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "summaries").glob("*.json")}
    assert len(cached) == 4  # one per test user with a profile
    assert evaluate([*flags, "--output_file", str(tmp_path / "second.json")]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "summaries").glob("*.json")} == cached
    assert outputs(tmp_path / "second.json") == outputs(tmp_path / "first.json")


def test_refusals_are_one_error_line(tiny_llama, sample_dir, sample_cache, tmp_path, capsys):
    from evaluation.evaluate_per_user import main as evaluate

    flags = [*common(tiny_llama, sample_dir, sample_cache), "--output_file", str(tmp_path / "p.json")]
    assert run_command(evaluate, [*flags, "--use_summary", "--summary_of", "retrieved"], "evaluate_per_user.py") == 2
    assert "--summary_of retrieved summarises the retrieved items: add --use_profile" in capsys.readouterr().err
    assert run_command(evaluate, [*flags, "--style_vectors_dir", str(tmp_path)], "evaluate_per_user.py") == 2
    assert "no style_selection.json" in capsys.readouterr().err
    (tmp_path / "empty" / "users").mkdir(parents=True)
    assert run_command(evaluate, [*flags, "--adapters_dir", str(tmp_path / "empty")], "evaluate_per_user.py") == 2
    assert "holds no finished user adapter" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
