"""Argument types shared by every command's parser: a bad value is refused before any work starts.

Each type is a callable for ``add_argument(type=...)``; it returns the parsed value or raises
``argparse.ArgumentTypeError``, which argparse prints as one usage line and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bioscan5m.fileio import OutputKind

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_HELP = "auto (a GPU when there is one), cpu, cuda, cuda:N or mps"


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _number_where(text: str, kind: type, holds: Callable[[float], bool], rule: str) -> int | float:
    """``text`` as a number of ``kind`` for which ``holds`` is true, else an error ending in ``rule``."""
    value = _number(text, kind)
    if not holds(value):
        raise argparse.ArgumentTypeError(f"{text!r} {rule}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts of steps, records, neighbours...)."""
    return _number_where(text, int, lambda value: value >= 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (worker processes, 'every N steps' where 0 means never...)."""
    return _number_where(text, int, lambda value: value >= 0, "must be 0 or more")


def any_int(text: str) -> int:
    """Any whole number (a random seed)."""
    return _number(text, int)


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (weight decay, a UMAP min_dist...)."""
    return _number_where(text, float, lambda value: value >= 0, "must be 0 or more")


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, epochs)."""
    return _number_where(text, float, lambda value: value > 0, "must be more than 0")


def probability(text: str) -> float:
    """A finite number in [0, 1]."""
    return _number_where(text, float, lambda value: 0 <= value <= 1, "must be between 0 and 1")


def open_fraction(text: str) -> float:
    """A share strictly between 0 and 1 (a held-out fraction: both sides must keep records)."""
    return _number_where(text, float, lambda value: 0 < value < 1, "must be more than 0 and less than 1")


def device(text: str) -> str:
    """A torch device name: auto, cpu, cuda, cuda:N or mps (whether it exists is checked when used)."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use {DEVICE_HELP}")
    return text


def existing_file(text: str) -> str:
    """A path to a file that exists (kept as given, for messages)."""
    path = Path(text)
    return _path_where(text, ": no such file" if not path.exists() else " is a folder, not a file" if path.is_dir()
                       else "")


def existing_path(text: str) -> str:
    """A path to a file or folder that exists."""
    return _path_where(text, "" if Path(text).exists() else ": no such file or folder")


def existing_folder(text: str) -> str:
    """A path to a folder that exists."""
    path = Path(text)
    return _path_where(text, "" if path.is_dir() else ": not a folder" if path.exists() else ": no such folder")


def _path_where(text: str, problem: str) -> str:
    """``text`` unchanged, or a usage error saying ``problem`` about it."""
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}{problem}")
    return text


@dataclass(frozen=True)
class Output:
    """An output option of a command, checked by ``bioscan5m.cli.main`` before the command runs.

    ``dest`` is the option's attribute name, ``kind`` what it names (``file``, ``folder`` or ``dataset``:
    a folder that must be empty unless ``--force``), ``inputs`` the attribute names of the command's
    input options (an output equal to one of them is refused unless ``--force``). See
    :func:`bioscan5m.fileio.prepared_output`.
    """

    dest: str = "out"
    kind: OutputKind = "folder"
    inputs: tuple[str, ...] = ()

    @property
    def option(self) -> str:
        return "--" + self.dest.replace("_", "-")


def add_force_argument(parser: argparse.ArgumentParser, what: str = "--out") -> None:
    """The ``--force`` option that lets an output replace an input, a device or a non-empty dataset."""
    parser.add_argument("--force", action="store_true",
                        help=f"write {what} even where it is one of the inputs, a device or a non-empty dataset")


def add_trust_remote_code_argument(parser: argparse.ArgumentParser) -> None:
    """``--trust-remote-code``: let Hugging Face models run the Python code they ship (off by default)."""
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let hf-dna models that ship their own Python code (DNABERT-2, HyenaDNA...) run it; "
                             "that code runs with your permissions, so only for authors you trust")
