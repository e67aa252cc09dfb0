"""What defines a training run, recorded in its folder, and the rule for resuming it.

A run's definition is every option that changes what the run computes: the engine's settings (steps,
batch size, accumulation, learning rate, schedule, seed, ...) and what the task adds (the data and a
fingerprint of its content, the model and its configuration, the mask ratio, the modalities, ...).
It is written to ``run.json`` in the run folder and into every checkpoint. ``--resume`` continues a
run only under the same definition; the learning rate and the step count may change when the user
says so explicitly (``allow_change``), and never below the step already reached.

A definition value that is a dict with a ``"sha256"`` entry is a fingerprint: only its SHA-256 is
compared (the other entries, such as the file it came from, only describe it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bioscan5m.errors import BioscanError
from bioscan5m.fileio import write_json

RUN_FILE = "run.json"
FORMAT = "bioscan5m-run/1"
#: Engine settings that define a run (device, precision, workers, logging and checkpoint cadence do not).
ENGINE_OPTIONS = (
    "steps", "batch_size", "accumulate", "lr", "weight_decay", "betas", "schedule", "warmup", "grad_clip",
    "cycle_momentum", "seed",
)
#: Options a resumed run may change, when asked to explicitly.
CHANGEABLE = ("lr", "steps")


def content_fingerprint(items: Iterable[Any], **described_by: Any) -> dict[str, Any]:
    """``{"sha256", "items", **described_by}`` of a sequence of strings or JSON-able values, in order."""
    digest = hashlib.sha256()
    count = 0
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item, sort_keys=True, default=str)
        digest.update(text.encode("utf-8") + b"\n")
        count += 1
    return {**described_by, "sha256": digest.hexdigest(), "items": count}


def model_definition(model: Any) -> dict[str, Any]:
    """A model's class, name, configuration and k-mer tokenizer settings (library versions left out)."""
    config = getattr(model, "config", None)
    description = {"class": type(model).__name__, **_defining(config.to_dict() if config is not None else {})}
    if getattr(model, "name", None):
        description["name"] = model.name
    tokenizer = getattr(model, "tokenizer", None)
    if hasattr(tokenizer, "k"):
        description["kmer"] = {name: getattr(tokenizer, name, None) for name in ("k", "stride", "max_length")}
    return normalised(description)


#: Configuration entries that record where or how a model was saved, not what it computes.
_BOOKKEEPING = {"transformers_version", "architectures", "dtype", "torch_dtype", "id2label", "label2id"}


def _defining(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: _defining(v) for k, v in config.items() if not str(k).startswith("_") and k not in _BOOKKEEPING}
    return config


def normalised(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(definition, sort_keys=True, default=str))


def option_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_resume(
    saved: dict[str, Any], current: dict[str, Any], *, step: int, allow_change: Iterable[str] = (),
    where: Path | str | None = None,
) -> list[str]:
    """Refuse to resume at ``step`` a run defined by ``saved`` with the definition ``current``.

    Raises a :class:`BioscanError` naming the first option that differs (and is not allowed to);
    returns the names of the options that changed with permission.
    """
    allowed = set(allow_change)
    if current["steps"] < step:
        raise BioscanError(
            f"cannot resume with --steps {current['steps']}: the run has already reached step {step}", path=where
        )
    changed = []
    for key in [*current, *(k for k in saved if k not in current)]:
        then, now = saved.get(key), current.get(key)
        if _same(then, now):
            continue
        if key in CHANGEABLE and key in allowed:
            changed.append(key)
            continue
        hint = f" (add --allow-change {key} to change it)" if key in CHANGEABLE else " (start a new run elsewhere)"
        raise BioscanError(f"cannot resume {_difference(key, then, now)}{hint}", path=where)
    return changed


def _same(then: Any, now: Any) -> bool:
    if isinstance(then, dict) and isinstance(now, dict) and "sha256" in then and "sha256" in now:
        return then["sha256"] == now["sha256"]
    return then == now


def _difference(key: str, then: Any, now: Any) -> str:
    """'with --mask-ratio 0.3: the run was started with 0.5', worded for fingerprints and configs."""
    if isinstance(then, dict) and isinstance(now, dict) and "sha256" in then and "sha256" in now:
        return (f"with other {option_name(key)}: {_describe(now)} is not the content the run was started with "
                f"({_describe(then)})")
    if isinstance(then, dict) and isinstance(now, dict):
        for sub in sorted({*now, *then}, key=lambda sub: (sub != "name", sub)):  # a model's name says most
            if then.get(sub) != now.get(sub):
                return (f"with another {option_name(key)}: {sub} is {json.dumps(now.get(sub))}, the run was "
                        f"started with {json.dumps(then.get(sub))}")
    return f"with {option_name(key)} {json.dumps(now)}: the run was started with {json.dumps(then)}"


def _describe(fingerprint: dict[str, Any]) -> str:
    extra = [f"{k} {v}" for k, v in fingerprint.items() if k not in ("sha256", "items") and v is not None]
    return ", ".join([*extra, f"{fingerprint.get('items')} items", f"sha256 {fingerprint['sha256'][:12]}"])


def write_run_file(out_dir: Path, definition: dict[str, Any], changes: list[dict] | None = None) -> Path:
    """Write ``run.json`` (atomically): the definition, and the permitted changes made on resuming."""
    return write_json(Path(out_dir) / RUN_FILE, {"format": FORMAT, "definition": definition,
                                                 "changes": changes or []})


def read_changes(out_dir: Path) -> list[dict]:
    """The change history of ``run.json`` (empty when it is absent or unreadable: it is only a record)."""
    try:
        return list(json.loads((Path(out_dir) / RUN_FILE).read_text(encoding="utf-8")).get("changes", []))
    except (OSError, ValueError, AttributeError):
        return []
