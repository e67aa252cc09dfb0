"""Options the training commands share: how a run is logged, resumed, seeded and fed, not what it trains."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
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


def add_optimizer_options(parser: argparse.ArgumentParser, lr: float) -> None:
    """``--lr`` (default ``lr``) and ``--weight-decay`` of the AdamW optimizer and its one-cycle schedule."""
    parser.add_argument("--lr", type=t.positive_float, default=lr,
                        help="peak learning rate of the one-cycle schedule (default: %(default)s)")
    parser.add_argument("--weight-decay", type=t.non_negative_float, default=0.01,
                        help="AdamW weight decay (default: %(default)s)")


def add_run_options(parser: argparse.ArgumentParser, save_every: int) -> None:
    """How a run (pretrain, finetune) is computed, checkpointed, logged, resumed, seeded and fed: ``--precision``,
    ``--device``, ``--save-every`` (default ``save_every``), ``--log-every``, ``--resume``, ``--allow-change``,
    ``--seed`` and ``--workers``."""
    parser.add_argument("--precision", default="auto",
                        help="number format: auto (default) picks bf16 or fp16 on a GPU and fp32 on the CPU; "
                             "or bf16, fp16 (GPU only), fp32")
    parser.add_argument("--device", default="auto", type=t.device, help="cpu, cuda, cuda:1 ... (default: %(default)s)")
    parser.add_argument("--save-every", type=t.non_negative_int, default=save_every,
                        help="write a checkpoint every N steps (0: only at the end; default: %(default)s)")
    parser.add_argument("--log-every", type=t.positive_int, default=10,
                        help="print a progress line (step, loss, speed, time left) and log a row every N steps "
                             "(default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its newest intact checkpoint (same options required)")
    add_allow_change(parser)
    parser.add_argument("--seed", type=t.any_int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--workers", type=t.non_negative_int, default=0,
                        help="data-loading processes (default: %(default)s)")
