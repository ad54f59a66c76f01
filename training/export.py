"""The fine-tuned model as users load it: `from_pretrained` folders in safetensors with the tokenizer
and a record of the training configuration (`training_config.json`).

With LoRA the folder is a standard PEFT adapter checkpoint (`PeftModel.from_pretrained(base, folder)`);
the merged export reloads the base in full precision and folds the adapter in, so it also works after
QLoRA or DeepSpeed ZeRO-3, where the weights in memory are quantised or partitioned.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from training.checkpoints import replace_dir, write_json_atomic

RECORD_FILE = "training_config.json"
logger = logging.getLogger(__name__)


def save_model(accelerator, model, tokenizer, directory: str | Path, record: dict) -> Path:
    """Write model (or adapter), tokenizer and `record` to `directory` atomically; call on every process."""
    directory = Path(directory)
    state_dict = accelerator.get_state_dict(model)  # gathers ZeRO-3 partitions: every process takes part
    if accelerator.is_main_process:
        tmp = directory.with_name(directory.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / RECORD_FILE, record)
        replace_dir(tmp, directory)
        logger.info("saved model to %s", directory)
    accelerator.wait_for_everyone()
    return directory


def export_merged(adapter_dir: str | Path, directory: str | Path, record: dict) -> Path:
    """The adapter's base model (as named in its adapter_config.json) with the adapter merged in, saved as a
    plain model folder in the base checkpoint's dtype."""
    from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM, PeftConfig
    from transformers import AutoTokenizer

    directory = Path(directory)
    task_type = PeftConfig.from_pretrained(str(adapter_dir)).task_type
    auto_class = AutoPeftModelForSeq2SeqLM if task_type == "SEQ_2_SEQ_LM" else AutoPeftModelForCausalLM
    merged = auto_class.from_pretrained(str(adapter_dir), dtype="auto").merge_and_unload()
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    merged.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(tmp)
    write_json_atomic(tmp / RECORD_FILE, {**record, "merged_from_adapter": str(adapter_dir)})
    replace_dir(tmp, directory)
    logger.info("saved merged model to %s", directory)
    return directory
