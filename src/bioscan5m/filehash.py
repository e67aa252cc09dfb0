"""SHA-256 of a whole file, streamed, and remembered so that opening an unchanged file costs one ``stat``.

Every cache derived from a file is keyed by this hash of all its bytes, so any edit invalidates it, even
one that keeps the size and resets the modification time. Hashing a 4 GB metadata file takes seconds;
to keep warm opens instant the result is remembered in the ``hashes`` cache folder under the file's
identity and times: device, inode, size, modification time and **status-change time** (ns). The
status-change time (``ctime``) is set by the kernel on every write, rename or ``utime`` and cannot be
set back by users, so an in-place edit always misses the memo, whatever it does to the other fields. A
memo is only trusted when written strictly after the file's last change, so edits within one tick of
the clock are caught too.
(Filesystems without a real ``ctime`` — on Windows it is the creation time — weaken this; there, delete
the ``hashes`` folder after restoring a file's times.)
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from bioscan5m.cachedir import cache_folder
from bioscan5m.fileio import atomic_write

CHUNK_BYTES = 1 << 20
#: Files at least this large show a progress bar while hashed (in a terminal).
PROGRESS_BYTES = 256 << 20
_HEX = re.compile(r"[0-9a-f]{64}")


def _identity(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def stream_sha256(path: str | os.PathLike[str], size: int | None = None) -> str:
    """SHA-256 (hex) of every byte of ``path``, read in 1 MiB pieces (memory stays flat)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle, tqdm(total=size, unit="B", unit_scale=True, leave=False,
                                          desc=f"hashing {Path(path).name}",
                                          disable=None if (size or 0) >= PROGRESS_BYTES else True) as bar:
        while piece := handle.read(CHUNK_BYTES):
            digest.update(piece)
            bar.update(len(piece))
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 of the content of ``path``, remembered below the cache root ``cache_dir`` (see the module)."""
    return remembered_digest(path, "sha256", stream_sha256, cache_dir)


def remembered_digest(path: str | os.PathLike[str], what: str, compute: Callable[[Path, int], str],
                      cache_dir: str | os.PathLike[str] | None = None) -> str:
    """``compute(path, size)`` (a hex SHA-256 of some of the file's bytes, named ``what``), remembered in the
    ``hashes`` cache folder under the file's identity and times, and computed again when they change."""
    path = Path(path)
    before = path.stat()
    identity = _identity(before)
    memo = cache_folder("hashes", cache_dir) / hashlib.sha256(repr((what, *identity)).encode()).hexdigest()[:32]
    try:
        # File times tick coarsely (a few ms): a memo written in the tick of the file's last change could
        # predate a second change in that tick, so it is trusted only once strictly newer ("racy git").
        if memo.stat().st_mtime_ns > before.st_ctime_ns:
            remembered = memo.read_text(encoding="utf-8").split("\t", 1)[0]
            if _HEX.fullmatch(remembered):
                return remembered
    except (OSError, UnicodeDecodeError):
        pass  # not remembered (or a damaged memo): hash again
    digest = compute(path, before.st_size)
    if _identity(path.stat()) == identity:  # not remembered if the file changed while we read it
        try:
            with atomic_write(memo) as handle:
                handle.write(f"{digest}\t{what}\t{path.resolve()}\n")
        except OSError:
            pass  # an unwritable cache only costs the next open another pass over the file
    return digest
