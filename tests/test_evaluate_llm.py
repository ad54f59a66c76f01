"""Zero-shot evaluation end to end: the bundled sample, a tiny model built here, the project's scorer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.kill import kill_once_written

from evaluation import compare, eval_task, evaluate_llm
from evaluation.zero_shot import ZeroShotOptions, evaluate
from generation.hf_transformers import TransformersGenerator
from longlamp_cli import run_command
from longlamp_runs import read_record
from longlamp_tasks import TASKS
from scoring.metrics import score

REPO = Path(__file__).resolve().parents[1]
REVIEW = TASKS["product_review"]
GENERATION = ["--max_new_tokens", "12", "--batch_size", "2"]


def cli(model: Path, output_dir: Path, sample_dir, cache, *extra: str) -> list[str]:
    return ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir", cache,
            "--model_addr", str(model), "--output_dir", str(output_dir), *GENERATION, *extra]


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def sample_rows(sample_dir, cache, split="validation"):
    import longlamp

    return list(longlamp.load("product_review_user", split=split, data_dir=str(sample_dir), cache_dir=cache))


@pytest.mark.slow
def test_without_profile_writes_benchmark_files_that_eval_task_scores(tiny_llama, tmp_path, sample_dir, sample_cache):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache)) == 0
    rows = sample_rows(sample_dir, sample_cache)
    predictions = read(tmp_path / "predictions.json")
    assert predictions["task"] == "LongLaMP_product_review_user"
    assert [p["id"] for p in predictions["golds"]] == [row["id"] for row in rows]
    assert all(isinstance(p["output"], str) and p["output"] for p in predictions["golds"])
    prompts = read(tmp_path / "prompts.json")
    assert [p["prompt"] for p in prompts] == [row["input"] for row in rows]  # the non-personalised baseline
    assert {p["profile_items"] for p in prompts} == {0}
    golds = read(tmp_path / "golds.json")["golds"]
    assert [(g["id"], g["output"], g["user"]) for g in golds] == [(r["id"], r["output"], r["reviewerId"]) for r in rows]

    scores = read(tmp_path / "scores.json")
    assert set(scores["scores"]["metrics"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "meteor"}
    outputs = [p["output"] for p in predictions["golds"]]
    assert scores["scores"]["metrics"] == score(outputs, [row["output"] for row in rows])["metrics"]
    record = read_record(tmp_path / "scores.json")
    assert record.model.name == str(tiny_llama) and record.retrieval.use_profile is False
    assert (record.generation.max_new_tokens, record.generation.do_sample, record.model.dtype) == (12, False, "float32")
    assert record.prompt.max_prompt_length == 1024  # the default budget, as in training

    # The benchmark's scorer takes the files as they are, and agrees.
    assert eval_task.main(["--golds_json", str(tmp_path / "golds.json"),
                           "--preds_json", str(tmp_path / "predictions.json"),
                           "--task_name", "LongLaMP_product_review_user",
                           "--output_file", str(tmp_path / "eval.json"), "--num_workers", "1"]) == 0
    assert read(tmp_path / "eval.json")["metrics"] == scores["scores"]["metrics"]


@pytest.mark.slow
def test_with_profile_and_comparison(tiny_llama, tmp_path, sample_dir, sample_cache):
    args = cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--use_profile", "--retriever", "bm25",
               "--num_retrieved", "2", "--compare_no_profile")
    assert evaluate_llm.main(args) == 0
    rows = sample_rows(sample_dir, sample_cache)
    prompts = read(tmp_path / "prompts.json")
    assert [p["profile_items"] for p in prompts] == [min(2, len(row["profile"])) for row in rows]
    for prompt, row in zip(prompts, rows):
        assert prompt["prompt"].endswith(row["input"])
        if row["profile"]:
            assert " is a rating for the product with description " in prompt["prompt"]
    assert [p["prompt"] for p in read(tmp_path / "no_profile" / "prompts.json")] == [r["input"] for r in rows]

    with_profile, without = read(tmp_path / "scores.json"), read(tmp_path / "no_profile" / "scores.json")
    ours, theirs = read_record(tmp_path / "scores.json"), read_record(tmp_path / "no_profile" / "scores.json")
    assert (ours.retrieval.retriever, ours.retrieval.signature, ours.retrieval.num_retrieved) == ("bm25", "bm25", 2)
    assert theirs.retrieval.use_profile is False and theirs.retrieval.retriever is None
    assert ours.model == theirs.model and ours.prompt == theirs.prompt and ours.data == theirs.data
    comparison = read(tmp_path / "comparison.json")
    assert comparison["with_profile"] == with_profile["scores"]["metrics"]
    assert comparison["no_profile"] == without["scores"]["metrics"]
    assert comparison["gain"]["rougeL"] == pytest.approx(comparison["with_profile"]["rougeL"]
                                                         - comparison["no_profile"]["rougeL"])

    # the gain's significance is compare.py's, run on the same files (compare.py is tested against scipy)
    standalone = tmp_path / "standalone.json"
    assert compare.main(["--golds", str(tmp_path / "golds.json"), "--preds_a",
                         str(tmp_path / "no_profile" / "predictions.json"), "--preds_b",
                         str(tmp_path / "predictions.json"), "--by_user", "--output_file", str(standalone)]) == 0
    standalone, significance = read(standalone), comparison["significance"]
    assert (significance["a"], significance["b"]) == ("no profile", "with profile")
    assert set(significance["metrics"]) == set(comparison["gain"])
    assert significance["metrics"]["rougeL"]["difference"] == pytest.approx(comparison["gain"]["rougeL"])
    assert significance["settings"] == standalone["settings"]
    assert significance["by_user"]["settings"] == standalone["by_user"]["settings"]
    for name in standalone["metrics"]:  # rouge1, rougeL, meteor
        assert significance["metrics"][name] == standalone["metrics"][name]
        assert significance["by_user"]["metrics"][name] == standalone["by_user"]["metrics"][name]


@pytest.mark.slow
def test_seeds_give_one_run_per_seed_and_their_mean_and_spread(tiny_llama, tmp_path, sample_dir, sample_cache,
                                                               capsys):
    sampling = ["--do_sample", "--temperature", "1.3"]
    assert evaluate_llm.main(cli(tiny_llama, tmp_path / "seeds", sample_dir, sample_cache, *sampling,
                                 "--seeds", "5,8", "--use_profile", "--num_retrieved", "1",
                                 "--compare_no_profile")) == 0
    printed = [line.split(" (")[0] for line in capsys.readouterr().out.splitlines() if "predictions.json" in line]
    assert printed == [str(tmp_path / "seeds" / folder / "predictions.json") for folder in
                       ("seed5", "seed8", "seed5/no_profile", "seed8/no_profile")]
    records = [read_record(Path(path).parent / "scores.json") for path in printed]
    assert [(r.generation.seed, r.retrieval.use_profile) for r in records] == [
        (5, True), (8, True), (5, False), (8, False)]
    assert evaluate_llm.main(cli(tiny_llama, tmp_path / "alone", sample_dir, sample_cache, *sampling, "--seed", "8",
                                 "--use_profile", "--num_retrieved", "1")) == 0
    # one seed of a --seeds run is exactly the run with that --seed
    assert read(tmp_path / "seeds" / "seed8" / "predictions.json") == read(tmp_path / "alone" / "predictions.json")
    assert read_record(tmp_path / "seeds" / "seed8" / "scores.json").generation.seed == 8
    five, eight = (read(tmp_path / "seeds" / f"seed{seed}" / "predictions.json") for seed in (5, 8))
    assert five != eight
    assert (tmp_path / "seeds" / "seed5" / "no_profile" / "scores.json").exists()
    assert (tmp_path / "seeds" / "seed5" / "comparison.json").exists()
    assert (tmp_path / "seeds" / "seed5" / "README.md").exists()

    summary = read(tmp_path / "seeds" / "seeds.json")
    assert summary["seeds"] == [5, 8]
    for part, folder in (("with_profile", ""), ("no_profile", "no_profile")):
        per_seed = [read(tmp_path / "seeds" / f"seed{seed}" / folder / "scores.json")["scores"]["metrics"]
                    for seed in (5, 8)]
        assert summary[part]["per_seed"] == {"5": per_seed[0], "8": per_seed[1]}
        for metric in per_seed[0]:
            values = [scores[metric] for scores in per_seed]
            assert summary[part]["mean"][metric] == pytest.approx(sum(values) / 2)
            assert summary[part]["std"][metric] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert summary["gain"]["mean"]["rougeL"] == pytest.approx(
        summary["with_profile"]["mean"]["rougeL"] - summary["no_profile"]["mean"]["rougeL"])

    # resumed with the same arguments, nothing is generated again
    before = (tmp_path / "seeds" / "seed5" / "progress.jsonl").read_bytes()
    assert evaluate_llm.main(cli(tiny_llama, tmp_path / "seeds", sample_dir, sample_cache, *sampling,
                                 "--seeds", "5,8", "--use_profile", "--num_retrieved", "1",
                                 "--compare_no_profile")) == 0
    assert (tmp_path / "seeds" / "seed5" / "progress.jsonl").read_bytes() == before


def test_prompts_are_the_ones_training_builds(tiny_llama, sample_dir, sample_cache, tmp_path):
    """One definition: the same rows give the same prompt text in training and in zero-shot evaluation."""
    from transformers import AutoTokenizer

    from retrieval import get_retriever
    from training.data import ExampleEncoder

    evaluate(ZeroShotOptions(validation_data="product_review_user", data_dir=str(sample_dir), cache_dir=sample_cache,
                             model_name=str(tiny_llama), output_dir=str(tmp_path), use_profile=True, num_retrieved=3,
                             max_prompt_length=300, max_new_tokens=4))
    encoder = ExampleEncoder(REVIEW, AutoTokenizer.from_pretrained(tiny_llama), is_encoder_decoder=False,
                             max_prompt_length=300, max_target_length=1000, num_retrieved=3,
                             retriever=get_retriever("bm25"))
    expected = [encoder.prompt(row) for row in sample_rows(sample_dir, sample_cache)]
    assert [p["prompt"] for p in read(tmp_path / "prompts.json")] == expected


def test_chat_model_gets_its_template(tiny_chat_llama, tmp_path, sample_dir, sample_cache):
    assert evaluate_llm.main(cli(tiny_chat_llama, tmp_path, sample_dir, sample_cache, "--limit", "2")) == 0
    prompts = read(tmp_path / "prompts.json")
    assert len(prompts) == 2 and len(read(tmp_path / "predictions.json")["golds"]) == 2
    assert all(p["prompt"].startswith("<|user|>\n") and p["prompt"].endswith("<|assistant|>\n") for p in prompts)
    assert read_record(tmp_path / "scores.json").prompt.chat_template is True


@pytest.mark.multiprocess
@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_file(tiny_llama, tmp_path, sample_dir, sample_cache):
    """A real SIGKILL in the middle of generation, then the same command again."""
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    slow = ["--validation_data", "product_review_user", "--data_dir", str(sample_dir), "--cache_dir", sample_cache,
            "--model_addr", str(tiny_llama), "--max_new_tokens", "60", "--batch_size", "1"]
    assert evaluate_llm.main([*slow, "--output_dir", str(reference)]) == 0

    command = [sys.executable, "evaluation/evaluate_llm.py", *slow, "--output_dir", str(resumed)]
    progress = resumed / "progress.jsonl"
    finished = kill_once_written(command, progress, 2, REPO)  # the settings line and one example
    assert 1 <= finished < 5 and not (resumed / "predictions.json").exists()

    assert evaluate_llm.main([*slow, "--output_dir", str(resumed)]) == 0
    assert (resumed / "predictions.json").read_bytes() == (reference / "predictions.json").read_bytes()
    assert progress.read_text(encoding="utf-8").count("\n") == 1 + 5  # nothing generated twice


@pytest.mark.slow
def test_resume_after_a_crash_with_sampling(tiny_llama, tmp_path, sample_dir, sample_cache, monkeypatch):
    """Sampled outputs too: the batch plan and seeds do not depend on where the run stopped."""

    args = cli(tiny_llama, tmp_path / "reference", sample_dir, sample_cache, "--do_sample", "--temperature", "1.3",
               "--seed", "5")
    assert evaluate_llm.main(args) == 0
    generate, calls = TransformersGenerator.generate_ids, []

    def crash_on_third_batch(self, prompts, seeds):
        calls.append(len(prompts))
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return generate(self, prompts, seeds)

    monkeypatch.setattr(TransformersGenerator, "generate_ids", crash_on_third_batch)
    crashed = [a if a != str(tmp_path / "reference") else str(tmp_path / "crashed") for a in args]
    with pytest.raises(RuntimeError, match="simulated"):
        evaluate_llm.main(crashed)
    assert len(read_progress(tmp_path / "crashed")) == 4  # the two finished batches are kept
    monkeypatch.setattr(TransformersGenerator, "generate_ids", generate)
    assert evaluate_llm.main(crashed) == 0
    assert read(tmp_path / "crashed" / "predictions.json") == read(tmp_path / "reference" / "predictions.json")


def read_progress(directory: Path) -> list[dict]:
    lines = (directory / "progress.jsonl").read_text(encoding="utf-8").split("\n")[1:-1]
    return [json.loads(line) for line in lines]


def test_resume_with_other_settings_is_refused(tiny_llama, tmp_path, sample_dir, sample_cache, capsys):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--limit", "2")) == 0
    assert run_command(evaluate_llm.main, cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--num_beams", "2")) == 2
    assert "generation.num_beams: 1 -> 2" in capsys.readouterr().err


def test_limit_then_full_run_reuses_what_is_done(tiny_llama, tmp_path, sample_dir, sample_cache):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--limit", "2")) == 0
    assert len(read(tmp_path / "predictions.json")["golds"]) == 2
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache)) == 0
    assert len(read(tmp_path / "predictions.json")["golds"]) == 5 and len(read_progress(tmp_path)) == 5


def test_split_without_outputs_is_generated_not_scored(tiny_llama, tmp_path, sample_dir, sample_cache, capsys):
    rows = sample_rows(sample_dir, sample_cache, split="test")
    data = tmp_path / "test_rows.jsonl"
    data.write_text("".join(json.dumps({**row, "output": None}) + "\n" for row in rows), encoding="utf-8")
    args = ["--validation_data", str(data), "--task", "product_review_user", "--model_addr", str(tiny_llama),
            "--output_dir", str(tmp_path / "out"), *GENERATION]
    assert evaluate_llm.main(args) == 0
    assert [p["id"] for p in read(tmp_path / "out" / "predictions.json")["golds"]] == [r["id"] for r in rows]
    scores = read(tmp_path / "out" / "scores.json")
    assert scores["scores"] is None and "5 of 5 examples" in scores["not_scored"]
    assert not (tmp_path / "out" / "golds.json").exists()
    assert "scoring was skipped" in capsys.readouterr().out


def test_prompt_that_cannot_fit_fails_before_generation(tiny_llama, tmp_path, sample_dir, sample_cache, capsys):
    args = cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--max_prompt_tokens", "20")
    assert run_command(evaluate_llm.main, args) == 2
    error = capsys.readouterr().err
    assert "example 'product_review_user-validation-0' (row 0)" in error and "task input alone takes" in error
    assert not (tmp_path / "progress.jsonl").exists() and not (tmp_path / "predictions.json").exists()


@pytest.mark.parametrize("replace, extra, message", [
    ({"--validation_data": "poetry_user"}, [], "unknown LongLaMP config 'poetry_user'"),
    ({}, ["--task", "topic_writing_user"], "--task 'topic_writing_user' contradicts --validation_data"),
    ({"--model_addr": "/nonexistent/model"}, [], "cannot load --model_name"),
    ({}, ["--compare_no_profile"], "add --use_profile"),
    ({}, ["--use_profile", "--retriever", "bm99"], "argument --retriever: invalid choice: 'bm99'"),
])
def test_bad_input_is_a_clear_error(tiny_llama, tmp_path, sample_dir, sample_cache, capsys, replace, extra, message):
    args = cli(tiny_llama, tmp_path, sample_dir, sample_cache, *extra)
    for flag, value in replace.items():
        args[args.index(flag) + 1] = value
    assert run_command(evaluate_llm.main, args) == 2
    assert message in capsys.readouterr().err


def test_model_that_produces_no_text_is_recorded_and_scored(tiny_llama, tmp_path, sample_dir, sample_cache, caplog):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    silent = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        silent.lm_head.weight.zero_()  # every logit equal: greedy picks token 0, <pad>, decoded as nothing
    silent.save_pretrained(tmp_path / "silent")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(tmp_path / "silent")
    assert evaluate_llm.main(cli(tmp_path / "silent", tmp_path / "out", sample_dir, sample_cache)) == 0
    assert {p["output"] for p in read(tmp_path / "out" / "predictions.json")["golds"]} == {""}
    scores = read(tmp_path / "out" / "scores.json")
    assert scores["empty_predictions"] == 5 and scores["scores"]["metrics"]["rouge1"] == 0
    assert "5 of 5 predictions are empty" in caplog.text


# --- results that stay correct across reruns ------------------------------------------------------------------


def changed_copy(sample_dir, destination: Path) -> Path:
    """A copy of the sample whose product_review_user validation inputs are all different (same ids)."""
    import shutil

    import pyarrow.parquet as pq

    shutil.copytree(sample_dir, destination)
    shard = destination / "product_review_user" / "val-00000-of-00001.parquet"
    table = pq.read_table(shard)
    changed = [text.replace("Generate the review text", "Write the review text") + " Be brief."
               for text in table.column("input").to_pylist()]
    pq.write_table(table.set_column(table.column_names.index("input"), "input", pa_array(changed)), shard)
    return destination


def pa_array(values):
    import pyarrow as pa

    return pa.array(values, pa.string())


@pytest.mark.slow
def test_rerun_on_changed_data_never_keeps_old_predictions(tiny_llama, tmp_path, sample_dir, sample_cache):
    """The issue's reproduction: --limit 2 on the sample, then the same command on a changed copy of it."""
    out = tmp_path / "run"
    assert evaluate_llm.main(cli(tiny_llama, out, sample_dir, sample_cache, "--limit", "2")) == 0
    copy = changed_copy(sample_dir, tmp_path / "sample-copy")
    assert evaluate_llm.main(cli(tiny_llama, out, copy, sample_cache, "--revision", "main")) == 0
    fresh = tmp_path / "fresh"
    assert evaluate_llm.main(cli(tiny_llama, fresh, copy, sample_cache)) == 0
    assert all(p["prompt"].startswith("Write the review text") for p in read(out / "prompts.json"))
    assert read(out / "predictions.json") == read(fresh / "predictions.json")
    assert len(read_progress(out)) == 5  # the two old lines are gone, not mixed in
    data = read_record(out / "scores.json").data
    assert data.data_dir == str(copy.resolve()) and data.fingerprint
    assert data.revision == "main"  # the Hub revision asked for is part of the record


def test_retrained_checkpoint_at_the_same_path_is_refused(tmp_path, sample_dir, sample_cache, capsys):
    from support.tiny_models import make_causal_lm

    model = make_causal_lm(tmp_path / "checkpoint", seed=0)
    assert evaluate_llm.main(cli(model, tmp_path / "out", sample_dir, sample_cache, "--limit", "2")) == 0
    make_causal_lm(model, seed=1)  # trained again, saved to the same folder
    assert run_command(evaluate_llm.main, cli(model, tmp_path / "out", sample_dir, sample_cache)) == 2
    error = capsys.readouterr().err
    assert "other settings than this run (model.fingerprint.base: 'sha256:" in error
    assert len(read_progress(tmp_path / "out")) == 2 and "Traceback" not in error


def test_scores_record_generation_lengths(tiny_llama, tmp_path, sample_dir, sample_cache):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache)) == 0
    lengths = read(tmp_path / "scores.json")["generation_lengths"]
    tokens = [line["tokens"] for line in read_progress(tmp_path)]
    assert lengths["max"] == max(tokens) <= 12 and lengths["min"] == min(tokens)
    assert lengths["hit_max_new_tokens"] == sum(line["hit_limit"] for line in read_progress(tmp_path))
    assert lengths["hit_max_new_tokens"] == sum(t == 12 for t in tokens) and lengths["max_new_tokens"] == 12


def test_reasoning_template_kwargs_and_think_blocks(tiny_chat_llama, tmp_path, sample_dir, sample_cache, monkeypatch):
    from transformers import AutoTokenizer

    thinking = tmp_path / "thinking"
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_llama)
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>\n{% if enable_thinking is defined and "
                               "not enable_thinking %}<think></think>{% endif %}{% endif %}")
    tokenizer.save_pretrained(thinking)
    AutoModelForCausalLM_save(tiny_chat_llama, thinking)
    finish = TransformersGenerator.finish
    monkeypatch.setattr(TransformersGenerator, "finish", lambda self, ids: type(finish(self, ids))(
        "<think>hmm</think>\n" + finish(self, ids).text, 3, False))
    args = cli(thinking, tmp_path / "out", sample_dir, sample_cache, "--limit", "2", "--chat_template_kwargs",
               '{"enable_thinking": false}')
    assert evaluate_llm.main(args) == 0
    assert all(p["prompt"].endswith("<|assistant|>\n<think></think>") for p in read(tmp_path / "out" / "prompts.json"))
    record = read_record(tmp_path / "out" / "scores.json")
    assert record.prompt.chat_template_kwargs == {"enable_thinking": False} and record.generation.strip_reasoning
    assert not any("<think>" in p["output"] for p in read(tmp_path / "out" / "predictions.json")["golds"])
    assert all(line["output"].startswith("<think>hmm</think>") for line in read_progress(tmp_path / "out"))
    kept = cli(thinking, tmp_path / "kept", sample_dir, sample_cache, "--limit", "2", "--keep_reasoning")
    assert evaluate_llm.main(kept) == 0
    assert all(p["output"].startswith("<think>hmm</think>")
               for p in read(tmp_path / "kept" / "predictions.json")["golds"])
    bad = cli(thinking, tmp_path / "bad", sample_dir, sample_cache, "--chat_template_kwargs", "[1]")
    assert run_command(evaluate_llm.main, bad) == 2 and not (tmp_path / "bad").exists()


def AutoModelForCausalLM_save(source: Path, destination: Path) -> None:
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(source).save_pretrained(destination)


def test_retriever_without_use_profile_warns_and_says_what_ran(tiny_llama, tmp_path, sample_dir, sample_cache,
                                                                caplog):
    assert evaluate_llm.main(cli(tiny_llama, tmp_path, sample_dir, sample_cache, "--limit", "2", "--retriever",
                                 "contriever", "--num_retrieved", "3")) == 0
    assert "--retriever and --num_retrieved given without --use_profile" in caplog.text
    assert "NON-PERSONALISED baseline" in caplog.text
    scores = read(tmp_path / "scores.json")
    assert not read_record(tmp_path / "scores.json").retrieval.use_profile
    assert "NON-PERSONALISED" in scores["ignored_flags"]


def test_scorer_task_name_is_accepted(tiny_llama, tmp_path, sample_dir, sample_cache):
    rows = sample_rows(sample_dir, sample_cache)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows[:2]), encoding="utf-8")
    args = ["--validation_data", str(data), "--task", "LongLaMP_product_review_user", "--model_addr",
            str(tiny_llama), "--output_dir", str(tmp_path / "out"), *GENERATION]
    assert evaluate_llm.main(args) == 0
    assert read(tmp_path / "out" / "predictions.json")["task"] == "LongLaMP_product_review_user"


@pytest.mark.parametrize("extra, message", [
    (["--max_prompt_length", "2040"], "--max_prompt_length 2040 + --max_new_tokens 12 is more than the model's "
                                      "position limit of 2048 tokens"),
    (["--max_new_tokens", "2048"], "no room for a prompt"),
    (["--limit", "0"], "argument --max_eval_examples: must be at least 1, got 0"),
    (["--seeds", "0,1"], "--seeds is for sampling runs"),
    (["--do_sample", "--seeds", "3"], "--seeds needs at least two distinct seeds"),
    (["--do_sample", "--seeds", "3,3"], "--seeds needs at least two distinct seeds"),
    (["--do_sample", "--seeds", "0,x"], "--seeds takes comma-separated integers"),
    (["--backend", "transformers", "--tensor_parallel_size", "2"], "backend 'transformers' does not take "
                                                                   "tensor_parallel_size"),
])
def test_impossible_lengths_and_options_are_refused_before_work(tiny_llama, tmp_path, sample_dir, sample_cache,
                                                                 capsys, extra, message):
    assert run_command(evaluate_llm.main, cli(tiny_llama, tmp_path / "out", sample_dir, sample_cache, *extra)) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "out" / "progress.jsonl").exists()


def test_is_ranked_reads_task_and_retriever_from_the_data(tiny_llama, tmp_path, sample_dir, sample_cache):
    import longlamp
    from retrieval import rank_dataset

    rows = longlamp.load("product_review_user", split="validation", data_dir=str(sample_dir), cache_dir=sample_cache)
    ranked = rank_dataset(rows, "product_review", "recency", tmp_path / "ranked.parquet", progress=False)
    args = ["--validation_data", str(ranked), "--model_name", str(tiny_llama), "--output_dir", str(tmp_path / "out"),
            "--use_profile", "--is_ranked", "--num_retrieved", "2", *GENERATION]
    assert evaluate_llm.main(args) == 0  # no --task, no --retriever: the data says both
    record = read_record(tmp_path / "out" / "scores.json")
    assert record.task.config == "product_review_user" and record.retrieval.retriever == "recency"
    assert record.retrieval.signature == record.data.ranked_by == "recency" and record.retrieval.is_ranked
    wrong = [*args[:-4], "--retriever", "bm25", *GENERATION]
    with pytest.raises(ValueError, match="was ranked with 'recency', not with --retriever 'bm25'"):
        evaluate_llm.main([a if a != str(tmp_path / "out") else str(tmp_path / "wrong") for a in wrong])


@pytest.mark.multiprocess
def test_a_live_run_holds_its_folder(tiny_llama, tmp_path, sample_dir, sample_cache, capsys):
    import socket

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid,
                                                    "command": "evaluate_llm.py"}))
        assert run_command(evaluate_llm.main, cli(tiny_llama, tmp_path, sample_dir, sample_cache)) == 2
        assert f"is in use by evaluate_llm.py (pid {holder.pid}" in capsys.readouterr().err
        assert not (tmp_path / "progress.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()


class ProbeGenerator(TransformersGenerator):
    """The transformers backend, noting how many dense retrievers are still alive when the weights load."""

    name = "probe"
    alive_at_load: list[int] = []

    def __init__(self, source, settings, dtype="auto", device_map=None, trust_remote_code=False):
        import gc

        from retrieval.dense import DenseRetriever

        gc.collect()
        self.alive_at_load.append(sum(isinstance(o, DenseRetriever) for o in gc.get_objects()))
        super().__init__(source, settings, dtype, device_map, trust_remote_code)


@pytest.mark.slow
def test_dense_retriever_is_released_before_the_model_loads(tiny_llama, tmp_path, sample_dir, sample_cache,
                                                            monkeypatch):
    """On a GPU, vLLM takes a share of the memory that is free when it starts: the encoder must be gone by then."""
    from support.tiny_models import make_encoder

    import generation

    monkeypatch.setitem(generation.BACKENDS, "probe", "test_evaluate_llm:ProbeGenerator")
    monkeypatch.setattr(ProbeGenerator, "alive_at_load", [])
    encoder = make_encoder(tmp_path / "encoder")
    evaluate(ZeroShotOptions(validation_data="product_review_user", data_dir=str(sample_dir), cache_dir=sample_cache,
                             model_name=str(tiny_llama), output_dir=str(tmp_path / "out"), use_profile=True,
                             retriever="contriever", retriever_model=str(encoder),
                             embedding_cache_dir=str(tmp_path / "embeddings"), num_retrieved=2, max_new_tokens=4,
                             max_eval_examples=2, backend="probe"))
    assert ProbeGenerator.alive_at_load == [0]
    record = read_record(tmp_path / "out" / "scores.json")
    assert record.retrieval.signature.startswith(f"contriever(model_name={encoder}") and record.model.backend == "probe"
    assert record.retrieval.retriever_model == str(encoder)
    assert any((tmp_path / "embeddings").iterdir())  # --embedding_cache_dir reached the retriever
