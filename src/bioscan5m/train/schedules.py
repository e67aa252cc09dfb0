"""Learning-rate schedules as pure functions of the step: nothing to save, exact on resume.

Each returns the factor that multiplies the peak learning rate at optimizer step ``step``
(0-based) of ``total`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from bioscan5m.errors import BioscanError


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * fraction))


def _one_cycle_phases(step: int, total: int, warmup: float, start: float, peak: float, end: float) -> float:
    """torch's ``OneCycleLR`` phases: cosine from ``start`` to ``peak`` over the first ``warmup`` fraction of
    steps, then cosine from ``peak`` to ``end``."""
    peak_step = float(warmup * total) - 1
    if step <= peak_step:
        return _cosine(start, peak, step / peak_step) if peak_step > 0 else peak
    last = total - 1
    return _cosine(peak, end, (step - peak_step) / (last - peak_step)) if last > peak_step else end


def one_cycle(
    step: int, total: int, warmup: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4
) -> float:
    """torch's ``OneCycleLR`` (cosine annealing, as the BarcodeBERT authors train): rise from
    1/div_factor to 1 over the first ``warmup`` fraction of steps, then fall to
    1/(div_factor * final_div_factor)."""
    return _one_cycle_phases(step, total, warmup, 1 / div_factor, 1.0, 1 / (div_factor * final_div_factor))


def one_cycle_momentum(step: int, total: int, warmup: float = 0.3, base: float = 0.85, peak: float = 0.95) -> float:
    """Adam's beta1 under torch's ``OneCycleLR`` (``cycle_momentum=True``, cosine): from ``peak`` down to
    ``base`` while the learning rate rises, back up to ``peak`` while it falls (same phases as
    :func:`one_cycle`)."""
    return _one_cycle_phases(step, total, warmup, peak, base, peak)


def warmup_cosine(step: int, total: int, warmup: float = 0.1, final: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup`` fraction of steps, then cosine decay to ``final``."""
    warmup_steps = int(warmup * total)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total - warmup_steps, 1)
    return _cosine(1.0, final, min((step - warmup_steps) / span, 1.0))


def constant(step: int, total: int, warmup: float = 0.0) -> float:
    """The peak rate throughout, after an optional linear warm-up."""
    warmup_steps = int(warmup * total)
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


SCHEDULES: dict[str, Callable[..., float]] = {
    "onecycle": one_cycle,
    "cosine": warmup_cosine,
    "constant": constant,
}


def get_schedule(name: str) -> Callable[..., float]:
    """The schedule function registered under ``name``."""
    if name not in SCHEDULES:
        raise BioscanError(
            f"unknown learning-rate schedule {name!r}; choose from {', '.join(SCHEDULES)}", value=name
        )
    return SCHEDULES[name]
