"""Kernels compiled by numba on first use (numba is imported then, not when the package is), cached on disk,
and releasing the GIL so that :func:`~bioscan5m.tasks.identify.blocks.run_blocks` can spread them over threads."""

from __future__ import annotations

import functools
from collections.abc import Callable


@functools.cache
def compiled(function: Callable) -> Callable:
    """``function`` compiled by ``numba.njit(nogil=True, cache=True)`` (once per process)."""
    import numba

    return numba.njit(nogil=True, cache=True)(function)
