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

from collections import Counter

import numpy as np

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

#: Queries shorter than this are partial barcodes: found by k-mer containment (not by profile cosine)
#: and calibrated apart.
PARTIAL_LENGTH = 500

_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def reverse_complement(sequence: str) -> str:
    """The other strand of a cleaned barcode (letters ACGTN), 5' to 3'."""
    return sequence.translate(_COMPLEMENT)[::-1]


def trimer_entropy(sequence: str) -> float:
    """Shannon entropy in bits of the overlapping 3-mers without N (0 for fewer than one 3-mer)."""
    counts = Counter(sequence[i:i + 3] for i in range(len(sequence) - 2) if "N" not in sequence[i:i + 3])
    total = sum(counts.values())
    if not total:
        return 0.0
    p = np.fromiter(counts.values(), dtype=np.float64) / total
    return float(-(p * np.log2(p)).sum())


def query_status(sequence: str) -> str:
    """``too_short``, ``low_complexity`` or ``ok`` (may still become ``no_hit`` after the search)."""
    if len(sequence) - sequence.count("N") < MIN_QUERY_LENGTH:
        return TOO_SHORT
    if trimer_entropy(sequence) < MIN_TRIMER_ENTROPY:
        return LOW_COMPLEXITY
    return OK
