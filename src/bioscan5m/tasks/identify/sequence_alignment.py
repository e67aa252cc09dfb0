"""Exact identity of a query to its candidate references by semi-global alignment (edlib).

The shorter barcode is aligned end to end inside the longer one (edlib's "HW" mode: overhangs of the
longer one are free), so a 150 bp mini-barcode or a 313 bp Leray amplicon is scored over the part of
the full barcode it overlaps, not penalised for the rest. Identity is over the aligned overlap:
1 - edit distance / aligned length, where the aligned length is the longer of the shorter barcode and
the stretch of the longer one it aligns to (close to BLAST's alignment length); N matches any base.
edlib (Myers' bit-vector algorithm) takes ~25-60 µs for a pair of 658 bp barcodes on one core and
releases Python's GIL while it aligns, so :func:`candidate_alignments` spreads queries over threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bioscan5m.errors import BioscanError
from bioscan5m.tasks.identify.blocks import run_blocks

# N (unread or masked ambiguity) is compatible with every base.
_N_MATCHES = [("N", base) for base in "ACGT"]
#: Queries aligned per block, at most (one block per thread at a time).
ALIGN_BLOCK = 64


def _edlib():
    try:
        import edlib
    except ImportError:  # pragma: no cover - edlib is a declared dependency
        raise BioscanError("alignment needs the edlib package: pip install edlib") from None
    return edlib


def overlap_alignment(query: str, reference: str) -> tuple[float, int, float]:
    """(identity in [0, 1], aligned length in nt, share of the query aligned) of the shorter of the two
    aligned inside the longer (see module docstring)."""
    short, long = (query, reference) if len(query) <= len(reference) else (reference, query)
    if not short:
        return 0.0, 0, 0.0
    # Distance 0, so no gap: the aligned stretch is as long as the shorter (9% of the pairs aligned for
    # held-out BOLD queries, a third of the calibration's, whose fragments come from reference barcodes).
    if short in long:
        return 1.0, len(short), 1.0 if short is query else min(1.0, len(short) / len(query))
    # Without an N in either, the equalities change nothing and cost ~30% more time.
    equalities = _N_MATCHES if "N" in short or "N" in long else None
    edlib = _edlib()
    found = edlib.align(short, long, mode="HW", task="distance", additionalEqualities=equalities)
    distance, end = found["editDistance"], found["locations"][0][1]
    n = len(short)
    # The aligned stretch of the longer one ends at ``end``, so it is at most end + 1 long: when that is
    # no longer than a query, its start cannot change the answer.
    if short is query and end < n:
        return max(0.0, 1.0 - distance / n), n, 1.0
    # Its start, as edlib's task="locations" finds it (the start of the longest alignment ending at
    # ``end`` at this distance: the farthest end of the reversed short one aligned from ``end`` back),
    # but searched only over the n + distance bases such an alignment can span, not back to the start
    # of the longer one (and for the first end only, where several ends tie).
    first = max(0, end - n - distance + 1)
    back = edlib.align(short[::-1], long[end:first - 1 if first else None:-1], mode="SHW", task="distance",
                       k=distance, additionalEqualities=equalities)
    span = max(location[1] for location in back["locations"]) + 1
    aligned = max(n, span)
    coverage = 1.0 if short is query else min(1.0, span / len(query))
    return max(0.0, 1.0 - distance / aligned), aligned, coverage


def identity(a: str, b: str) -> float:
    """Identity in [0, 1] of the shorter of ``a``/``b`` aligned inside the longer (see module docstring)."""
    return overlap_alignment(a, b)[0]


def candidate_alignments(queries: Sequence[str], references: Sequence[str], candidates: np.ndarray,
                         threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alignment of each query to each of its candidates: identity float32 ``(Q, C)`` (-inf where the
    candidate is -1), aligned length int32 ``(Q, C)`` and share of the query aligned float32 ``(Q, C)``.
    ``threads`` > 1 aligns blocks of queries in parallel."""
    identity_ = np.full(candidates.shape, -np.inf, dtype=np.float32)
    length = np.zeros(candidates.shape, dtype=np.int32)
    coverage = np.zeros(candidates.shape, dtype=np.float32)

    def align_rows(start: int, stop: int) -> None:
        for row in range(start, stop):
            query = queries[row]
            for column, ref in enumerate(candidates[row]):
                if ref >= 0:
                    identity_[row, column], length[row, column], coverage[row, column] = overlap_alignment(
                        query, references[ref])

    run_blocks(align_rows, len(queries), threads, ALIGN_BLOCK)
    return identity_, length, coverage


def candidate_identities(queries: Sequence[str], references: Sequence[str], candidates: np.ndarray) -> np.ndarray:
    """Identity of each query to each of its candidates: float32 ``(Q, C)``; -inf where the candidate is -1."""
    return candidate_alignments(queries, references, candidates)[0]
