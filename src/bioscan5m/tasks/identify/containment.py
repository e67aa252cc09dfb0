"""k-mer containment search for partial barcodes, and the strand vote, on an inverted index of 8-mers.

A 150 nt fragment's k-mer profile is a small part of its barcode's, so the cosine of compressed
profiles ranks it poorly, while the share of its own k-mers a reference holds is ~1 for the barcode it
came from whatever the rest of that barcode is (VSEARCH pre-filters the same way, on shared words).
:class:`KmerContainment` keeps, for every 8-mer, the sorted list of references holding it (a CSR
"posting list", int32 reference numbers); a query's shares are counted by walking the lists of its
distinct 8-mers into one counter per reference, then the best ``n`` are read off a histogram of the
counts. The kernels are compiled by numba (cached on disk after the first run) and release the GIL,
so queries are spread over threads.

**Bounded memory.** A barcode holds ~580 distinct 8-mers, so a 1M-barcode reference would need ~580M
postings (2.3 GB). Above :data:`MAX_POSTINGS` the index keeps only the 8-mers whose hash falls in one
:attr:`~KmerContainment.sampling`-th of the hash space (FracMinHash-style sampling, the same 8-mers on
both sides), so memory stays near ``4 * MAX_POSTINGS`` bytes whatever the reference's size.

**Strand vote.** How many references hold each 8-mer (the lengths of the posting lists) tells the
strand of a query cheaply: the 8-mers of a barcode's coding strand are common in the reference, those
of its reverse complement rare. :func:`strand_votes` compares the mean log-count of both orientations,
so only queries whose margin is small are searched on both strands.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bioscan5m.models.kmer import kmer_windows
from bioscan5m.tasks.identify.blocks import run_blocks
from bioscan5m.tasks.identify.compiled import compiled

#: k of the containment search: 8-mers are specific enough that a 150 nt fragment shares few by chance.
CONTAINMENT_K = 8
#: Postings kept at most (int32 each): above this the 8-mers are sampled (see the module docstring).
MAX_POSTINGS = 100_000_000
#: Barcodes profiled at once while building and searching.
BLOCK = 2048
#: Mean log(1 + references holding each 8-mer) by which one orientation of a query must beat the other
#: for the strand vote to decide it alone; closer queries are searched on both strands. Measured on
#: 2,000 held-out BOLD barcodes against the 72,639-record reference, full length, 150 nt 5' ends, 313 nt
#: 3' ends and 100 nt middles: the right strand led by at least 2.0 in all but one case (a 100 nt
#: middle without a countable 8-mer, margin 0, searched both ways); the wrong one never led.
STRAND_MARGIN = 1.0

_GOLDEN = np.uint64(2654435761)


def _postings(codes, valid, keep, last, cursor, postings, first_row):  # pragma: no cover - compiled by numba
    """Per 8-mer, each row holding it once (``last`` remembers the row last seen): ``cursor[c]`` advances by
    one, and the row's number goes to ``postings[cursor[c]]`` when ``postings`` is not empty (the first pass
    only counts, the second fills the lists in ascending row order)."""
    for r in range(codes.shape[0]):
        row = first_row + r
        for w in range(codes.shape[1]):
            if valid[r, w]:
                c = codes[r, w]
                if keep[c] and last[c] != row:
                    last[c] = row
                    if postings.size:
                        postings[cursor[c]] = row
                    cursor[c] += 1


def _top_shared(codes, valid, keep, indptr, postings, excluded, out_count, out_ref, sizes):  # pragma: no cover
    """For each query row: the ``out_count.shape[1]`` references holding most of its distinct kept 8-mers
    (most first, ties in reference order), their counts, and the number of distinct kept 8-mers."""
    n_refs = excluded.shape[0]
    n = out_count.shape[1]
    counts = np.zeros(n_refs, np.int32)
    for i in range(codes.shape[0]):
        row = np.unique(codes[i][valid[i]])
        size = 0
        for c in row:
            if keep[c]:
                size += 1
                for p in range(indptr[c], indptr[c + 1]):
                    counts[postings[p]] += 1
        sizes[i] = size
        hist = np.zeros(size + 1, np.int64)
        for r in range(n_refs):
            if counts[r] > 0 and not excluded[r]:
                hist[counts[r]] += 1
        threshold, total = size, 0
        while threshold > 1:
            total += hist[threshold]
            if total >= n:
                break
            threshold -= 1
        threshold = max(threshold, 1)
        chosen_count = np.empty(hist[threshold:].sum(), np.int32)
        chosen_ref = np.empty(len(chosen_count), np.int64)
        m = 0
        for r in range(n_refs):
            if counts[r] >= threshold and not excluded[r]:
                chosen_count[m] = counts[r]
                chosen_ref[m] = r
                m += 1
            counts[r] = 0
        order = np.argsort(-chosen_count, kind="mergesort")  # stable: equal counts stay in reference order
        for j in range(min(n, m)):
            out_count[i, j] = chosen_count[order[j]]
            out_ref[i, j] = chosen_ref[order[j]]


def kept_kmers(k: int, sampling: int) -> np.ndarray:
    """Which k-mer codes are kept when one in ``sampling`` is (by a multiplicative hash), bool ``(4**k,)``."""
    codes = np.arange(4 ** k, dtype=np.uint64)
    return ((codes * _GOLDEN) & np.uint64(0xFFFFFFFF)) % np.uint64(sampling) == 0


class KmerContainment:
    """Share of a query's distinct 8-mers found in each reference barcode (see the module docstring).

    ``KmerContainment().build(sequences)`` then ``search(queries, n)``; ``frequency`` (4**k,) int64 is
    how many references hold each kept 8-mer (what :func:`strand_votes` reads).
    """

    def __init__(self, k: int = CONTAINMENT_K, max_postings: int = MAX_POSTINGS, threads: int = 1) -> None:
        self.k = k
        self.max_postings = max_postings
        self.threads = threads
        self.sampling = 1
        self.keep: np.ndarray | None = None
        self.indptr: np.ndarray | None = None
        self.postings: np.ndarray | None = None
        self.n_references = 0

    @property
    def frequency(self) -> np.ndarray:
        return np.diff(self.indptr)

    def build(self, sequences: Sequence[str]) -> KmerContainment:
        """Index the distinct (kept) k-mers of every reference barcode."""
        windows = sum(max(len(s) - self.k + 1, 0) for s in sequences)
        self.sampling = max(1, math.ceil(windows / self.max_postings))
        self.keep = kept_kmers(self.k, self.sampling)
        self.n_references = len(sequences)
        counts = np.zeros(4 ** self.k, np.int64)
        self._pass(sequences, counts, np.empty(0, np.int32))
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.postings = np.empty(int(self.indptr[-1]), np.int32)
        self._pass(sequences, self.indptr[:-1].copy(), self.postings)
        return self

    def _pass(self, sequences: Sequence[str], cursor: np.ndarray, postings: np.ndarray) -> None:
        """One pass of the posting kernel over every barcode: counts when ``postings`` is empty, else fills."""
        kernel, last = compiled(_postings), np.full(4 ** self.k, -1, np.int64)
        for start in range(0, len(sequences), BLOCK):
            kernel(*kmer_windows(sequences[start:start + BLOCK], self.k), self.keep, last, cursor, postings, start)

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write ``containment_indptr.npy`` and ``containment_postings.npy`` into ``folder``."""
        folder = Path(folder)
        np.save(folder / "containment_indptr.npy", self.indptr)
        np.save(folder / "containment_postings.npy", self.postings)

    @classmethod
    def load(cls, folder: str | os.PathLike[str], sampling: int, n_references: int, threads: int = 1
             ) -> KmerContainment:
        """Read what :meth:`save` wrote for ``n_references`` barcodes (``sampling`` as it was built); the
        postings stay memory-mapped."""
        folder = Path(folder)
        index = cls(threads=threads)
        index.indptr = np.load(folder / "containment_indptr.npy")
        index.postings = np.load(folder / "containment_postings.npy", mmap_mode="r")
        if len(index.indptr) != 4 ** index.k + 1 or index.indptr[-1] != len(index.postings):
            raise ValueError(f"damaged containment index in {folder}")
        index.sampling, index.keep = sampling, kept_kmers(index.k, sampling)
        index.n_references = n_references
        return index

    def search(self, sequences: Sequence[str], n: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` references holding the largest share of each query's (kept) distinct k-mers: share
        ``(Q, n)`` float32 (-inf where none), index ``(Q, n)`` int64 (-1 where none), best first, equal
        shares in reference order. ``exclude``: references to leave out."""
        top = compiled(_top_shared)
        excluded = np.zeros(self.n_references, dtype=bool)
        if exclude is not None and len(exclude):
            excluded[np.asarray(exclude, dtype=np.int64)] = True
        count = np.zeros((len(sequences), n), np.int32)
        found = np.full((len(sequences), n), -1, np.int64)
        sizes = np.zeros(len(sequences), np.int64)

        def run(start: int, stop: int) -> None:
            top(*kmer_windows(sequences[start:stop], self.k), self.keep, self.indptr, self.postings, excluded,
                count[start:stop], found[start:stop], sizes[start:stop])

        run_blocks(run, len(sequences), self.threads, BLOCK // 8)
        share = np.where(found >= 0, count / np.maximum(sizes, 1)[:, None], -np.inf).astype(np.float32)
        return share, found


def strand_votes(forward: Sequence[str], reverse: Sequence[str], frequency: np.ndarray, keep: np.ndarray,
                 k: int = CONTAINMENT_K) -> np.ndarray:
    """Per query, mean log(1 + references holding each kept 8-mer) of ``forward`` minus that of
    ``reverse`` (float64 ``(Q,)``; positive: the query as given looks like the reference's strand).
    ``frequency`` and ``keep`` as :attr:`KmerContainment.frequency` and :attr:`KmerContainment.keep`."""
    weight = np.log1p(frequency.astype(np.float64))
    scores = []
    for side in (forward, reverse):
        codes, valid = kmer_windows(side, k)
        valid &= keep[codes]
        per_window = np.where(valid, weight[codes], 0.0)
        scores.append(per_window.sum(axis=1) / np.maximum(valid.sum(axis=1), 1))
    return scores[0] - scores[1]
