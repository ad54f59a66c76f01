"""The run record of a fine-tuning run (`longlamp_runs.RunRecord`, kind "training") from its TrainConfig, and the
settings that a resumed or repeated run may change without becoming another run."""

from __future__ import annotations

from longlamp_prompts import context_length, prompt_budget, uses_chat_template
from longlamp_runs import RunRecord, differences, record_from_flags
from publishing.runs import public_record
from training.config import TrainConfig
from training.modeling import is_encoder_decoder, load_model_config, load_tokenizer

# Recorded settings a resumed run may change: how often it evaluates and saves, how much it generates at each
# evaluation and how, what it writes after training. (Where it writes and logs is never recorded at all.)
RESUMABLE = ("generation", "training.eval_steps", "training.save_steps", "training.save_total_limit",
             "training.eval_generation_examples", "training.per_device_eval_batch_size", "training.test_data",
             "training.merge_lora")


def prompt_rules(config: TrainConfig) -> tuple:
    """(model config, tokenizer, whether it is an encoder-decoder, the prompt budget) of the run `config` describes,
    read without the weights: zero-shot's budget rule, failing before any work."""
    model_config = load_model_config(config.model_name)
    tokenizer = load_tokenizer(config.model_name)
    encoder_decoder = is_encoder_decoder(model_config)
    budget = prompt_budget(config.max_prompt_length, context_length(model_config, tokenizer),
                           config.max_target_length, encoder_decoder, new_tokens_flag="--max_target_length")
    return model_config, tokenizer, encoder_decoder, budget


def training_record(config: TrainConfig, budget: int, tokenizer) -> RunRecord:
    """The record of the run `config` describes, with the prompt budget and chat-template choice it resolved for
    its model (`budget`: longlamp_prompts.prompt_budget's)."""
    values = {**config.to_dict(), "max_prompt_length": budget,
              "use_chat_template": uses_chat_template(tokenizer, config.use_chat_template)}
    return record_from_flags("training", values, "training settings")


def changes(recorded: RunRecord, record: RunRecord) -> dict[str, tuple]:
    """The settings that differ from a recorded run's and make this one another run. A checkpoint pushed to the Hub
    records local paths by their last part (publishing.runs.public_record): this run's are compared the same way."""
    if public_record(recorded) == recorded:
        record = public_record(record)
    return differences(recorded, record, RESUMABLE)
