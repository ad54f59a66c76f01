"""The fine-tuned model as users load it: `from_pretrained` folders in safetensors with the tokenizer
and a record of the training configuration (`training_config.json`).

With LoRA the folder is a standard PEFT adapter checkpoint (`PeftModel.from_pretrained(base, folder)`);
the merged export reloads the base in its own dtype and folds the saved adapter in, in a fresh process
(`python -m training.export ADAPTER_DIR OUTPUT_DIR`, the command around `export_merged`): the weights in the
training process may be quantised (QLoRA) or partitioned (ZeRO-3), and there `from_pretrained` would enter
DeepSpeed's `zero.Init` (empty parameters with one process, a hang with several).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from longlamp_io import replace_folder
from longlamp_runs import TRAINING_RECORD_FILE, RunRecord, TrainingOutcome, read_model_record, write_model_record

REPO = Path(__file__).resolve().parent.parent
# Set by launchers (accelerate, torchrun, DeepSpeed); the merging process must not think it is part of the job.
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                      "MASTER_PORT", "CROSS_RANK", "CROSS_SIZE")
logger = logging.getLogger(__name__)


def save_model(accelerator, model, tokenizer, directory: str | Path, record: RunRecord,
               outcome: TrainingOutcome) -> Path:
    """Write model (or adapter), tokenizer and the run's record and outcome (training_config.json) to `directory`
    atomically; call on every process."""
    directory = Path(directory)
    state_dict = accelerator.get_state_dict(model)  # gathers ZeRO-3 partitions: every process takes part
    if accelerator.is_main_process:
        tmp = directory.with_name(directory.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_model_record(tmp, record, outcome)
        replace_folder(tmp, directory)
        logger.info("saved model to %s", directory)
    accelerator.wait_for_everyone()
    return directory


def export_merged(adapter_dir: str | Path, directory: str | Path) -> Path:
    """The adapter's base model (as named in its adapter_config.json) with the adapter merged in, saved as a
    plain model folder in the base checkpoint's dtype, with the adapter's training record (when it has one) and its
    origin."""
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
    if (Path(adapter_dir) / TRAINING_RECORD_FILE).is_file():
        record, outcome = read_model_record(Path(adapter_dir) / TRAINING_RECORD_FILE)
        write_model_record(tmp, record, dataclasses.replace(outcome, merged_from_adapter=str(adapter_dir)))
    replace_folder(tmp, directory)
    logger.info("saved merged model to %s", directory)
    return directory


def export_merged_in_clean_process(adapter_dir: str | Path, directory: str | Path) -> Path:
    """`export_merged` in a fresh Python process, away from the training process's DeepSpeed/FSDP state. Raises
    RuntimeError with the process's output when it fails."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("ACCELERATE_") and name not in LAUNCHER_VARIABLES}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "training.export", str(adapter_dir), str(directory)],
                          env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"merging the adapter {adapter_dir} failed:\n{done.stderr[-4000:]}")
    return Path(directory)
