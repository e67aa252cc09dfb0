"""Work on blocks of queries spread over Python threads: the work inside (FAISS, numba kernels, edlib)
releases the GIL, and one OpenMP thread per Python thread avoids OpenMP threads spinning for busy cores."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

#: Blocks per thread when there are enough items: a slow block then leaves the other threads little idle time.
BLOCKS_PER_THREAD = 4


def run_blocks(run: Callable[[int, int], None], n: int, threads: int, largest: int, smallest: int = 1) -> None:
    """``run(start, stop)`` for consecutive blocks covering ``range(n)``, on ``threads`` Python threads (in
    this thread when there is one thread or one block). Blocks hold at most ``largest`` items (memory) and,
    with several threads, about ``n / (BLOCKS_PER_THREAD * threads)`` so that a few hundred items still keep
    every thread busy, but not fewer than ``smallest``."""
    block = largest if threads <= 1 else max(smallest, min(largest, -(-n // (BLOCKS_PER_THREAD * threads))))
    block = max(block, 1)
    starts = range(0, n, block)

    def run_block(start: int) -> None:
        run(start, min(start + block, n))

    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run_block, starts))
    else:
        for start in starts:
            run_block(start)
