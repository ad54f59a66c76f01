"""Loading the model to fine-tune: decoder-only or encoder-decoder, fully trainable, LoRA or QLoRA."""

from __future__ import annotations

import importlib.util
import inspect
import logging

import torch

from generation.dtypes import torch_dtype
from longlamp_errors import ConfigError, ModelLoadError
from training.config import TrainConfig

logger = logging.getLogger(__name__)

# Architectures with recurrent (state-space, RWKV, xLSTM) layers: their state runs on across the position-id
# restarts of a packed row, so packed examples would leak into each other (a tiny Mamba's per-example loss moves
# by 5.8e-3). model_type values of transformers' configs.
RECURRENT_MODEL_TYPES = frozenset({
    "mamba", "mamba2", "falcon_mamba", "jamba", "bamba", "falcon_h1", "zamba", "zamba2", "lfm2", "lfm2_moe",
    "nemotron_h", "granitemoehybrid", "recurrent_gemma", "rwkv", "xlstm",
})


def load_model_config(model_name: str):
    """The model's configuration: cheap, so that a wrong --model_name fails before data or weights are touched."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_name)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load model {model_name!r}: not a model folder, or not reachable on the Hub "
                             f"({type(error).__name__}: {str(error).splitlines()[0]})") from None


def load_tokenizer(model_name: str):
    """The model's tokenizer; decoder-only tokenizers without a padding token pad with end-of-sequence."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load the tokenizer of {model_name!r}: {str(error).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_encoder_decoder(model_config) -> bool:
    return bool(getattr(model_config, "is_encoder_decoder", False))


def check_packing_supported(model_config) -> None:
    """--packing needs every layer to restart at the position-id boundaries; refuse recurrent and hybrid models."""
    if model_config.model_type in RECURRENT_MODEL_TYPES:
        raise ConfigError(f"--packing cannot be used with {model_config.model_type!r} models: their recurrent "
                          "(state-space) layers carry state from one packed example into the next; drop --packing "
                          "(padded batches, or --group_by_length for less padding)")


def check_quantization_available() -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU; say so before anything else is loaded."""
    if not torch.cuda.is_available():
        raise ConfigError("--load_in_4bit (QLoRA) needs a CUDA GPU; none is visible")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("--load_in_4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes")


def weights_dtype(config: TrainConfig, mixed_precision: str) -> torch.dtype:
    """--dtype as generation/dtypes.py resolves it: trained weights stay float32 (mixed precision keeps master
    weights in float32); a frozen LoRA base may live in the mixed-precision dtype and save half the memory."""
    return torch_dtype(config.dtype, trained=not config.use_lora, mixed_precision=mixed_precision)


def lora_target_modules(spec: str, model_type: str) -> list[str] | str:
    """Modules LoRA adapts: the listed names, "all-linear", or (auto) peft's default for the architecture."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if spec == "auto":
        return list(DEFAULTS.get(model_type, [])) or "all-linear"
    if spec == "all-linear":
        return spec
    return [name.strip() for name in spec.split(",") if name.strip()]


def quantization_kwargs(dtype: torch.dtype, mixed_precision: str, sharded: bool, device_index: int = 0) -> dict:
    """`from_pretrained` arguments of a QLoRA base: 4-bit NF4 with double quantisation. Sharded (FSDP, ZeRO-3)
    the packed 4-bit weights are stored in the other weights' dtype, so that they flatten and shard with them, and
    no device_map is given (the sharding places them); otherwise the whole base goes on this process's GPU."""
    from transformers import BitsAndBytesConfig

    options = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                   bnb_4bit_compute_dtype=torch_dtype("auto", mixed_precision=mixed_precision))
    if sharded:
        return {"quantization_config": BitsAndBytesConfig(**options, bnb_4bit_quant_storage=dtype)}
    return {"quantization_config": BitsAndBytesConfig(**options), "device_map": {"": device_index}}


def load_model(config: TrainConfig, model_config, mixed_precision: str, device_index: int = 0, sharded: bool = False):
    """The model ready for training: gradient checkpointing, 4-bit base and LoRA adapter as configured; `sharded`
    says that FSDP or ZeRO-3 will shard the parameters."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    encoder_decoder = is_encoder_decoder(model_config)
    auto_class = AutoModelForSeq2SeqLM if encoder_decoder else AutoModelForCausalLM
    kwargs = {"dtype": weights_dtype(config, mixed_precision)}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    if config.load_in_4bit:
        kwargs.update(quantization_kwargs(kwargs["dtype"], mixed_precision, sharded, device_index))
    try:
        model = auto_class.from_pretrained(config.model_name, **kwargs)
    except ValueError as error:  # e.g. a config of an architecture that is not a language model
        raise ModelLoadError(f"{config.model_name!r} cannot be loaded as {auto_class.__name__}: {error}") from None
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    sharded_4bit = config.load_in_4bit and sharded
    if config.load_in_4bit and not sharded:  # (sharded, as trl does: it would upcast norms, breaking one dtype)
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.use_lora:
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=lora_target_modules(config.lora_target_modules, model_config.model_type),
        )
        try:
            # Sharded QLoRA keeps the adapter in the base's dtype: FSDP flattens parameters of one dtype.
            model = get_peft_model(model, lora, autocast_adapter_dtype=not sharded_4bit)
        except ValueError as error:  # peft names the target modules it could not find
            raise ConfigError(f"--lora_target_modules: {error}") from None
        trainable, total = model.get_nb_trainable_parameters()
        logger.info("LoRA adapter: %d trainable parameters of %d (%.2f%%)", trainable, total, 100 * trainable / total)
    return model


def accepts_logits_to_keep(model) -> bool:
    """Whether the (unwrapped, non-PEFT) model can skip projecting prompt positions onto the vocabulary."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
