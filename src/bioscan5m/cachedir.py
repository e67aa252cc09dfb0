"""The cache folder: where every cache lives, its kinds and entries, and how entries are listed and pruned.

Every cache bioscan5m keeps (Parquet record tables, reference indexes, embeddings, reduced vectors, ...)
lives below one **root**: ``--cache-dir`` of a command (or ``cache_dir=`` of a function), else
``$BIOSCAN5M_CACHE_DIR``, else the platform's user cache folder (``platformdirs.user_cache_dir("bioscan5m")``:
``~/.cache/bioscan5m`` on Linux). Nothing is written beside an input. The root holds one folder per
**kind** (:data:`KINDS`); each direct child of a kind folder is one **entry** (a file or a folder), named
after what it was made from and keyed by content, so an entry is either wholly valid or unused. Names
starting with ``.`` are entries being written (temporary files renamed into place when complete) and are
not listed. Using an entry sets its modification time, which is its "last use" for ``bioscan5m cache``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bioscan5m.errors import BioscanError

CACHE_ENV = "BIOSCAN5M_CACHE_DIR"
#: Every kind of cache entry, with what it holds (the folder name below the root is the kind).
KINDS: dict[str, str] = {
    "records": "Parquet tables of the records of source files (every command that reads one)",
    "dedup": "record ids kept by the authors' de-duplication of barcodes, per metadata file",
    "zip-index": "indexes of the members of image zip packages",
    "identify": "reference indexes of 'bioscan5m identify'",
    "embeddings": "embedding vectors of probes, benchmarks and retrieval",
    "reduced": "UMAP/PCA-reduced vectors of zero-shot clustering",
    "hashes": "SHA-256 of source files, remembered per file identity and times",
    "serve": "the demo dataset and photo model 'bioscan5m serve' serves when given no data",
}
#: Temporary leftovers (a killed run's half-written entry) older than this are removed by any prune.
STALE_TEMPORARY_S = 24 * 3600
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


@functools.cache
def release_stamp(distributions: tuple[str, ...]) -> str:
    """``name=version`` of each installed distribution (``name=absent`` where not installed), for cache keys:
    an entry made with one release of a library that shapes it is not read back under another."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return " ".join(f"{name}={installed(name)}" for name in distributions)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``cache_dir`` if given, else ``$BIOSCAN5M_CACHE_DIR``, else the user cache folder."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bioscan5m", appauthor=False))


def cache_root_origin(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Where :func:`cache_root` took the root from, in words."""
    if cache_dir is not None:
        return "--cache-dir"
    return f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "the user cache folder (platformdirs)"


def cache_folder(kind: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of one kind of entry below the root (not created here)."""
    if kind not in KINDS:
        raise BioscanError(f"unknown cache kind {kind!r}; choose from {', '.join(KINDS)}", value=kind)
    return cache_root(cache_dir) / kind


def entry_name(label: str, key: str, suffix: str = "") -> str:
    """``<label>.<key><suffix>``: a readable, file-name-safe entry name (``label`` says what it was made from)."""
    return f"{_SAFE_NAME.sub('_', label).strip('._')[:80] or 'entry'}.{key}{suffix}"


def mark_used(entry: str | os.PathLike[str]) -> None:
    """Record that ``entry`` was just used (its modification time; see :func:`list_entries`)."""
    try:
        os.utime(entry)
    except OSError:
        pass  # a read-only cache still serves; it only cannot remember the date


def discard(entry: str | os.PathLike[str]) -> bool:
    """Remove one entry atomically: renamed out of sight first, so no reader ever meets half of it.
    False when it could not be (already gone, or held open where the system forbids renaming it)."""
    entry = Path(entry)
    hidden = entry.with_name(f".removing-{uuid.uuid4().hex[:8]}-{entry.name}"[:255])
    try:
        os.rename(entry, hidden)
    except OSError:
        return False
    if hidden.is_dir() and not hidden.is_symlink():
        shutil.rmtree(hidden, ignore_errors=True)
    else:
        hidden.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class CacheEntry:
    """One entry of the cache: its kind, path, size in bytes and last use (seconds since the epoch)."""

    kind: str
    path: Path
    size: int
    last_used: float

    @property
    def name(self) -> str:
        return self.path.name


def _size(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(_size(child) for child in path.iterdir())
        return path.lstat().st_size
    except OSError:
        return 0  # removed while we looked


def list_entries(kinds: Iterable[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
                 ) -> list[CacheEntry]:
    """The entries of ``kinds`` (None: all) below the root, oldest use first. Only the known kind folders
    are looked at, so a root set to a busy folder by mistake is never read or pruned beyond them."""
    entries = []
    for kind in dict.fromkeys(kinds or KINDS):
        folder = cache_folder(kind, cache_dir)
        try:
            children = sorted(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            raise BioscanError(f"cannot read the cache folder ({error.strerror})", path=folder) from None
        for child in children:
            if child.name.startswith("."):
                continue
            try:
                last_used = child.lstat().st_mtime
            except OSError:
                continue
            entries.append(CacheEntry(kind, child, _size(child), last_used))
    return sorted(entries, key=lambda entry: entry.last_used)


def _stale_temporaries(kinds: Iterable[str], cache_dir: str | os.PathLike[str] | None, now: float) -> list[Path]:
    stale = []
    for kind in kinds:
        folder = cache_folder(kind, cache_dir)
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            try:
                if child.name.startswith(".") and now - child.lstat().st_mtime > STALE_TEMPORARY_S:
                    stale.append(child)
            except OSError:
                continue
    return stale


def select_for_pruning(entries: Sequence[CacheEntry], *, older_than_days: float | None = None,
                       max_size: int | None = None, everything: bool = False, now: float | None = None
                       ) -> list[CacheEntry]:
    """The entries to remove: all (``everything``), those unused for ``older_than_days``, then the least
    recently used until the rest fits in ``max_size`` bytes. ``entries`` must be oldest use first."""
    if everything:
        return list(entries)
    now = time.time() if now is None else now
    chosen = []
    kept = []
    for entry in entries:
        if older_than_days is not None and now - entry.last_used > older_than_days * 86400:
            chosen.append(entry)
        else:
            kept.append(entry)
    if max_size is not None:
        total = sum(entry.size for entry in kept)
        for entry in kept:  # oldest use first
            if total <= max_size:
                break
            chosen.append(entry)
            total -= entry.size
    return chosen


def prune(kinds: Iterable[str] | None = None, cache_dir: str | os.PathLike[str] | None = None, *,
          older_than_days: float | None = None, max_size: int | None = None, everything: bool = False,
          dry_run: bool = False) -> list[CacheEntry]:
    """Remove whole entries (see :func:`select_for_pruning`); returns those removed (``dry_run``: those that
    would be, removing nothing). Leftovers of killed runs older than a day go too."""
    kinds = list(dict.fromkeys(kinds or KINDS))
    now = time.time()
    chosen = select_for_pruning(list_entries(kinds, cache_dir), older_than_days=older_than_days,
                                max_size=max_size, everything=everything, now=now)
    if dry_run:
        return chosen
    removed = [entry for entry in chosen if discard(entry.path)]
    for leftover in _stale_temporaries(kinds, cache_dir, now):
        discard(leftover)
    return removed


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes in ``"500M"``, ``"1.5G"``, ``"2GB"``, ``"10GiB"`` or ``"123"`` (units are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match:
        raise BioscanError(f"not a size: {text!r} (examples: 500M, 2G, 1.5T)", value=text)
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_size(size: int) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"
