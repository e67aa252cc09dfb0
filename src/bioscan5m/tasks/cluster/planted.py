"""Synthetic embeddings with a known nested taxonomy, for tests and scale benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def make_planted_hierarchy(
    n_samples: int,
    branching: Sequence[int] = (4, 5, 5, 4),
    *,
    dim: int = 32,
    spread: float = 0.35,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic embeddings with a known taxonomy, like ``sklearn.datasets.make_blobs`` but nested.

    Level 0 has ``branching[0]`` groups, each splitting into ``branching[1]`` subgroups, and so on; every
    group's centre is its parent's plus Gaussian noise shrinking by ``spread`` per level, so deeper groups sit
    closer together, as species within a genus do. Returns ``vectors float32 [n_samples, dim]`` and
    ``labels int64 [n_samples, len(branching)]`` (column j = group at level j, leaves last).
    """
    rng = np.random.default_rng(seed)
    centres = np.zeros((1, dim))
    scale = 1.0
    for width in branching:
        centres = np.repeat(centres, width, axis=0) + rng.normal(scale=scale, size=(len(centres) * width, dim))
        scale *= spread
    leaves = rng.integers(0, len(centres), size=n_samples)
    vectors = centres[leaves] + rng.normal(scale=scale, size=(n_samples, dim))
    sizes = np.cumprod(branching)
    labels = np.stack([leaves // (sizes[-1] // size) for size in sizes], axis=1)
    return vectors.astype(np.float32), labels.astype(np.int64)
