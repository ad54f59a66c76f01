"""train.py refuses, before it writes anything, encodes data or loads a model, what would fail or silently give a
wrong result later: one `error:` line, exit code 2. And what it accepts instead: the flag vocabulary with the older
names as aliases, schedule arguments, a dense retriever of one's choice, paths as Path objects."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
from support.training import CONFIG, reset_accelerate, run_flags

from longlamp_cli import run_command
from longlamp_errors import ConfigError, UsageError
from longlamp_runs import (
    migrate_unversioned,
    read_model_record,
    read_record,
    record_from_flags,
    trained_settings,
)
from training.config import TrainConfig, parse_args, parser
from training.loop import train
from training.record import changes
from training.train import main


def refused(argv, capsys) -> str:
    """Run train.py's main as its entry point does; return the one error line."""
    reset_accelerate()
    capsys.readouterr()  # what earlier steps of the test printed
    assert run_command(main, [str(flag) for flag in argv], prog="train.py") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), lines
    return lines[0]


def test_a_config_file_value_of_the_wrong_type_is_refused_naming_the_key(tiny_llama, short_data, tmp_path, capsys):
    settings = tmp_path / "run.yaml"
    settings.write_text("learning_rate: 2e-4\nlora_r: 8\n")  # YAML 1.1 reads 2e-4 as a string
    line = refused(run_flags(tiny_llama, tmp_path / "run", short_data[0]) + ["--config", settings], capsys)
    assert f"{settings}: learning_rate: expected a float, got str '2e-4'" in line and "2.0e-4" in line
    assert not (tmp_path / "run").exists()
    for text, key in (("use_lora: 'yes'\n", "use_lora"), ("num_retrieved: 2.5\n", "num_retrieved"),
                      ("max_steps: true\n", "max_steps"), ("model_name: [a, b]\n", "model_name")):
        settings.write_text(text)
        with pytest.raises(ConfigError, match=f"{key}: expected"):
            parser().read_settings(settings)
    with pytest.raises(ConfigError, match="learning_rate: expected a float"):
        TrainConfig(model_name="m", output_dir="o", train_data=CONFIG, learning_rate="1e-4").validate()


def test_older_names_are_aliases_in_flags_and_config_files(tmp_path):
    config = parse_args(["--train_data", CONFIG, "--output_dir", "o", "--model_addr", "m", "--model_dtype",
                         "bfloat16", "--generation_max_new_tokens", "7", "--preprocessing_num_workers", "2",
                         "--max_prompt_tokens", "300"])
    assert (config.model_name, config.dtype, config.max_new_tokens, config.num_workers, config.max_prompt_length) == \
        ("m", "bfloat16", 7, 2, 300)
    base = ["--train_data", CONFIG, "--output_dir", "o", "--model_name", "m"]
    assert parse_args(base + ["--no_use_chat_template"]).use_chat_template is False
    assert parse_args(base + ["--no-use_chat_template"]).use_chat_template is False
    assert parse_args(base + ["--use_chat_template"]).use_chat_template is True
    settings = tmp_path / "run.json"
    settings.write_text(json.dumps({"model_addr": "m", "model_dtype": "float16", "preprocessing_num_workers": 3,
                                    "lr_scheduler_kwargs": {"min_lr_rate": 0.1}}))
    config = parse_args(["--config", str(settings), "--train_data", CONFIG, "--output_dir", "o"])
    assert (config.model_name, config.dtype, config.num_workers) == ("m", "float16", 3)
    assert config.scheduler_kwargs() == {"min_lr_rate": 0.1}
    # A run recorded before the rename (toolkit 0.1.0: flat, no version) names the setting by its older name: the
    # migration of longlamp_runs maps it, so it is still compared.
    recorded = {name: value for name, value in config.to_dict().items() if name != "dtype"}
    old = migrate_unversioned({**recorded, "model_dtype": "bfloat16"})
    assert changes(old, record_from_flags("training", config.to_dict())) == {"model.dtype": ("bfloat16", "float16")}
    settings.write_text(json.dumps({"model_addr": "m", "model_name": "n"}))
    with pytest.raises(ConfigError, match="model_addr and model_name name the same setting"):
        parser().read_settings(settings)


def test_help_shows_defaults_and_choices(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--dtype {auto,float32,bfloat16,float16}, --model_dtype {auto,float32,bfloat16,float16}" in text
    assert "(default: 5e-05)" in text and "(default: facebook/contriever)" in text
    assert "--lr_scheduler {linear,cosine," in text and "--max_new_tokens INT, --generation_max_new_tokens INT" in text


def test_schedulers_that_need_arguments_are_refused_without_them_and_run_with_them(tiny_llama, short_data, tmp_path,
                                                                                     capsys, fresh_accelerate):
    flags = run_flags(tiny_llama, tmp_path / "run", short_data[0], max_steps=2)
    for name, needs in (("cosine_with_min_lr", "min_lr"), ("warmup_stable_decay", "num_decay_steps")):
        line = refused(flags + ["--lr_scheduler", name], capsys)
        assert f"--lr_scheduler {name}" in line and needs in line and "--lr_scheduler_kwargs" in line
    assert not (tmp_path / "run").exists()
    for name, kwargs in (("cosine_with_min_lr", {"min_lr_rate": 0.1}), ("warmup_stable_decay", {"num_decay_steps": 1})):
        reset_accelerate()
        result = train(parse_args(run_flags(tiny_llama, tmp_path / name, short_data[0], max_steps=2, warmup_steps=1,
                                            lr_scheduler=name, lr_scheduler_kwargs=json.dumps(kwargs))))
        rates = [entry["learning_rate"] for entry in result.state.history if "learning_rate" in entry]
        assert rates[0] == pytest.approx(3e-3) and rates[-1] == pytest.approx(3e-3 * 0.1 if kwargs.get("min_lr_rate")
                                                                              else 0.0)


def test_generation_metrics_without_nltk_data_are_refused_before_training(tiny_llama, short_data, tmp_path, capsys,
                                                                          monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "no-nltk-data")])
    line = refused(run_flags(tiny_llama, tmp_path / "run", *short_data, eval_generation_examples=1), capsys)
    assert "--eval_generation_examples: METEOR needs NLTK data" in line
    assert not (tmp_path / "run").exists()


def test_packing_a_recurrent_model_is_refused_before_work(tmp_path, short_data, capsys):
    from support.tiny_models import make_mamba

    mamba = make_mamba(tmp_path / "mamba")
    line = refused(run_flags(mamba, tmp_path / "run", short_data[0], packing=True), capsys)
    assert "--packing cannot be used with 'mamba' models" in line
    assert not (tmp_path / "run").exists()


def test_packing_really_mixes_a_recurrent_models_examples(tmp_path):
    """Why the refusal: position-id restarts separate packed examples for attention, not for a recurrent state."""
    from support.tiny_models import make_mamba
    from transformers import AutoModelForCausalLM

    from training.collate import TrainingCollator
    from training.data import IGNORE_INDEX
    from training.loss import token_losses

    model = AutoModelForCausalLM.from_pretrained(make_mamba(tmp_path / "mamba")).eval()
    examples = [{"input_ids": list(range(5, 5 + n)), "labels": [IGNORE_INDEX] * 2 + list(range(7, 5 + n)), "row": i}
                for i, n in enumerate((6, 9, 4))]
    with torch.no_grad():
        padded, _ = token_losses(model, TrainingCollator(0)(examples), False)
        packed, _ = token_losses(model, TrainingCollator(0, packing=True)(examples), False)
    assert padded.shape == packed.shape and not torch.allclose(padded, packed, atol=1e-4)


def test_an_output_dir_holding_another_run_is_refused_unless_overwritten(tiny_llama, short_data, tmp_path, capsys,
                                                                         fresh_accelerate):
    run = tmp_path / "run"
    first = run_flags(tiny_llama, run, short_data[0], max_steps=1)
    train(parse_args(first))
    final = (run / "final" / "model.safetensors").read_bytes()

    line = refused(run_flags(tiny_llama, run, short_data[0], max_steps=1, learning_rate=0.1), capsys)
    assert f"--output_dir {run} holds another run (training.learning_rate: 0.003 -> 0.1)" in line and \
        "--overwrite_output_dir" in line
    assert (run / "final" / "model.safetensors").read_bytes() == final  # untouched

    line = refused(first, capsys)  # the same run, started again beside its checkpoints
    assert "holds checkpoints of this run: pass --resume_from_checkpoint latest" in line
    reset_accelerate()
    train(parse_args(first + ["--resume_from_checkpoint", "latest"]))  # the same run: resuming stays allowed

    reset_accelerate()
    train(parse_args(run_flags(tiny_llama, run, short_data[0], max_steps=1, learning_rate=0.1,
                               overwrite_output_dir=True)))
    assert (run / "final" / "model.safetensors").read_bytes() != final
    assert read_record(run / "training_run.json").training.learning_rate == 0.1
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["checkpoint-1"]


def test_a_folder_held_by_a_live_run_is_refused(tiny_llama, short_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    # The lock of a live process on this host (this test's parent), as a second run would find it.
    (run / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "command": "train.py"}))
    line = refused(run_flags(tiny_llama, run, short_data[0], max_steps=1), capsys)
    assert f"{run} is in use by train.py (pid {os.getppid()}" in line
    assert sorted(p.name for p in run.iterdir()) == [".lock"]


def test_a_config_given_paths_resumes(tiny_llama, short_data, tmp_path, fresh_accelerate):
    def config(**extra):
        return TrainConfig(task=CONFIG, train_data=short_data[0], model_name=tiny_llama, output_dir=tmp_path / "run",
                           max_steps=2, save_steps=1, per_device_train_batch_size=2, report_to="none",
                           cache_dir=tmp_path / "cache", **extra)

    train(config())
    reset_accelerate()
    resumed = train(config(resume_from_checkpoint="latest"))
    assert resumed.state.global_step == 2 and config().output_dir == str(tmp_path / "run")


@pytest.mark.slow
def test_on_the_fly_contriever_uses_the_retriever_model(tmp_path, tiny_llama, short_data, fresh_accelerate):
    from support.tiny_models import make_encoder

    encoder = make_encoder(tmp_path / "encoder")
    result = train(parse_args(run_flags(tiny_llama, tmp_path / "run", short_data[0], max_steps=1, use_profile=True,
                                        retriever="contriever", retriever_model=encoder, num_retrieved=1)))
    assert result.state.global_step == 1
    record, _ = read_model_record(tmp_path / "run" / "final" / "training_config.json")
    assert record.retrieval.retriever_model == str(encoder)
    assert trained_settings(tmp_path / "run" / "final")["retriever_model"] == str(encoder)


def test_encoded_data_is_saved_once_and_reused_by_the_same_settings(tiny_llama, short_data, tmp_path, caplog,
                                                                    fresh_accelerate):
    flags = run_flags(tiny_llama, tmp_path / "run", *short_data, max_steps=1, log_level="info")
    with caplog.at_level("INFO", logger="training"):
        train(parse_args(flags))
        assert len([r for r in caplog.records if r.getMessage().startswith("encoded ")]) == 2
        caplog.clear()
        reset_accelerate()
        train(parse_args(flags + ["--resume_from_checkpoint", "latest"]))
    assert not [r for r in caplog.records if r.getMessage().startswith("encoded ")]
    assert len([r for r in caplog.records if "reusing the encoded data" in r.getMessage()]) == 2
    cache = tmp_path / "datasets-cache" / "longlamp-encoded"
    assert len(list(cache.iterdir())) == 2
    reset_accelerate()
    train(parse_args(flags + ["--max_prompt_length", "120", "--overwrite_output_dir"]))  # another encoding
    assert len(list(cache.iterdir())) == 4


def test_generation_is_forced_to_sync_only_under_zero3_with_several_processes(fresh_accelerate):
    from accelerate import Accelerator

    from training.loop import synced_gpus
    from training.validation import generation_sync

    assert synced_gpus(Accelerator(cpu=True)) is None  # transformers decides (it syncs under FSDP)
    assert generation_sync(None) == {} and generation_sync(True) == {"synced_gpus": True}


def test_qlora_under_fsdp_or_zero3_stores_4bit_weights_in_the_weights_dtype_without_a_device_map():
    from training.modeling import quantization_kwargs

    sharded = quantization_kwargs(torch.bfloat16, "bf16", sharded=True)
    assert "device_map" not in sharded
    assert sharded["quantization_config"].bnb_4bit_quant_storage == torch.bfloat16
    assert sharded["quantization_config"].bnb_4bit_compute_dtype == torch.bfloat16
    single = quantization_kwargs(torch.bfloat16, "bf16", sharded=False, device_index=3)
    assert single["device_map"] == {"": 3} and single["quantization_config"].load_in_4bit


def test_ddp_timeout_is_a_setting(fresh_accelerate):
    assert parse_args(["--train_data", CONFIG, "--output_dir", "o", "--model_name", "m",
                       "--ddp_timeout", "7200"]).ddp_timeout == 7200
    with pytest.raises(UsageError, match="argument --ddp_timeout: must be at least 1, got 0"):
        parse_args(["--train_data", CONFIG, "--output_dir", "o", "--model_name", "m", "--ddp_timeout", "0"])
