"""``--cache-dir``: the one option that moves every cache a command keeps (see :mod:`bioscan5m.cachedir`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bioscan5m.cachedir import CACHE_ENV

HELP = (f"folder for the caches this command keeps or reuses (record tables, indexes, embeddings); default "
        f"${CACHE_ENV} or the user cache folder (see 'bioscan5m cache dir'). Nothing is ever written beside "
        "your input files")
#: The same option of ``bioscan5m cache``, which works on the cache folder rather than keeping caches in it.
CACHE_COMMAND_HELP = f"the cache folder to work on (default: ${CACHE_ENV} or the user cache folder)"


class _CacheRoot(argparse.Action):
    """Sets the cache root for the whole run, also for worker processes and ``torchrun`` ranks, by exporting
    ``$BIOSCAN5M_CACHE_DIR``: every cache below any command then resolves to it without extra plumbing."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        path = Path(value).expanduser()
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentError(self, f"{value} exists and is not a folder")
        os.environ[CACHE_ENV] = str(path.resolve())
        setattr(namespace, self.dest, str(path.resolve()))


def add_cache_dir_option(parser: argparse.ArgumentParser, help: str = HELP) -> None:
    """Add ``--cache-dir DIR`` to a command that reads sources."""
    parser.add_argument("--cache-dir", metavar="DIR", action=_CacheRoot, default=None, help=help)
