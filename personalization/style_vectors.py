"""Per-user style vectors (StyleVector, arXiv 2503.05213): steer generation with one vector per user.

A user's vector at a layer is the mean, over their profile items, of the difference between that layer's output
at the last token of (prompt + the user's real text) and of (prompt + a style-neutral text for the same prompt,
written by the model itself through a project backend). At generation the vector times a scale is added to the
layer's output at every position (a forward hook). Activations are read from the same hook point that steering
writes to, so extraction and steering agree on what "layer l" is: l counts decoder layers from 1.
One safetensors file per user holds the vector at each candidate layer; layer and scale are chosen on
validation (`choose_layer_and_scale`).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch

from longlamp_runs import STYLE_SELECTION_FILE
from personalization.users import user_folder_name


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's stack of decoder layers: the module list as long as the config's number of layers."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    count = getattr(config, "num_hidden_layers", None) or getattr(config, "num_decoder_layers", None)
    for name, module in base.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count and "encoder" not in name:
            return module
    raise ValueError(f"cannot find the {count} decoder layers of {type(base).__name__} to steer")


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def last_token_states(model, sequences: Sequence[Sequence[int]], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """(len(sequences), hidden) float32 states per layer: each layer's output at each sequence's last token."""
    stack, captured, handles = decoder_layers(model), {}, []
    for layer in layers:
        if not 1 <= layer <= len(stack):
            raise ValueError(f"layer {layer} is not one of the model's decoder layers (1 to {len(stack)})")
        handles.append(stack[layer - 1].register_forward_hook(
            lambda module, args, output, layer=layer: captured.__setitem__(layer, _hidden(output)[0, -1].float())))
    states = {layer: [] for layer in layers}
    device = next(model.parameters()).device
    try:
        model.eval()
        for ids in sequences:  # one at a time: no padding to move the last token
            model(input_ids=torch.tensor([list(ids)], device=device), use_cache=False)
            for layer in layers:
                states[layer].append(captured[layer].cpu())
    finally:
        for handle in handles:
            handle.remove()
    return {layer: torch.stack(rows) for layer, rows in states.items()}


def style_vector(model, prompts: Sequence[Sequence[int]], real: Sequence[Sequence[int]],
                 neutral: Sequence[Sequence[int]], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """Mean over items of state(prompt + real) - state(prompt + neutral), at each layer."""
    if not prompts or not len(prompts) == len(real) == len(neutral):
        raise ValueError("a style vector needs at least one item, with one real and one neutral text per prompt")
    real_states = last_token_states(model, [list(p) + list(r) for p, r in zip(prompts, real)], layers)
    neutral_states = last_token_states(model, [list(p) + list(n) for p, n in zip(prompts, neutral)], layers)
    return {layer: (real_states[layer] - neutral_states[layer]).mean(dim=0) for layer in layers}


def save_vectors(folder: str | os.PathLike, user_id: str, vectors: Mapping[int, torch.Tensor],
                 left_out: int = 0) -> Path:
    """One file per user: `<folder>/<user folder>.safetensors`, tensors `layer_<l>`, the user id and how many profile
    items were left out as leaks (`personalization.users.leak_free`) in its metadata; written under a temporary name
    and renamed, so a file present is whole."""
    from safetensors.torch import save_file

    path = Path(folder) / f"{user_folder_name(user_id)}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({f"layer_{layer}": v.contiguous() for layer, v in vectors.items()}, str(tmp),
              metadata={"user_id": user_id, "profile_items_left_out": str(left_out)})
    os.replace(tmp, path)
    return path


def load_vectors(folder: str | os.PathLike, layer: int) -> dict[str, torch.Tensor]:
    """Every user's vector at `layer`, by user id."""
    from safetensors import safe_open

    vectors = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as file:
            key = f"layer_{layer}"
            if key not in file.keys():
                raise ValueError(f"{path}: no vector for layer {layer} (it has {', '.join(file.keys())})")
            vectors[file.metadata()["user_id"]] = file.get_tensor(key)
    return vectors


@dataclass
class StyleSteering:
    """Users' vectors at one layer, added with one scale; `applied(model, user)` steers within a block."""

    vectors: Mapping[str, torch.Tensor]
    layer: int
    scale: float

    @contextmanager
    def applied(self, model, user_id: str):
        vector = self.vectors.get(user_id)
        if vector is None:  # a user without a vector (no profile) is generated unsteered
            yield
            return
        layer_module = decoder_layers(model)[self.layer - 1]

        def add(module, args, output):
            hidden = _hidden(output)
            steered = hidden + self.scale * vector.to(device=hidden.device, dtype=hidden.dtype)
            return (steered, *output[1:]) if isinstance(output, tuple) else steered

        handle = layer_module.register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()


def style_steering(folder: str, layer: int | None, scale: float | None) -> StyleSteering:
    """The users' vectors of a train_style_vectors.py folder, at the layer and scale given, else those it chose on
    validation."""
    selection_file = Path(folder) / STYLE_SELECTION_FILE
    chosen = json.loads(selection_file.read_text()) if selection_file.is_file() else {}
    layer = layer or chosen.get("layer")
    scale = scale if scale is not None else chosen.get("scale")
    if layer is None or scale is None:
        raise ValueError(f"{folder} has no {STYLE_SELECTION_FILE} (no layer and scale chosen on validation): give "
                         "--style_layer and --style_scale")
    return StyleSteering(load_vectors(folder, layer), layer, scale)


def choose_layer_and_scale(layers: Iterable[int], scales: Iterable[float],
                           score: Callable[[int, float], float]) -> tuple[int, float, list[dict]]:
    """The (layer, scale) of the highest validation score (earliest on ties), with every score tried."""
    tried = [{"layer": layer, "scale": scale, "score": score(layer, scale)} for layer in layers for scale in scales]
    if not tried:
        raise ValueError("no layer or no scale to choose from")
    best = max(tried, key=lambda entry: entry["score"])
    return best["layer"], best["scale"], tried
