"""Randomness that depends only on (seed, position), so interrupted and distributed runs repeat exactly.

Training draws nothing from a generator whose state would have to be carried across a restart:
each optimizer step reseeds torch from ``mix_seed(seed, step, micro_batch, rank)`` (dropout), and
per-sample augmentations draw counter-based uniforms from ``mix_seed(seed, epoch, sample_index)``,
so a sample gets the same mask and offset whichever rank or micro-batch it lands in. What is drawn
before training (a model's initial weights, a new classifier head) comes from :func:`seed_everything`,
called before the model is built.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from bioscan5m.splitmix import GOLDEN as _GOLDEN
from bioscan5m.splitmix import mix64


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from any non-negative integers (order matters)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output for state ``x``: the state advanced by one step, then scrambled."""
    return mix64(x + _GOLDEN)


def hashed_uniform(seeds: np.ndarray, count: int) -> np.ndarray:
    """``float64 [len(seeds), count]`` uniforms in [0, 1): column j of row i depends only on (seeds[i], j)."""
    seeds = np.asarray(seeds, dtype=np.uint64)
    with np.errstate(over="ignore"):
        keys = _splitmix64(seeds)[:, None] + np.arange(count, dtype=np.uint64)[None, :] * _GOLDEN
        bits = _splitmix64(keys)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def sample_seeds(seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """``uint64`` seed of each dataset sample in one epoch: the same on any rank, in any batch."""
    base = np.uint64(mix_seed(seed, epoch))
    with np.errstate(over="ignore"):
        return _splitmix64(base + np.asarray(indices, dtype=np.uint64) * _GOLDEN)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every GPU).

    Call it before building a model: its initial weights are then a function of the seed.
    """
    random.seed(seed)
    np.random.seed(mix_seed(seed) % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_algorithms(device: torch.device) -> Iterator[None]:
    """On a GPU, make torch pick deterministic kernels (cuDNN, cuBLAS, scatter-add) for the block.

    Without it, atomic additions (e.g. the embedding gradient) sum in a different order on every run.
    Kernels with no deterministic version warn instead of failing. Nothing changes on the CPU.
    """
    if device.type != "cuda":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts on the device
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
