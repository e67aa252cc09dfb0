"""Overlapping k-mer frequency profiles of DNA barcodes: an alignment-free, training-free representation.

A barcode of length L has L - k + 1 overlapping k-mers; each is read as a base-4 number (A=0, C=1, G=2,
T=3, first letter most significant), so the profile has 4**k columns in lexicographic ACGT order. k-mers
that contain N or any other non-ACGT letter are skipped, and the counts are divided by the number of
k-mers kept, so barcodes of different lengths are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bioscan5m.errors import BioscanError

#: The largest k accepted: 4**12 = 16.7M columns is already too wide to be useful per barcode.
MAX_K = 12

_INVALID = np.uint8(255)
_CODES = np.full(256, _INVALID, dtype=np.uint8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "Tt")):
    for _letter in _letters:
        _CODES[ord(_letter)] = _code


def kmer_names(k: int) -> list[str]:
    """The 4**k k-mers in column order of :func:`kmer_profiles` (``AAAA``, ``AAAC``, ...)."""
    _check_k(k)
    letters = np.array(list("ACGT"))
    digits = (np.arange(4**k)[:, None] >> (2 * np.arange(k - 1, -1, -1))) & 3
    return ["".join(row) for row in letters[digits]]


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise BioscanError(f"k-mer size must be an integer from 1 to {MAX_K}, got {k!r}", value=k)


def kmer_counts(sequences: Sequence[str], k: int = 5) -> np.ndarray:
    """Counts of each overlapping k-mer per sequence: ``int32 [len(sequences), 4**k]``.

    Letters are case-insensitive; a k-mer containing anything but A/C/G/T is not counted.
    """
    _check_k(k)
    width = 4**k
    counts = np.zeros((len(sequences), width), dtype=np.int32)
    # Rows per pass: keeps the flat bincount table near 16M cells whatever k is.
    step = max(1, 2**24 // width)
    for start in range(0, len(sequences), step):
        counts[start : start + step] = _count_block(sequences[start : start + step], k)
    return counts


def kmer_windows(sequences: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Code of every overlapping k-mer, sequence by sequence: ``int32 [len(sequences), W]`` with
    W = longest length - k + 1 (at least 0), and whether each window is a k-mer of A/C/G/T only
    (``bool``, same shape; windows past a sequence's end are not)."""
    _check_k(k)
    n = len(sequences)
    longest = max((len(s) for s in sequences), default=0)
    n_windows = max(longest - k + 1, 0)
    if not n_windows:
        return np.zeros((n, 0), dtype=np.int32), np.zeros((n, 0), dtype=bool)
    # A fixed-width byte matrix (NUL-padded; NUL is not a base) lets numpy work a column at a time.
    raw = np.array([s.encode("latin-1", errors="replace") for s in sequences], dtype=f"S{longest}")
    codes = _CODES[raw.view(np.uint8).reshape(n, longest)]
    kmer = np.zeros((n, n_windows), dtype=np.int32)
    valid = np.ones((n, n_windows), dtype=bool)
    for offset in range(k):
        window = codes[:, offset : offset + n_windows]
        valid &= window != _INVALID
        kmer <<= 2
        kmer |= window & 3
    return kmer, valid


def _count_block(sequences: Sequence[str], k: int) -> np.ndarray:
    n, width = len(sequences), 4**k
    kmer, valid = kmer_windows(sequences, k)
    kmer += (np.arange(n, dtype=np.int32) * width)[:, None]  # one bincount for all rows
    return np.bincount(kmer[valid], minlength=n * width).reshape(n, width).astype(np.int32)


def kmer_profiles(sequences: Sequence[str], k: int = 5) -> np.ndarray:
    """Frequency of each overlapping k-mer per sequence: ``float32 [len(sequences), 4**k]``, rows sum to 1.

    A sequence with no countable k-mer (shorter than k, or all N) gets a row of zeros.
    """
    counts = kmer_counts(sequences, k)
    totals = counts.sum(axis=1, keepdims=True)
    return (counts / np.maximum(totals, 1)).astype(np.float32)
