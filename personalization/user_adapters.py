"""One LoRA adapter per user (OPPU) on one shared base model: trained, stored, and switched in per user.

Training adds each user's adapter to the same `PeftModel`, trains only it, saves it and deletes it, so the
base weights are loaded once however many users there are. Each user's adapter folder is a standard PEFT
folder (`adapter_config.json`, `adapter_model.safetensors`) plus `user.json` (time, storage, losses), written
under a temporary name and renamed when whole: a folder with `user.json` is a finished user, which is what
lets a killed run continue with the next unfinished one. Evaluation loads the adapter of the user whose
examples are generated (`UserAdapterSwitch`); on vLLM each user's prompts carry the user's LoRA request
(`vllm_lora_requests`), and one batch mixes users.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from longlamp_io import write_json_atomic
from personalization.users import user_folder_name
from training.loss import per_example_sums, token_losses

USER_RECORD = "user.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def user_seed(seed: int, user_id: str) -> int:
    """A user's own seed: the same adapter initialisation and data order whichever process trains it, and after
    a restart."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{user_id}".encode()).digest()[:4], "little")


def adapter_name(user_id: str) -> str:
    """The name a user's adapter has inside the PeftModel (module attribute names cannot hold dots)."""
    return "user_" + hashlib.sha256(user_id.encode()).hexdigest()[:16]


class AdapterStore:
    """The per-user adapter folders of a run: `<folder>/users/<user folder>/`."""

    def __init__(self, folder: str | os.PathLike):
        self.root = Path(folder) / "users"

    def path(self, user_id: str) -> Path:
        return self.root / user_folder_name(user_id)

    def is_done(self, user_id: str) -> bool:
        return (self.path(user_id) / USER_RECORD).is_file()

    def record(self, user_id: str) -> dict:
        return json.loads((self.path(user_id) / USER_RECORD).read_text())

    def adapters(self) -> dict[str, Path]:
        """Every finished user's adapter folder, by user id."""
        found = {}
        for record_file in sorted(self.root.glob(f"*/{USER_RECORD}")):
            found[json.loads(record_file.read_text())["user_id"]] = record_file.parent
        return found

    def save(self, model, name: str, user_id: str, record: dict) -> Path:
        """Write adapter `name` of `model` as this user's folder, atomically (the record last, then renamed)."""
        from peft.utils import get_peft_model_state_dict
        from safetensors.torch import save_file

        final = self.path(user_id)
        tmp = self.root / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        model.peft_config[name].save_pretrained(str(tmp))
        state = {key: value.detach().cpu().contiguous()
                 for key, value in get_peft_model_state_dict(model, adapter_name=name).items()}
        save_file(state, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        storage = sum(path.stat().st_size for path in tmp.iterdir())
        write_json_atomic(tmp / USER_RECORD, {"user_id": user_id, **record, "adapter_bytes": storage})
        if final.exists():  # a folder without a record cannot exist (renamed whole), but one from a removed record can
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final

    def clean_temporary(self) -> None:
        """Remove the half-written folders a killed run left (never a finished user's)."""
        for tmp in self.root.glob(".*.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class TrainSettings:
    learning_rate: float = 1e-4
    num_train_epochs: int = 2
    batch_size: int = 4
    max_grad_norm: float = 1.0
    seed: int = 42


class UserAdapterTrainer:
    """Trains users' adapters one after another on one model: add, train, save, delete."""

    def __init__(self, model, lora_config, collator, encoder_decoder: bool, keep_target_logits: bool,
                 settings: TrainSettings, device):
        self.base, self.lora_config, self.collator = model, lora_config, collator
        self.encoder_decoder, self.keep_target_logits = encoder_decoder, keep_target_logits
        self.settings, self.device = settings, device
        self.model = None  # the PeftModel, made with the first user's adapter

    def _add(self, name: str):
        from peft import get_peft_model

        if self.model is None:
            self.model = get_peft_model(self.base, self.lora_config, adapter_name=name)
        else:
            self.model.add_adapter(name, self.lora_config)
        self.model.set_adapter(name)  # only this adapter's weights require gradients

    def train_user(self, user_id: str, examples: Sequence[dict], held_out: Sequence[dict], store: AdapterStore) -> dict:
        """Train, evaluate and save one user's adapter; returns its record."""
        started = time.perf_counter()
        name = adapter_name(user_id)
        seed = user_seed(self.settings.seed, user_id)
        torch.manual_seed(seed)
        self._add(name)
        before = self.loss(held_out, with_adapter=False) if held_out else None
        train_loss = self._fit(examples, torch.Generator().manual_seed(seed))
        after = self.loss(held_out) if held_out else None
        record = {"adapter_name": name, "profile_examples": len(examples), "held_out_examples": len(held_out),
                  "train_loss": train_loss, "held_out_loss": after, "held_out_loss_without_adapter": before,
                  "seconds": round(time.perf_counter() - started, 3)}
        store.save(self.model, name, user_id, record)
        self.model.delete_adapter(name)
        return store.record(user_id)

    def _fit(self, examples: Sequence[dict], generator: torch.Generator) -> float | None:
        settings, model = self.settings, self.model
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate)
        model.train()
        last = None
        for _ in range(settings.num_train_epochs):
            order = torch.randperm(len(examples), generator=generator).tolist()
            for start in range(0, len(order), settings.batch_size):
                batch = self._batch([examples[i] for i in order[start:start + settings.batch_size]])
                losses, _ = token_losses(model, batch, self.encoder_decoder, self.keep_target_logits)
                loss = losses.sum() / max(losses.numel(), 1)  # mean over this step's target tokens, as train.py
                loss.backward()
                if settings.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                last = float(loss.detach())
        return last

    @torch.no_grad()
    def loss(self, examples: Sequence[dict], with_adapter: bool = True) -> float:
        """Mean cross-entropy per target token of `examples` with the active adapter, or the model without it."""
        model = self.model
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64)
        with nullcontext() if with_adapter else model.disable_adapter():
            for start in range(0, len(examples), self.settings.batch_size):
                chunk = examples[start:start + self.settings.batch_size]
                losses, owners = token_losses(model, self._batch(chunk), self.encoder_decoder, self.keep_target_logits)
                totals += per_example_sums(losses, owners, len(chunk)).sum(dim=0).double().cpu()
        return float(totals[0] / totals[1])

    def _batch(self, examples: Sequence[dict]) -> dict:
        rows = [{**example, "row": index} for index, example in enumerate(examples)]
        return {key: value.to(self.device) for key, value in self.collator(rows).items()}


class UserAdapterSwitch:
    """Puts one user's adapter on a loaded model for that user's examples, one resident adapter at a time."""

    def __init__(self, model):
        self.base, self.model, self.loaded = model, model, None

    @contextmanager
    def use(self, adapter_dir: str | os.PathLike | None):
        """Within the block `self.model` generates as the user's model; without an adapter, as the model alone."""
        if adapter_dir is None:
            with self.model.disable_adapter() if self.loaded else nullcontext():
                yield self.model
            return
        name = "user_" + hashlib.sha256(str(adapter_dir).encode()).hexdigest()[:16]
        if self.loaded is None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.base, str(adapter_dir), adapter_name=name)
        elif name != self.loaded:
            self.model.load_adapter(str(adapter_dir), adapter_name=name)
        self.model.set_adapter(name)
        if self.loaded not in (None, name):
            self.model.delete_adapter(self.loaded)
        self.loaded = name
        self.model.eval()
        yield self.model

    def close(self):
        """The model as it was before any adapter: the LoRA layers taken out again (nothing merged)."""
        if self.loaded is not None:
            self.model = self.base = self.model.unload()
            self.loaded = None
        return self.model


def vllm_lora_requests(adapters: Mapping[str, str | os.PathLike]) -> dict[str, dict]:
    """The `vllm.lora.request.LoRARequest` arguments of each user: a stable integer id per user (1-based, by sorted
    user id, as vLLM wants ids > 0) and the adapter folder. Pass `LoRARequest(**requests[user])` with that user's
    prompts."""
    return {user: {"lora_name": user_folder_name(user), "lora_int_id": index, "lora_path": str(adapters[user])}
            for index, user in enumerate(sorted(adapters), start=1)}


def vllm_lora_engine_options(adapters: Mapping[str, str | os.PathLike], max_loras: int = 8) -> dict:
    """The vLLM backend's options for serving these adapters (`VLLMGenerator(lora_rank=..., max_loras=...)`): the
    largest rank among them (the engine rounds it up to one vLLM accepts), and how many adapters one batch may mix."""
    if not adapters:
        raise ValueError("no per-user adapters to serve")
    ranks = [json.loads((Path(path) / ADAPTER_CONFIG).read_text())["r"] for path in adapters.values()]
    return {"lora_rank": max(ranks), "max_loras": min(max_loras, len(ranks))}
