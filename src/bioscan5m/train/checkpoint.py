"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else.

Layout under a run's ``checkpoints/`` folder::

    step-00000200/model.safetensors       model.state_dict()
    step-00000200/optimizer.safetensors   every tensor of optimizer.state_dict()["state"]
    step-00000200/state.json              step, data position, optimizer hyper-parameters, scaler, config
    latest                                name of the newest complete checkpoint

A checkpoint folder is written under a temporary name and renamed when complete; ``latest`` is
replaced atomically afterwards, so an interrupted save never hides the previous checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_write

LATEST = "latest"
_PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:08d}"


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint in ``directory`` (None when there is none)."""
    pointer = Path(directory) / LATEST
    if not pointer.is_file():
        return None
    path = Path(directory) / pointer.read_text(encoding="utf-8").strip()
    if not (path / "state.json").is_file():
        raise BioscanError(f"'latest' names {path.name}, which is not a complete checkpoint", path=pointer)
    return path


def save_checkpoint(
    directory: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    keep: int = 2,
) -> Path:
    """Write a checkpoint for ``state["step"]``, point ``latest`` at it, keep the newest ``keep``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(state["step"])
    tmp = directory / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    tensors, optimizer_meta = _split_optimizer_state(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    with open(tmp / "state.json", "w", encoding="utf-8") as handle:
        json.dump({**state, "optimizer": optimizer_meta}, handle, indent=2)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    with atomic_write(directory / LATEST) as handle:
        handle.write(final.name + "\n")
    _prune(directory, keep=max(keep, 1), current=final)
    return final


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device | str = "cpu"
) -> dict:
    """Restore ``model`` and ``optimizer`` in place from a checkpoint folder; return its state."""
    path = Path(path)
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False, device=str(device))
    if missing or unexpected:
        raise BioscanError(
            f"checkpoint weights do not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})",
            path=path,
        )
    tensors = load_file(str(path / "optimizer.safetensors"))
    optimizer.load_state_dict(_join_optimizer_state(tensors, state.pop("optimizer")))
    return state


def _split_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    saved = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, param_state in saved["state"].items():
        for name, value in param_state.items():
            key = f"{param_id}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().to("cpu").contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": saved["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _prune(directory: Path, *, keep: int, current: Path) -> None:
    folders = sorted(p for p in directory.glob(f"{_PREFIX}*") if p.is_dir())
    for old in folders[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)
