"""The one error type for mistakes a user can make (bad file, missing column, unknown split...)."""

from __future__ import annotations

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
