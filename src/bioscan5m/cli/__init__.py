"""The ``bioscan5m`` command: one subcommand per module in this package.

Each module ``bioscan5m.cli.<name>`` defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed arguments. Keep those functions thin: parse, call the library.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from bioscan5m import __version__
from bioscan5m.errors import BioscanError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand module found in this package."""
    parser = argparse.ArgumentParser(
        prog="bioscan5m",
        description="BIOSCAN-5M insect biodiversity toolkit: data, DNA barcodes, images, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"bioscan5m {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; user errors print one line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except BioscanError as error:
        print(f"bioscan5m {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bioscan5m {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
