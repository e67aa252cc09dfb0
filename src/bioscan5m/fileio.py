"""Opening plain or gzip files transparently, and writing outputs atomically."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bioscan5m.errors import BioscanError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a plain or gzip-compressed file for reading bytes; missing files raise BioscanError."""
    path = Path(path)
    if not path.is_file():
        raise BioscanError("no such file", path=path)
    if is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def open_text(path: str | os.PathLike[str], encoding: str = "utf-8", errors: str = "strict") -> IO[str]:
    """Open a plain or gzip-compressed text file; newlines are passed through untranslated."""
    return io.TextIOWrapper(open_binary(path), encoding=encoding, errors=errors, newline="")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    Nothing half-written is ever left at ``dest``: on error the temporary file is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); give the result the permissions of an ordinary new file.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(dest: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``dest`` for writing; it replaces ``dest`` when the block succeeds."""
    with atomic_path(dest) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
