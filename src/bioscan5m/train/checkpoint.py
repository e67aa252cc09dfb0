"""Training checkpoints without pickle, verified by checksum: safetensors for tensors, JSON for the rest.

Layout under a run's ``checkpoints/`` folder::

    step-00000200/model.safetensors       model.state_dict()
    step-00000200/optimizer.safetensors   every tensor of optimizer.state_dict()["state"]
    step-00000200/state.json              step, data position, optimizer hyper-parameters, scaler, run definition
    step-00000200/manifest.json           size and SHA-256 of each file above (written last)

A checkpoint is written into a temporary folder, its files flushed to disk, the manifest added, and
the folder renamed into place: a kill at any moment leaves either a complete checkpoint or none. A
checkpoint whose files no longer match its manifest (truncated, edited, deleted) is not resumed from;
:func:`find_checkpoint` walks back to the newest one that still verifies and says why it skipped the others.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file
from torch import nn

from bioscan5m.errors import BioscanError
from bioscan5m.filehash import stream_sha256
from bioscan5m.fileio import atomic_folder, current_umask
from bioscan5m.models.weights import save_weights

MANIFEST = "manifest.json"
STATE = "state.json"
FILES = ("model.safetensors", "optimizer.safetensors", STATE)
_PREFIX = "step-"
_FORMAT = "bioscan5m-checkpoint/2"


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:08d}"


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint folder is named after (-1 for a folder that is not a checkpoint)."""
    digits = Path(path).name.removeprefix(_PREFIX)
    return int(digits) if Path(path).name.startswith(_PREFIX) and digits.isdigit() else -1


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint folders in ``directory``, newest step first (whether complete or not)."""
    folders = [p for p in Path(directory).glob(f"{_PREFIX}*") if p.is_dir() and checkpoint_step(p) >= 0]
    return sorted(folders, key=checkpoint_step, reverse=True)


def verify_checkpoint(path: Path) -> str | None:
    """None when every file of the checkpoint matches its manifest, else the reason it does not."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except FileNotFoundError:
        return f"incomplete: no {MANIFEST}"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"unreadable {MANIFEST} ({error})"
    for name in FILES:
        if name not in files:
            return f"{MANIFEST} does not list {name}"
        expected = files[name]
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if size != expected["size"]:
            return f"{name} is truncated or altered ({size:,} bytes, the manifest says {expected['size']:,})"
        if stream_sha256(file) != expected["sha256"]:
            return f"{name} does not match its SHA-256 in {MANIFEST} (corrupted)"
    return None


def find_checkpoint(directory: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(the newest checkpoint that verifies or None, [(newer checkpoint skipped, why), ...])."""
    skipped: list[tuple[Path, str]] = []
    for path in list_checkpoints(directory):
        problem = verify_checkpoint(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped


def save_checkpoint(
    directory: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    keep: int = 2,
) -> Path:
    """Write a checkpoint for ``state["step"]`` and keep the newest ``keep`` up to that step.

    Checkpoints of later steps are removed: they belong to an earlier attempt of this run that died
    (this run resumed before them and is redoing those steps).
    """
    directory = Path(directory)
    final = directory / checkpoint_name(state["step"])
    for leftover in directory.glob(f".{_PREFIX}*"):  # from a save that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    with atomic_folder(final) as tmp:
        save_weights(model, tmp / "model.safetensors")
        tensors, optimizer_meta = _split_optimizer_state(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        with open(tmp / STATE, "w", encoding="utf-8") as handle:
            json.dump({**state, "optimizer": optimizer_meta}, handle, indent=2)
        files = {name: {"size": (tmp / name).stat().st_size, "sha256": _flush_and_hash(tmp / name)}
                 for name in FILES}
        with open(tmp / MANIFEST, "w", encoding="utf-8") as handle:
            json.dump({"format": _FORMAT, "step": state["step"], "files": files}, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        ordinary = 0o666 & ~current_umask()  # safetensors creates its files private (0600)
        for name in (*FILES, MANIFEST):
            (tmp / name).chmod(ordinary)
    _prune(directory, keep=max(keep, 1), current=final)
    return final


def read_state(path: Path) -> dict:
    """The JSON state of a (verified) checkpoint: step, data position, run definition, settings..."""
    return json.loads((Path(path) / STATE).read_text(encoding="utf-8"))


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device | str = "cpu"
) -> dict:
    """Restore ``model`` and ``optimizer`` in place from a checkpoint folder; return its state.

    A checkpoint of another model (other sizes, other modalities) raises a :class:`BioscanError`
    naming the first mismatch, before anything is changed.
    """
    path = Path(path)
    state = read_state(path)
    weights = path / "model.safetensors"
    _check_weights_fit(model, weights)
    missing, unexpected = load_model(model, str(weights), strict=False, device=str(device))
    if missing or unexpected:
        raise BioscanError(
            f"checkpoint weights do not fit this model (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})",
            path=path,
        )
    tensors = load_file(str(path / "optimizer.safetensors"))
    try:
        optimizer.load_state_dict(_join_optimizer_state(tensors, state.pop("optimizer")))
    except (ValueError, KeyError) as error:
        raise BioscanError(f"the optimizer state does not fit this model: {error}", path=path) from None
    return state


def _check_weights_fit(model: nn.Module, weights: Path) -> None:
    """Refuse a weights file whose tensors have other shapes than the model's (another model size)."""
    own = model.state_dict()
    with safe_open(str(weights), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
            if name in own:
                saved = tuple(handle.get_slice(name).get_shape())
                if saved != tuple(own[name].shape):
                    raise BioscanError(
                        f"checkpoint is of another model: {name} has shape {list(saved)} there, "
                        f"{list(own[name].shape)} here",
                        path=weights.parent,
                    )


def _flush_and_hash(path: Path) -> str:
    """SHA-256 of a file just written, after forcing it to disk (the manifest must not outlive it)."""
    digest = stream_sha256(path)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return digest


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
    step = checkpoint_step(current)
    folders = list_checkpoints(directory)
    older = [p for p in folders if checkpoint_step(p) <= step]
    for old in [p for p in folders if checkpoint_step(p) > step] + older[keep:]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)
