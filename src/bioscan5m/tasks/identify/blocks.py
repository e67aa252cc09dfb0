"""Work on blocks of queries spread over Python threads: the work inside (FAISS, numba kernels)
releases the GIL, and one OpenMP thread per Python thread avoids OpenMP threads spinning for busy cores.

Batches of queries can also overlap (:func:`overlapped`): while one batch is aligned, the next is searched,
so the Python work between the blocks (strand vote, bookkeeping) runs while other threads compute. Within
:func:`thread_budget`, the blocks of every :func:`run_blocks` call, from whichever thread, share one limit
of busy threads.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

#: Blocks per thread when there are enough items: a slow block then leaves the other threads little idle time.
BLOCKS_PER_THREAD = 4

T = TypeVar("T")
R = TypeVar("R")

#: The limit of blocks running at once set by :func:`thread_budget` (None: none), and whether this thread
#: runs inside a block already (a block within a block must not wait for a second slot: deadlock).
_budget: contextvars.ContextVar[threading.Semaphore | None] = contextvars.ContextVar("budget", default=None)
_in_block: contextvars.ContextVar[bool] = contextvars.ContextVar("in_block", default=False)


@contextmanager
def thread_budget(threads: int) -> Iterator[None]:
    """Within, at most ``threads`` blocks of :func:`run_blocks` run at once in this thread and the threads
    it starts through :func:`overlapped` and :func:`run_blocks`, however many calls are in flight."""
    token = _budget.set(threading.BoundedSemaphore(max(1, threads)))
    try:
        yield
    finally:
        _budget.reset(token)


def _within_budget(run: Callable[[int, int], None], start: int, stop: int) -> None:
    budget = _budget.get()
    if budget is None or _in_block.get():
        run(start, stop)
        return
    with budget:
        token = _in_block.set(True)
        try:
            run(start, stop)
        finally:
            _in_block.reset(token)


def run_blocks(run: Callable[[int, int], None], n: int, threads: int, largest: int, smallest: int = 1) -> None:
    """``run(start, stop)`` for consecutive blocks covering ``range(n)``, on ``threads`` Python threads (in
    this thread when there is one thread or one block). Blocks hold at most ``largest`` items (memory) and,
    with several threads, about ``n / (BLOCKS_PER_THREAD * threads)`` so that a few hundred items still keep
    every thread busy, but not fewer than ``smallest``."""
    block = largest if threads <= 1 else max(smallest, min(largest, -(-n // (BLOCKS_PER_THREAD * threads))))
    block = max(block, 1)
    starts = range(0, n, block)

    def run_block(start: int) -> None:
        _within_budget(run, start, min(start + block, n))

    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            # Each block in a copy of this thread's context: the budget reaches the pool's threads.
            for done in [pool.submit(contextvars.copy_context().run, run_block, start) for start in starts]:
                done.result()
    else:
        for start in starts:
            run_block(start)


def overlapped(run: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """``run(item)`` of each item, in order, with up to ``depth`` items in progress at once on as many
    threads (one at a time in this thread when ``depth`` is 1). Use within :func:`thread_budget` so that
    the items' blocks together keep to the threads asked for."""
    if depth <= 1:
        for item in items:
            yield run(item)
        return
    with ThreadPoolExecutor(depth) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(contextvars.copy_context().run, run, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class InTurnExecutor(Executor):
    """An executor that runs each task when it is submitted, in the caller's thread: with one thread asked
    for, work that would run beside other work runs before it instead."""

    def submit(self, fn: Callable[..., R], /, *args, **kwargs) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - any error is the task's, raised by result() as from a pool
            done.set_exception(error)
        return done


def side_tasks(threads: int) -> Executor:
    """Where tasks that may run beside the caller's own work go: two threads, or in turn with ``threads`` 1."""
    return ThreadPoolExecutor(2) if threads > 1 else InTurnExecutor()
