"""The embedded default of ``bioscan5m serve``: the demo's synthetic dataset and a tiny CLIBD model, made on
first use in the user cache folder (never beside any input) and reused after."""

from __future__ import annotations

import os
from pathlib import Path

from bioscan5m.serve import backends
from bioscan5m.serve.settings import DEMO_MODEL_STEPS, DEMO_RECORDS, DEMO_SEED


def default_folder(records: int = DEMO_RECORDS, seed: int = DEMO_SEED,
                   cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the default lives: the ``serve`` folder of the cache root, one entry per size and seed."""
    from bioscan5m.cachedir import cache_folder, entry_name

    return cache_folder("serve", cache_dir) / entry_name("demo", f"{records}-seed{seed}")


def default_dataset(records: int = DEMO_RECORDS, seed: int = DEMO_SEED,
                    cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The default dataset root, written by the demo's data part the first time."""
    from bioscan5m.demo import DATA_SETTINGS

    folder = default_folder(records, seed, cache_dir)
    if (folder / "data" / DATA_SETTINGS).is_file():  # written once the dataset is complete
        return folder / "data"
    print(f"[serve] writing the demo's synthetic dataset ({records:,} records) to {folder}", flush=True)
    return backends.build_demo_dataset(folder, records, seed)


def default_model_folder(records: int = DEMO_RECORDS, seed: int = DEMO_SEED,
                         cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return default_folder(records, seed, cache_dir) / "clibd"


def has_model(folder: Path) -> bool:
    """Whether ``folder`` holds a finished model (``align`` writes config.json last)."""
    return (folder / "config.json").is_file()


def build_default_model(root: Path, folder: Path, steps: int = DEMO_MODEL_STEPS, seed: int = DEMO_SEED,
                        device: str = "cpu") -> Path:
    """Align the default CLIBD model on ``root`` into ``folder`` (continuing an interrupted run)."""
    print(f"[serve] aligning a tiny CLIBD model for the photo page ({steps} steps) into {folder}", flush=True)
    backends.train_clibd(root, folder, steps, seed, device)
    return folder
