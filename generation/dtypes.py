"""The dtypes a model's weights may be loaded in, and the one meaning of "auto".

"auto" is float32 for weights that are trained. Weights that stay frozen (generation, a LoRA base) take the
precision the computation runs in: under a mixed-precision setting (training under accelerate) its dtype, "bf16"
or "fp16", and float32 for "no"; without one (generation, per-user adapters, which do not autocast) bfloat16 on
a GPU that supports it and float32 elsewhere (half precision is slow and lossy on a CPU). Every backend, vLLM
included, and training resolve "auto" here, so the same flag loads the same weights everywhere.
"""

from __future__ import annotations

DTYPES = ("auto", "float32", "bfloat16", "float16")
MIXED_PRECISION_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}  # accelerate's mixed_precision -> its dtype


def resolve_dtype(name: str, *, trained: bool = False, mixed_precision: str | None = None) -> str:
    """The dtype `name` means (see the module docstring): `trained` weights, and the run's mixed-precision setting
    (None: the run has none)."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {DTYPES}")
    if name != "auto":
        return name
    if trained:
        return "float32"
    if mixed_precision is not None:
        return MIXED_PRECISION_DTYPES.get(mixed_precision, "float32")
    import torch

    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


def torch_dtype(name: str, *, trained: bool = False, mixed_precision: str | None = None):
    """The torch dtype of `resolve_dtype`."""
    import torch

    return getattr(torch, resolve_dtype(name, trained=trained, mixed_precision=mixed_precision))
