"""One LoRA adapter per user (OPPU) on one shared base model: stored, and switched in per user (training them is
training/user_adapters.py's).

Each user's adapter folder is a standard PEFT folder (`adapter_config.json`, `adapter_model.safetensors`) plus
`user.json` (time, storage, losses), written under a temporary name and put in place when whole: a folder with
`user.json` is a finished user, which is what lets a killed run continue with the next unfinished one. Evaluation
loads the adapter of the user whose examples are generated (`UserAdapterSwitch`); on vLLM each user's prompts carry
the user's LoRA request (`vllm_lora_requests`), and one batch mixes users.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Mapping

from longlamp_io import replace_folder, write_json_atomic
from longlamp_runs import USER_RECORD_FILE
from personalization.users import user_folder_name

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class AdapterStore:
    """The per-user adapter folders of a run: `<folder>/users/<user folder>/`."""

    def __init__(self, folder: str | os.PathLike):
        self.root = Path(folder) / "users"

    def path(self, user_id: str) -> Path:
        return self.root / user_folder_name(user_id)

    def is_done(self, user_id: str) -> bool:
        return (self.path(user_id) / USER_RECORD_FILE).is_file()

    def record(self, user_id: str) -> dict:
        return json.loads((self.path(user_id) / USER_RECORD_FILE).read_text())

    def adapters(self) -> dict[str, Path]:
        """Every finished user's adapter folder, by user id."""
        found = {}
        for record_file in sorted(self.root.glob(f"*/{USER_RECORD_FILE}")):
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
        write_json_atomic(tmp / USER_RECORD_FILE, {"user_id": user_id, **record, "adapter_bytes": storage})
        replace_folder(tmp, final)  # a folder there has no record (put in place whole): one from a removed record
        return final

    def clean_temporary(self) -> None:
        """Remove the half-written folders a killed run left (never a finished user's)."""
        for tmp in self.root.glob(".*.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)


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
