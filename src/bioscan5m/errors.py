"""The one error type for mistakes a user can make (bad file, missing column, unknown split...)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from os import PathLike


class BioscanError(Exception):
    """A problem with the user's input, reported without a traceback by the CLI.

    The message names the file, line or value at fault, e.g.
    ``metadata.csv:17: expected 23 fields, found 22``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        value: object = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.value = value
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(where + message)


#: What an ``errno`` means to a user, worded for a one-line message.
_OS_REASONS = {
    "ENOENT": "no such file or folder",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "EEXIST": "already exists",
    "EISDIR": "is a folder, not a file",
    "ENOTDIR": "a part of the path is a file, not a folder",
    "ENOSPC": "no space left on the device",
    "EROFS": "read-only file system",
    "ENAMETOOLONG": "file name too long",
    "ENOTEMPTY": "folder not empty",
    "EXDEV": "cannot move between file systems",
}


def as_user_error(error: BaseException) -> BioscanError | None:
    """The one-line :class:`BioscanError` an expected failure stands for, or ``None`` for a genuine bug.

    Expected: our own errors; operating-system errors about files (missing, permissions, existing paths,
    full disk); files that end early or are not what their name says (truncated gzip, bad zlib data,
    bytes that are not UTF-8, unreadable Arrow/Parquet or safetensors data); running out of memory.
    Everything else (``TypeError``, ``IndexError``...) is a bug and must not be dressed up as bad input.
    """
    import errno
    import gzip
    import zlib

    if isinstance(error, BioscanError):
        return error
    if isinstance(error, OSError):
        name = errno.errorcode.get(error.errno, "") if isinstance(error.errno, int) else ""
        if not name:  # pyarrow, Pillow and requests raise OSError without an errno for bad or unreachable data
            return BioscanError(f"cannot read the data: {error}")
        reason = _OS_REASONS.get(name) or error.strerror or name
        if error.filename2 is not None:
            reason += f" (moving to {error.filename2})"
        return BioscanError(reason, path=error.filename)
    if isinstance(error, EOFError | gzip.BadGzipFile | zlib.error):
        return BioscanError(f"compressed data is damaged or cut short ({error}); download or copy it again")
    if isinstance(error, UnicodeDecodeError):
        return BioscanError(f"bytes that are not {error.encoding} text at offset {error.start}")
    if isinstance(error, MemoryError):
        return BioscanError("not enough memory; try a smaller --batch-size or fewer records")
    if type(error).__name__ == "ArrowInvalid" and type(error).__module__.startswith("pyarrow"):
        return BioscanError(f"unreadable data file ({error})")
    if type(error).__name__ == "SafetensorError":
        return BioscanError(f"damaged or truncated safetensors weights ({error})")
    return None


@contextlib.contextmanager
def reading(path: str | PathLike[str], *damage: type[BaseException]) -> Iterator[None]:
    """Within the block, an expected failure (see :func:`as_user_error`) or one of the ``damage`` types
    raised while reading ``path`` becomes a BioscanError naming ``path``.

    ``damage`` lists what a library raises for a corrupt file of its format and nothing else, e.g.
    ``RuntimeError`` around ``torch.load``.
    """
    try:
        yield
    except BioscanError:
        raise
    except Exception as error:
        user_error = as_user_error(error)
        if user_error is None and not isinstance(error, damage):
            raise
        reason = user_error.reason if user_error is not None else f"damaged or unreadable ({error})"
        raise BioscanError(" ".join(reason.split()), path=path) from None
