"""Work on blocks of queries spread over Python threads: the work inside (FAISS, numba kernels, edlib)
releases the GIL, and one OpenMP thread per Python thread avoids OpenMP threads spinning for busy cores."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def run_blocks(run: Callable[[int], None], n: int, block: int, threads: int) -> None:
    """``run(start)`` for the first index of every block of ``block`` items out of ``n``, on ``threads``
    Python threads (in this thread when there is one thread or one block)."""
    starts = range(0, n, block)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
