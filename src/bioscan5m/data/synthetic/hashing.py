"""Counter-based random numbers: the same (seed, stream, key) always gives the same value.

Barcodes, poses and read profiles are drawn from these instead of a sequential generator, so any record,
haplotype or taxon can be regenerated on its own, in any order and in any chunk, with identical results.
"""

from __future__ import annotations

import numpy as np

from bioscan5m.splitmix import GOLDEN as _GOLDEN
from bioscan5m.splitmix import mix64

_MASK = (1 << 64) - 1


def hash64(seed: int, stream: int, keys: np.ndarray, *subkeys: np.ndarray | int) -> np.ndarray:
    """64-bit hashes of ``keys`` (broadcast with ``subkeys``) in the random stream ``stream`` of ``seed``."""
    with np.errstate(over="ignore"):
        h = mix64(np.asarray([(seed * 0x100000001B3 + stream) & _MASK], dtype=np.uint64) * _GOLDEN)
        h = mix64(h ^ (np.asarray(keys).astype(np.uint64) * _GOLDEN))
        for sub in subkeys:
            h = mix64(h ^ ((np.asarray(sub).astype(np.uint64) + np.uint64(1)) * _GOLDEN))
    return h


def uniform(seed: int, stream: int, keys: np.ndarray, *subkeys: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1), one per broadcast key (53 random bits each)."""
    return (hash64(seed, stream, keys, *subkeys) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def normal(seed: int, stream: int, keys: np.ndarray, *subkeys: np.ndarray | int) -> np.ndarray:
    """Standard normal floats, one per broadcast key (Box-Muller on two hashed uniforms)."""
    u1 = uniform(seed, stream, keys, *subkeys, 0)
    u2 = uniform(seed, stream, keys, *subkeys, 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def generator(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """A numpy Generator for one small job (one image, one taxon) identified by ``keys``."""
    return np.random.default_rng([seed, stream, *keys])
