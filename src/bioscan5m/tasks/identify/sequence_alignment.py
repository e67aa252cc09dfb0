"""Exact identity of a query to its candidate references by semi-global alignment.

The shorter barcode is aligned end to end inside the longer one (edlib's "HW" mode: overhangs of the
longer one are free), so a 150 bp mini-barcode or a 313 bp Leray amplicon is scored over the part of
the full barcode it overlaps, not penalised for the rest. Identity is over the aligned overlap:
1 - edit distance / aligned length, where the aligned length is the longer of the shorter barcode and
the stretch of the longer one it aligns to (close to BLAST's alignment length); N matches any base.
The distances are Myers' bit-vector edit distances (:mod:`~bioscan5m.tasks.identify.myers`, ~20 µs for a
pair of 658 bp barcodes on one core), computed for a block of queries without the GIL, so
:func:`candidate_alignments` spreads blocks over threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bioscan5m.tasks.identify.blocks import run_blocks

#: Queries aligned per block, at most (one block per thread at a time).
ALIGN_BLOCK = 64
#: Code of every byte for the alignment kernel: A C G T N -> 0-4, anything else -> 5 (matches nothing).
BASE_CODES = np.full(256, 5, dtype=np.uint8)
BASE_CODES[np.frombuffer(b"ACGTN", dtype=np.uint8)] = np.arange(5, dtype=np.uint8)
_BASE_TABLE = BASE_CODES.tobytes()


@dataclass(frozen=True)
class PackedBarcodes:
    """Barcodes as one array of base codes (:data:`BASE_CODES`) and where each starts (``(n + 1,)``)."""

    codes: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts) - 1


def pack_barcodes(sequences: Sequence[str]) -> PackedBarcodes:
    """``sequences`` (cleaned barcodes) as :class:`PackedBarcodes`."""
    starts = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sequences], out=starts[1:])
    # bytes.translate maps 47 MB (72k BOLD barcodes) in ~40 ms; numpy's BASE_CODES[...] takes ~170 ms.
    codes = "".join(sequences).encode("ascii", errors="replace").translate(_BASE_TABLE)
    return PackedBarcodes(np.frombuffer(codes, dtype=np.uint8), starts)


def candidate_alignments(queries: Sequence[str] | PackedBarcodes, references: Sequence[str] | PackedBarcodes,
                         candidates: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alignment of each query to each of its candidates: identity float32 ``(Q, C)`` (-inf where the
    candidate is -1), aligned length int32 ``(Q, C)`` and share of the query aligned float32 ``(Q, C)``.
    ``threads`` > 1 aligns blocks of queries in parallel. Pass a large reference packed
    (:func:`pack_barcodes`, once); from a list only the candidates' barcodes are packed."""
    from bioscan5m.tasks.identify.myers import align_candidates

    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    if not isinstance(references, PackedBarcodes):
        used, position = np.unique(candidates[candidates >= 0], return_inverse=True)
        candidates = candidates.copy()
        candidates[candidates >= 0] = position
        references = pack_barcodes([references[i] for i in used])
    if not isinstance(queries, PackedBarcodes):
        queries = pack_barcodes(queries)
    identity_ = np.full(candidates.shape, -np.inf, dtype=np.float32)
    length = np.zeros(candidates.shape, dtype=np.int32)
    coverage = np.zeros(candidates.shape, dtype=np.float32)

    def align_rows(start: int, stop: int) -> None:
        align_candidates(queries.codes, queries.starts, references.codes, references.starts, candidates,
                         start, stop, identity_, length, coverage)

    run_blocks(align_rows, len(queries), threads, ALIGN_BLOCK)
    return identity_, length, coverage

