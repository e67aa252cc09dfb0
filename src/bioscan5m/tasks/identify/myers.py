"""Semi-global edit distances of many barcode pairs in one call: Myers' bit-vector algorithm (Myers 1999,
in blocks of 64 rows with Ukkonen's cut-off, as Hyyrö 2003 and edlib lay it out), compiled by numba.

edlib computes the same distances, but its Python binding aligns one pair per call, and the Python work
around each call (the call, its result dict, storing the answer) holds the GIL: on the 89,810 candidate
pairs of the 18,176 BOLD speed queries, two threads aligned them only 1.4x faster than one (3.0 s, then
2.1 s). :func:`align_candidates` aligns a block of queries against their candidates without Python in
between and without the GIL (1.9 s on one thread, 1.2 s on two, the same answers: the tests compare it
with edlib on real and made-up pairs). This module imports numba, so it is imported on first use.

Barcodes come as base codes (:data:`~bioscan5m.tasks.identify.sequence_alignment.BASE_CODES`): N is
compatible with every base (edlib's ``additionalEqualities`` for N), and any other byte matches nothing, not
even itself (cleaned barcodes hold only ACGTN).
"""

from __future__ import annotations

import numba
import numpy as np

_U = np.uint64
_ONE = _U(1)
_ALL = _U(0xFFFF_FFFF_FFFF_FFFF)
#: Edit distance tried first; a pair farther apart is aligned again with twice the limit (edlib's start too).
FIRST_LIMIT = 64


@numba.njit(nogil=True, cache=True, inline="always")
def _popcount(x):  # pragma: no cover - compiled by numba
    x = x - ((x >> _U(1)) & _U(0x5555_5555_5555_5555))
    x = (x & _U(0x3333_3333_3333_3333)) + ((x >> _U(2)) & _U(0x3333_3333_3333_3333))
    x = (x + (x >> _U(4))) & _U(0x0F0F_0F0F_0F0F_0F0F)
    return np.int64((x * _U(0x0101_0101_0101_0101)) >> _U(56))


@numba.njit(nogil=True, cache=True)
def _match_masks(codes, start, n, reverse, masks):  # pragma: no cover - compiled by numba
    """``masks[t, b]``: bit i of block b set where pattern base ``64 b + i`` matches text code t (the pattern
    is ``codes[start:start + n]``, read backwards if ``reverse``)."""
    for t in range(6):
        for b in range((n + 63) >> 6):
            masks[t, b] = _U(0)
    for i in range(n):
        code = codes[start + n - 1 - i] if reverse else codes[start + i]
        bit = _ONE << _U(i & 63)
        if code == 4:
            for t in range(5):
                masks[t, i >> 6] |= bit
        elif code < 4:
            masks[code, i >> 6] |= bit
            masks[4, i >> 6] |= bit


@numba.njit(nogil=True, cache=True)
def _semi_global(masks, n, text, text_start, m, step, free_start, k, plus, minus, score):  # pragma: no cover
    """(best edit distance, if at most ``k``, else -1; its column) of the pattern (``masks``, ``n`` bases)
    ending anywhere in the text ``text[text_start + step * c]``, ``c < m``. ``free_start``: the pattern may
    start anywhere too (edlib's HW mode; the first column of the best distance is reported), else at the
    text's first base (SHW mode; the last such column). Only the band of cells that can hold a distance up to
    ``k`` is computed: a block of 64 rows enters below once the block above it ends at most ``k`` and leaves
    once all its cells exceed ``k``."""
    blocks = (n + 63) >> 6
    padding = _U(0) if n & 63 == 0 else ~((_ONE << _U(n & 63)) - _ONE)  # rows below the pattern's end
    first, last = 0, min(blocks, (k + 64) >> 6) - 1
    for b in range(last + 1):
        plus[b], minus[b], score[b] = _ALL, _U(0), 64 * (b + 1)
    best, column = -1, -1
    for c in range(m):
        t = text[text_start + step * c]
        if last < blocks - 1 and score[last] <= k:
            last += 1
            plus[last], minus[last], score[last] = _ALL, _U(0), score[last - 1] + 64
        carry = 0 if free_start else 1  # the change along the row above the first block
        for b in range(first, last + 1):
            eq, pv, mv = masks[t, b], plus[b], minus[b]
            carry_minus, carry_plus = _U(carry < 0), _U(carry > 0)
            xv = eq | mv
            eq |= carry_minus
            xh = (((eq & pv) + pv) ^ pv) | eq
            ph = mv | ~(xh | pv)
            mh = pv & xh
            carry = np.int64(ph >> _U(63)) - np.int64(mh >> _U(63))
            ph = (ph << _ONE) | carry_plus
            mh = (mh << _ONE) | carry_minus
            plus[b], minus[b] = mh | ~(xv | ph), ph & xv
            score[b] += carry
        if last == blocks - 1:
            distance = score[last] - _popcount(plus[last] & padding) + _popcount(minus[last] & padding)
            if distance <= k:
                if best < 0 or distance < best:
                    best, column = distance, c
                    if free_start:
                        if distance == 0:
                            return best, column
                        k = distance - 1  # the first column of the best distance: only a better one counts
                    else:
                        k = distance
                elif not free_start:
                    column = c
        while last > first and score[last] >= k + 64:
            last -= 1
        # Without a free start the row above the band grows one per column: its first block leaves once
        # all its cells (and the row above it) exceed k.
        while not free_start and first < last and score[first] >= k + 65:
            first += 1
    return best, column


@numba.njit(nogil=True, cache=True)
def _overlap(q_codes, q_start, q_length, r_codes, r_start, r_length, limit, masks, plus, minus, score
             ):  # pragma: no cover - compiled by numba
    """(identity, aligned length, share of the query aligned, edit distance) of the shorter barcode aligned
    inside the longer (see :mod:`~bioscan5m.tasks.identify.sequence_alignment`), trying ``limit`` first."""
    query_is_short = q_length <= r_length
    if query_is_short:
        s_codes, s_start, n, l_codes, l_start, m = q_codes, q_start, q_length, r_codes, r_start, r_length
    else:
        s_codes, s_start, n, l_codes, l_start, m = r_codes, r_start, r_length, q_codes, q_start, q_length
    if n == 0:
        return 0.0, 0, 0.0, 0
    _match_masks(s_codes, s_start, n, False, masks)
    while True:
        distance, end = _semi_global(masks, n, l_codes, l_start, m, 1, True, min(limit, n), plus, minus, score)
        if distance >= 0:
            break
        limit *= 2
    # The aligned stretch of the longer one ends at ``end``, so it is at most end + 1 long: when that is
    # no longer than a query, its start cannot change the answer.
    if query_is_short and end < n:
        return max(0.0, 1.0 - distance / n), n, 1.0, distance
    # Its start, as edlib's task="locations" finds it: the start of the longest alignment ending at ``end``
    # at this distance (the last column where the reversed short one, aligned from ``end`` back, reaches
    # it), searched over the n + distance bases such an alignment can span.
    first = max(0, end - n - distance + 1)
    _match_masks(s_codes, s_start, n, True, masks)
    span = _semi_global(masks, n, l_codes, l_start + end, end - first + 1, -1, False, distance,
                        plus, minus, score)[1] + 1
    aligned = max(n, span)
    coverage = 1.0 if query_is_short else min(1.0, span / q_length)
    return max(0.0, 1.0 - distance / aligned), aligned, coverage, distance


@numba.njit(nogil=True, cache=True)
def align_candidates(q_codes, q_starts, r_codes, r_starts, candidates, start, stop, identity, length, coverage
                     ):  # pragma: no cover - compiled by numba
    """Rows ``start:stop`` of ``identity``, ``length`` and ``coverage`` (``(Q, C)``): query ``i`` (bases
    ``q_codes[q_starts[i]:q_starts[i + 1]]``) aligned to each reference ``candidates[i, j]`` (skipped where -1).
    A query's candidates are alike, so each after the first is tried with a limit a little above the
    distance of the one before it."""
    blocks = 1
    for row in range(start, stop):
        blocks = max(blocks, (q_starts[row + 1] - q_starts[row] + 63) >> 6)
    masks = np.empty((6, blocks), np.uint64)
    plus, minus, score = np.empty(blocks, np.uint64), np.empty(blocks, np.uint64), np.empty(blocks, np.int64)
    for row in range(start, stop):
        q_start, q_length = q_starts[row], q_starts[row + 1] - q_starts[row]
        limit = FIRST_LIMIT
        for col in range(candidates.shape[1]):
            ref = candidates[row, col]
            if ref < 0:
                continue
            identity[row, col], length[row, col], coverage[row, col], distance = _overlap(
                q_codes, q_start, q_length, r_codes, r_starts[ref], r_starts[ref + 1] - r_starts[ref], limit,
                masks, plus, minus, score)
            limit = max(FIRST_LIMIT, distance + distance // 2 + 8)
