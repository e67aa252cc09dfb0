"""Opening plain or gzip files transparently, and writing outputs atomically."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

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
        return CheckedGzipFile(path)
    return open(path, "rb")


class CheckedGzipFile(gzip.GzipFile):
    """A gzip file read as bytes whose damage (cut short, bad CRC, not gzip) is a BioscanError naming it."""

    def __init__(self, path: str | os.PathLike[str], fileobj: IO[bytes] | None = None) -> None:
        self.source = Path(path)
        super().__init__(filename=None if fileobj is not None else path, mode="rb", fileobj=fileobj)

    def _checked(self, method, *args):
        try:
            return method(*args)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise BioscanError(f"damaged or truncated gzip data ({error}); download or copy it again",
                               path=self.source) from None

    def read(self, size: int = -1) -> bytes:
        return self._checked(super().read, size)

    def read1(self, size: int = -1) -> bytes:
        return self._checked(super().read1, size)

    def readinto(self, buffer) -> int:
        return self._checked(super().readinto, buffer)

    def readline(self, size: int | None = -1) -> bytes:
        return self._checked(super().readline, size)

    def peek(self, n: int) -> bytes:
        return self._checked(super().peek, n)


def read_json(path: str | os.PathLike[str]):
    """The JSON document in ``path``; a missing file or invalid JSON is a BioscanError naming the file (and
    the line)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BioscanError("missing file", path=path) from None
    except json.JSONDecodeError as error:
        raise BioscanError(f"not valid JSON: {error.msg}", path=path, line=error.lineno) from None


def write_json(dest: str | os.PathLike[str], document, *, indent: int = 2) -> Path:
    """Write ``document`` as indented JSON ending in a newline, atomically; returns ``dest``."""
    with atomic_write(dest) as handle:
        json.dump(document, handle, indent=indent)
        handle.write("\n")
    return Path(dest)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    Nothing half-written is ever left at ``dest``: on error the temporary file is removed.
    """
    dest = Path(dest)
    if _is_special(dest):  # /dev/null, a FIFO...: write into it; renaming would replace the device itself
        yield dest
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600), and writers such as safetensors replace it with a 0600 file
        # of their own: give the result the permissions of an ordinary new file, just before it is renamed.
        if tmp.is_file():
            tmp.chmod(0o666 & ~current_umask())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(dest: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """Yield a new empty folder beside ``dest``, to fill; it becomes ``dest`` only if the block succeeds.

    An existing ``dest`` is replaced whole, or with ``replace=False`` kept (another process finished the
    same folder first). On error, or when kept, the temporary folder is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", suffix=".part", dir=dest.parent))
    try:
        yield building
        building.chmod(0o777 & ~current_umask())  # mkdtemp makes it private
        if replace and dest.exists():
            shutil.rmtree(dest)
        try:
            os.replace(building, dest)
        except OSError:  # dest appeared meanwhile, not empty
            if replace:
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)


def current_umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_write(dest: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``dest`` for writing; it replaces ``dest`` when the block succeeds."""
    with atomic_path(dest) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with open(tmp, mode, **kwargs) as handle:
            yield handle


OutputKind = Literal["file", "folder", "dataset"]


def _is_special(path: Path) -> bool:
    """True for an existing path that is neither a regular file nor a folder (a device, FIFO, socket)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def prepared_output(
    path: str | os.PathLike[str],
    *,
    kind: OutputKind = "folder",
    inputs: tuple[str | os.PathLike[str] | None, ...] = (),
    force: bool = False,
    option: str = "--out",
    force_flag: str | None = "--force",
) -> Iterator[Path]:
    """Check an output path before any work, and leave no trace of it when the work fails.

    Refused (a BioscanError naming ``option`` and the path): a path of the wrong kind (a file where a
    folder is wanted or the reverse, a file in the middle of the path), a folder that cannot be written,
    and, unless ``force``, a path that is one of ``inputs``, a device or other special file, or a
    non-empty folder for a ``"dataset"``. A file output that is a device is written into, never replaced.
    When the block raises, the folders this call found missing (or, in an existing output folder, the
    folders added at its top level) are removed again if they hold no files, so a failed command leaves
    no empty output folders behind.
    """
    path = Path(path)
    hint = f"; pass {force_flag} to write there anyway" if force_flag else ""
    where = f"{option} {path}"
    if _is_special(path) and not (force and kind == "file"):
        raise BioscanError(f"{where}: is a device or special file, not a {kind}; refusing to replace it"
                           + (hint if kind == "file" else ""))
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor != path and not ancestor.is_dir():
        raise BioscanError(f"{where}: {ancestor} is a file, not a folder")
    if path.exists():
        if kind == "file" and path.is_dir():
            raise BioscanError(f"{where}: is a folder; give a file name")
        if kind != "file" and not path.is_dir() and not _is_special(path):
            raise BioscanError(f"{where}: is a file, not a folder")
    folder = ancestor if ancestor != path or kind != "file" else path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise BioscanError(f"{where}: cannot write in {folder} (permission denied)")
    if not force:
        for source in inputs:
            if source is not None and _same(path, Path(source)):
                raise BioscanError(f"{where}: is also the input {source}; writing there would replace it{hint}")
        if kind == "dataset" and path.is_dir() and any(path.iterdir()):
            raise BioscanError(f"{where}: folder is not empty (an existing dataset?){hint}")
    created = None if ancestor == path else _first_missing(path, ancestor)
    existing = set(os.listdir(path)) if created is None and path.is_dir() else set()
    try:
        yield path
    except BaseException:
        if created is not None:
            remove_empty_folders(created)
        elif path.is_dir():  # an existing folder: take back the empty folders this run added at its top
            for name in set(os.listdir(path)) - existing:
                remove_empty_folders(path / name)
        raise


def _first_missing(path: Path, ancestor: Path) -> Path:
    """The topmost folder of ``path`` below the existing ``ancestor``."""
    return ancestor / path.relative_to(ancestor).parts[0]


def remove_empty_folders(root: str | os.PathLike[str]) -> None:
    """Remove ``root`` and the folders under it that hold no files (a failed run's empty output tree)."""
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return
    for folder, _, _ in os.walk(root, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(folder)
