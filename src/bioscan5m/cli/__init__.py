"""The ``bioscan5m`` command: one subcommand per module in this package.

Each module ``bioscan5m.cli.<name>`` defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed arguments. Keep those functions thin: parse, call the library.
Option values use the shared types of ``cli._types``; output options are declared with
``set_defaults(outputs=(Output("out", "folder", ("data",)),))`` and checked here, before the command runs,
by :func:`bioscan5m.fileio.prepared_output` (``--cache-dir`` is checked wherever a command has it).

Error policy (the one place it lives; see docs/reliability.md):

- bad input (a :class:`BioscanError`, or an expected failure such as a missing, unreadable, truncated or
  corrupt file, a permission problem, a path that exists or is of the wrong kind, a full disk) prints one
  line ``bioscan5m COMMAND: error: ...`` on stderr and exits with status 2; bad option values are refused
  by the parser, also with status 2;
- Ctrl-C (SIGINT) or ``kill`` (SIGTERM) print one line and exit with 130 / 143, after the commands'
  clean-up has run (temporary files and folders are removed);
- anything else is a bug: one line ``internal error`` naming the exception, exit status 1, and the full
  traceback with ``--debug`` or ``BIOSCAN5M_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import pkgutil
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from bioscan5m import __version__
from bioscan5m.cli._types import Output
from bioscan5m.errors import as_user_error
from bioscan5m.fileio import prepared_output

DEBUG_ENV = "BIOSCAN5M_DEBUG"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that ``finally`` blocks and context managers clean up."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser, with every subcommand module found in this package; only ``command``'s when it
    names one (a run needs no other, and importing them all cost ~0.1 s of every run's start)."""
    parser = _Parser(
        prog="bioscan5m",
        description="BIOSCAN-5M insect biodiversity toolkit: data, DNA barcodes, images, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"bioscan5m {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the Python traceback of unexpected errors (also: {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for name in [command] if command in names else names:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand under the error policy of the module docstring; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # The first word that is not an option names the command (the top-level options take no value).
    parser = build_parser(next((word for word in argv if not word.startswith("-")), None))
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a refused option (one line already printed) returns 2; --help exits as usual
        if stop.code == 2:
            return 2
        raise
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    previous = _handle_sigterm()
    try:
        with contextlib.ExitStack() as scope:
            scope.enter_context(warnings.catch_warnings())
            warnings.showwarning = lambda message, *_, **__: _say(args.command, f"warning: {message}")
            if getattr(args, "trust_remote_code", False):
                from bioscan5m.embeddings.encoders import remote_code_trusted

                scope.enter_context(remote_code_trusted())
            for output in _declared_outputs(args):
                scope.enter_context(_prepared(args, output))
            result = args.func(args)
    except KeyboardInterrupt as stop:
        killed = isinstance(stop, Terminated)
        _say(args.command, "terminated" if killed else "interrupted")
        return 143 if killed else 130
    except Exception as error:
        user_error = as_user_error(error)
        if user_error is not None and not debug:
            _say(args.command, f"error: {user_error}")
            return 2
        if debug:
            raise
        _say(args.command, f"internal error: {type(error).__name__}: {error} (a bug in bioscan5m; rerun with "
                           f"--debug for the traceback and please report it)")
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


def run_and_exit() -> NoReturn:
    """The console command: :func:`main`, then the process ends with its status.

    Everything is moved out of the cycle collector's sight first: Python's exit runs full collections over
    every object of every imported module (~0.5 s after ``identify``, nearly a tenth of a cached run) only
    to free what the process's end frees anyway.
    """
    status = main()
    gc.freeze()
    sys.exit(status)


def _declared_outputs(args: argparse.Namespace) -> tuple[Output, ...]:
    """The outputs a command declared (``set_defaults(outputs=...)``), and ``--cache-dir`` wherever it is."""
    declared = tuple(getattr(args, "outputs", ()))
    if hasattr(args, "cache_dir") and all(output.dest != "cache_dir" for output in declared):
        declared += (Output("cache_dir", "folder"),)
    return declared


def _prepared(args: argparse.Namespace, output: Output) -> contextlib.AbstractContextManager:
    """``prepared_output`` for one declared output option (see ``bioscan5m.cli._types.Output``)."""
    value = getattr(args, output.dest, None)
    if value is None:
        return contextlib.nullcontext()
    inputs = tuple(str(path) for dest in output.inputs for path in _paths(getattr(args, dest, None)))
    has_force = hasattr(args, "force")
    return prepared_output(value, kind=output.kind, inputs=inputs, force=bool(getattr(args, "force", False)),
                           option=output.option, force_flag="--force" if has_force else None)


def _paths(value: object) -> Iterator[Path]:
    """The paths an input option holds: none, one, or lists of them (nargs, action=append)."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _paths(item)
    else:
        yield Path(str(value))


def _say(command: str, message: str) -> None:
    """One line on stderr, whatever the message holds (library messages may span lines)."""
    print(f"bioscan5m {command}: " + " ".join(message.split()), file=sys.stderr)


def _handle_sigterm() -> object:
    """Turn SIGTERM into :class:`Terminated` (main thread only); returns the handler to restore, or None."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (e.g. called from a worker): leave signals alone
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
