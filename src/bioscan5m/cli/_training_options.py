"""The option every training command shares for resuming a run with a changed learning rate or length."""

from __future__ import annotations

import argparse

from bioscan5m.train.run_definition import CHANGEABLE


def changeable_options(text: str) -> tuple[str, ...]:
    """``"lr,steps"`` → ``("lr", "steps")``; anything but those names is a usage error."""
    names = tuple(name.strip().lstrip("-").replace("-", "_") for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CHANGEABLE]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: only {', '.join(CHANGEABLE)} (comma-separated) may change when a run is resumed"
        )
    return names


def add_allow_change(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-change",
        type=changeable_options,
        default=(),
        metavar="lr,steps",
        help="with --resume: accept a --lr or --steps different from the run's (anything else that "
        "defines the run, such as --data or --batch-size, must stay the same)",
    )
