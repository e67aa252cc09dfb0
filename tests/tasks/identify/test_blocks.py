"""run_blocks: every item once, blocks within their bounds, every thread given work."""

import threading

import pytest

from bioscan5m.tasks.identify.blocks import run_blocks


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
