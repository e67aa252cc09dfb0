"""run_blocks: every item once, blocks within their bounds, every thread given work; overlapped batches in
order, within one thread budget."""

import threading
import time

import pytest

from bioscan5m.tasks.identify.blocks import overlapped, run_blocks, side_tasks, thread_budget


@pytest.mark.parametrize(("n", "threads", "largest", "smallest"), [
    (0, 2, 64, 1), (1, 2, 64, 1), (13, 2, 256, 1), (130, 2, 256, 1), (1000, 2, 512, 20), (1000, 1, 64, 1),
    (5, 4, 256, 20), (10_000, 3, 64, 1),
])
def test_blocks_cover_every_item_once_within_their_bounds(n, threads, largest, smallest):
    blocks, lock = [], threading.Lock()

    def run(start, stop):
        with lock:
            blocks.append((start, stop, threading.get_ident()))

    run_blocks(run, n, threads, largest, smallest)
    covered = sorted(i for start, stop, _ in blocks for i in range(start, stop))
    assert covered == list(range(n))
    sizes = [stop - start for start, stop, _ in sorted(blocks)]
    assert all(size <= largest for size in sizes)
    # All blocks but the last are the same size, at least `smallest` (or all of n when n is smaller).
    assert len(set(sizes[:-1])) <= 1 and all(size >= min(smallest, n) for size in sizes[:-1])
    if threads > 1 and n >= threads * smallest:
        assert len(blocks) >= threads  # every thread has work, however few the items
    if threads == 1:
        assert len({ident for *_, ident in blocks}) <= 1


class _Busy:
    """Counts the blocks running at once (and the most seen)."""

    def __init__(self):
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def block(self, start, stop):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.005)  # long enough for the other batch's blocks to start meanwhile
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_overlapped_batches_keep_to_the_thread_budget(threads):
    busy, done = _Busy(), []

    def batch(i):
        run_blocks(busy.block, 40, threads, 64)
        run_blocks(busy.block, 24, threads, 64)
        return i

    with thread_budget(threads):
        done = list(overlapped(batch, range(6), depth=2))
    assert done == list(range(6))  # in order, each once
    assert busy.most <= threads
    # Without a budget, two batches of blocks on `threads` threads each exceed it.
    busy = _Busy()
    list(overlapped(batch, range(6), depth=2))
    assert busy.most > threads


def test_a_block_within_a_block_does_not_wait_for_a_second_slot():
    inner = []

    def outer(start, stop):
        run_blocks(lambda a, b: inner.append((a, b)), 8, 2, 64)

    with thread_budget(1):  # one slot, held by the outer block
        run_blocks(outer, 2, 2, 64)
    assert sorted(inner) == sorted([(i, i + 1) for i in range(8)] * 2)


def test_overlapped_with_depth_one_runs_in_this_thread_and_errors_reach_the_caller():
    threads = list(overlapped(lambda i: threading.get_ident(), range(3), depth=1))
    assert threads == [threading.get_ident()] * 3

    def fail(i):
        if i == 2:
            raise ValueError("batch 2")
        return i

    with pytest.raises(ValueError, match="batch 2"):
        list(overlapped(fail, range(5), depth=2))


def test_side_tasks_run_in_turn_with_one_thread_and_beside_with_more():
    caller = threading.get_ident()
    with side_tasks(1) as pool:
        order = []
        first = pool.submit(lambda: order.append("task") or threading.get_ident())
        order.append("after submit")
        failed = pool.submit(lambda: 1 / 0)
    assert order == ["task", "after submit"] and first.result() == caller  # ran at once, in the caller's thread
    with pytest.raises(ZeroDivisionError):
        failed.result()  # an error surfaces where the result is asked for, as from a pool
    with side_tasks(2) as pool:
        assert pool.submit(threading.get_ident).result() != caller
