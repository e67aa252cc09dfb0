"""SplitMix64's finaliser: the bijective scramble of uint64 values behind every counter-based random number
of the package (synthetic data, training's per-sample draws)."""

from __future__ import annotations

import numpy as np

#: 2^64 / golden ratio: SplitMix64's increment between consecutive keys.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of ``x`` (uint64, array in, array out; wraps around, no warning)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))
