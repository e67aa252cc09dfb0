"""Exact identity of a query to its candidate references by semi-global alignment (edlib).

The shorter barcode is aligned end to end inside the longer one (edlib's "HW" mode: overhangs of the
longer one are free), so a 400 bp partial barcode is not penalised against a full 658 bp one. Identity =
1 - edit distance / length of the shorter barcode; N matches any base. edlib (Myers' bit-vector
algorithm) takes ~25 µs for a pair of 658 bp barcodes on one core.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bioscan5m.errors import BioscanError

# N (unread or masked ambiguity) is compatible with every base.
_N_MATCHES = [("N", base) for base in "ACGT"]


def _edlib():
    try:
        import edlib
    except ImportError:  # pragma: no cover - edlib is a declared dependency
        raise BioscanError("alignment needs the edlib package: pip install edlib") from None
    return edlib


def identity(a: str, b: str) -> float:
    """Identity in [0, 1] of the shorter of ``a``/``b`` aligned inside the longer (see module docstring)."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if not short:
        return 0.0
    result = _edlib().align(short, long, mode="HW", task="distance", additionalEqualities=_N_MATCHES)
    return max(0.0, 1.0 - result["editDistance"] / len(short))


def candidate_identities(queries: Sequence[str], references: Sequence[str], candidates: np.ndarray) -> np.ndarray:
    """Identity of each query to each of its candidates: float32 ``(Q, C)``; -inf where the candidate is -1."""
    out = np.full(candidates.shape, -np.inf, dtype=np.float32)
    for row, (query, refs) in enumerate(zip(queries, candidates)):
        for column, ref in enumerate(refs):
            if ref >= 0:
                out[row, column] = identity(query, references[ref])
    return out
