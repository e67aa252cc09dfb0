"""What a query barcode is before it is searched: its reverse complement, and whether it can be searched.

A query is answered only if it can carry a barcode's worth of information: at least
:data:`MIN_QUERY_LENGTH` called bases (shorter: ``too_short``), and not a low-complexity stretch such as
poly-A or a dinucleotide repeat (``low_complexity``: the Shannon entropy of its 3-mers under
:data:`MIN_TRIMER_ENTROPY` bits, where COI barcodes have ~5.3-5.8 of the 6 possible). After the
search, a query whose best hit is under :data:`MIN_IDENTITY` over the aligned overlap is ``no_hit``:
at that distance the reference holds nothing of its order, or it is another marker or not DNA of an
animal at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bioscan5m.models.kmer import kmer_windows

OK, NO_HIT, TOO_SHORT, LOW_COMPLEXITY = "ok", "no_hit", "too_short", "low_complexity"
#: Every value of the ``status`` column.
STATUSES: tuple[str, ...] = (OK, NO_HIT, TOO_SHORT, LOW_COMPLEXITY)
#: Called bases (not N) a query needs; mini-barcodes start at ~100 nt.
MIN_QUERY_LENGTH = 80
#: Bits of 3-mer entropy under which a query is low-complexity (poly-A: 0, (AT)n: 1, (ACG)n: ~1.6).
MIN_TRIMER_ENTROPY = 3.0
#: Best identity over the aligned overlap under which nothing in the reference is related (insect
#: orders differ by ~15-25% in COI; unrelated DNA aligns at ~55-65%).
MIN_IDENTITY = 0.80
#: Queries whose 3-mers are counted at once.
ENTROPY_BLOCK = 2048

#: Queries shorter than this are partial barcodes: found by k-mer containment (not by profile cosine)
#: and calibrated apart.
PARTIAL_LENGTH = 500

_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def reverse_complement(sequence: str) -> str:
    """The other strand of a cleaned barcode (letters ACGTN), 5' to 3'."""
    return sequence.translate(_COMPLEMENT)[::-1]


def trimer_entropies(sequences: Sequence[str]) -> np.ndarray:
    """Shannon entropy in bits of each sequence's overlapping 3-mers without N, float64 ``(len(sequences),)``
    (0 for fewer than one 3-mer)."""
    entropy = np.zeros(len(sequences), dtype=np.float64)
    for start in range(0, len(sequences), ENTROPY_BLOCK):  # blocks: the window matrices stay small
        codes, valid = kmer_windows(sequences[start:start + ENTROPY_BLOCK], 3)
        rows = np.arange(len(codes), dtype=np.int32)[:, None] * 64
        counts = np.bincount((rows + codes)[valid], minlength=64 * len(codes)).reshape(-1, 64)
        p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        entropy[start:start + ENTROPY_BLOCK] = -(p * np.log2(np.where(p > 0, p, 1.0))).sum(axis=1)
    return entropy


def trimer_entropy(sequence: str) -> float:
    """Shannon entropy in bits of the overlapping 3-mers without N (0 for fewer than one 3-mer)."""
    return float(trimer_entropies([sequence])[0])


def query_statuses(sequences: Sequence[str]) -> np.ndarray:
    """``too_short``, ``low_complexity`` or ``ok`` per query (object array; ``ok`` may still become
    ``no_hit`` after the search)."""
    called = np.array([len(s) - s.count("N") for s in sequences], dtype=np.int64)
    status = np.full(len(sequences), OK, dtype=object)
    status[trimer_entropies(sequences) < MIN_TRIMER_ENTROPY] = LOW_COMPLEXITY
    status[called < MIN_QUERY_LENGTH] = TOO_SHORT
    return status


def query_status(sequence: str) -> str:
    """``too_short``, ``low_complexity`` or ``ok`` (may still become ``no_hit`` after the search)."""
    return str(query_statuses([sequence])[0])
