"""k-mer containment search for partial barcodes, and the strand vote, on an inverted index of 8-mers.

A 150 nt fragment's k-mer profile is a small part of its barcode's, so the cosine of compressed
profiles ranks it poorly, while the share of its own k-mers a reference holds is ~1 for the barcode it
came from whatever the rest of that barcode is (VSEARCH pre-filters the same way, on shared words).
:class:`KmerContainment` keeps, for every 8-mer, the references holding it, and counts for a query how
many of its distinct 8-mers each reference holds; the best ``n`` are read off those counts.

**Two forms of "the references holding an 8-mer".** A rare 8-mer keeps a sorted posting list (int32
reference numbers, CSR). An 8-mer held by more than :data:`BITMAP_SHARE` of the references keeps a
bitmap instead (one bit per reference, never larger than its list would be): COI is AT-rich, many of
its 8-mers are held by thousands of references, and the lists of a 300-500 nt fragment hold ~3M postings
against the staged reference, ~99% of them in 8-mers with a bitmap. Counts live bit-sliced (bit j of
every reference's count in one bitmap "plane"), so a bitmap is added to all of them with a ripple-carry
pass over n/64 words, ~4x cheaper than incrementing one counter per posting; a posting adds one bit the
same way. The best ``n`` are then found plane by plane from the highest bit (a bit-sliced top-k), and
only their counts are read out. The kernels are compiled by numba (cached on disk after the first run)
and release the GIL, so queries are spread over threads.

**Bounded memory.** A barcode holds ~580 distinct 8-mers, so a 1M-barcode reference would hold ~580M
(8-mer, reference) pairs (2.3 GB as posting lists). Above :data:`MAX_POSTINGS` pairs the index keeps only
the 8-mers whose hash falls in one :attr:`~KmerContainment.sampling`-th of the hash space
(FracMinHash-style sampling, the same 8-mers on both sides), so memory stays under ``4 * MAX_POSTINGS``
bytes whatever the reference's size.

**Strand vote.** How many references hold each 8-mer tells the strand of a query cheaply: the 8-mers of a
barcode's coding strand are common in the reference, those of its reverse complement rare.
:func:`strand_votes` compares the mean log-count of both orientations, so only queries whose margin is
small are searched on both strands.
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
#: (8-mer, reference) pairs kept at most: above this the 8-mers are sampled (see the module docstring).
MAX_POSTINGS = 100_000_000
#: An 8-mer held by more than this share of the references is stored as a bitmap of them: 1 bit per
#: reference is then less than its posting list's 32 bits per holder.
BITMAP_SHARE = 1 / 32
#: Barcodes profiled at once while building and searching.
BLOCK = 2048
#: Mean log(1 + references holding each 8-mer) by which one orientation of a query must beat the other
#: for the strand vote to decide it alone; closer queries are searched on both strands. Measured on
#: 2,000 held-out BOLD barcodes against the 72,639-record reference, full length, 150 nt 5' ends, 313 nt
#: 3' ends and 100 nt middles: the right strand led by at least 2.0 in all but one case (a 100 nt
#: middle without a countable 8-mer, margin 0, searched both ways); the wrong one never led.
STRAND_MARGIN = 1.0

_GOLDEN = np.uint64(2654435761)


def _postings(codes, valid, keep, last, bitmap_row, bitmaps, cursor, postings, first_row):  # pragma: no cover
    """Per kept 8-mer, each row holding it once (``last`` remembers the row last seen): its bit is set in
    the 8-mer's bitmap when it has one (``bitmap_row`` >= 0); else ``cursor[c]`` advances by one and the
    row's number goes to ``postings[cursor[c]]`` when ``postings`` is not empty (the first pass only
    counts, the second fills the lists in ascending row order)."""
    one = np.uint64(1)
    for r in range(codes.shape[0]):
        row = first_row + r
        for w in range(codes.shape[1]):
            if valid[r, w]:
                c = codes[r, w]
                if keep[c] and last[c] != row:
                    last[c] = row
                    if bitmap_row[c] >= 0:
                        bitmaps[bitmap_row[c], row >> 6] |= one << np.uint64(row & 63)
                        continue
                    if postings.size:
                        postings[cursor[c]] = row
                    cursor[c] += 1


def _top_shared(codes, valid, keep, indptr, postings, bitmap_row, bitmaps, allowed, planes, out_count, out_ref,
                sizes):  # pragma: no cover - compiled by numba
    """For each query row: the ``out_count.shape[1]`` references (among those set in the ``allowed``
    bitmap) holding most of its distinct kept 8-mers (most first, ties in reference order), their counts,
    and the number of distinct kept 8-mers. ``planes`` (bits, words) uint64 are zero
    bit-sliced counters (bits enough for a count of every distinct k-mer), left zero."""
    one, zero = np.uint64(1), np.uint64(0)
    n_words = planes.shape[1]
    n = out_count.shape[1]
    candidates = np.empty(n_words, np.uint64)
    greater = np.empty(n_words, np.uint64)
    for i in range(codes.shape[0]):
        row = np.unique(codes[i][valid[i]])
        size = 0
        for c in row:
            if not keep[c]:
                continue
            size += 1
            b = bitmap_row[c]
            if b >= 0:  # add the bitmap to every counter: a ripple carry per word
                for w in range(n_words):
                    carry, d = bitmaps[b, w], 0
                    while carry:
                        held = planes[d, w]
                        planes[d, w] = held ^ carry
                        carry &= held
                        d += 1
            else:  # add one to each holder's counter
                for p in range(indptr[c], indptr[c + 1]):
                    ref = postings[p]
                    w, carry, d = ref >> 6, one << np.uint64(ref & 63), 0
                    while carry:
                        held = planes[d, w]
                        planes[d, w] = held ^ carry
                        carry &= held
                        d += 1
        sizes[i] = size
        depth = 0
        while (1 << depth) <= size:
            depth += 1
        # Candidates: counted at least once and allowed. Then bit by bit from the highest, as in a
        # bit-sliced top-k: "greater" holds those surely among the best n, "candidates" those still
        # tied with the n-th best; in the end every candidate's count equals the n-th best count.
        total = 0
        for w in range(n_words):
            word = zero
            for d in range(depth):
                word |= planes[d, w]
            candidates[w] = word & allowed[w]
            greater[w] = zero
            x = candidates[w]
            while x:
                x &= x - one
                total += 1
        if total > n:
            for d in range(depth - 1, -1, -1):
                above = 0
                for w in range(n_words):
                    x = greater[w] | (candidates[w] & planes[d, w])
                    while x:
                        x &= x - one
                        above += 1
                if above > n:
                    for w in range(n_words):
                        candidates[w] &= planes[d, w]
                else:
                    for w in range(n_words):
                        greater[w] |= candidates[w] & planes[d, w]
                        candidates[w] &= ~planes[d, w]
                    if above == n:
                        candidates[:] = zero
                        break
        # The chosen: every "greater" one, then candidates in reference order up to n in all.
        chosen_ref = np.empty(min(n, total), np.int64)
        m = 0
        for source in (greater, candidates):
            for w in range(n_words):
                x = source[w]
                while x and m < len(chosen_ref):
                    low = x & (~x + one)  # lowest set bit
                    bit = 0
                    while (low >> np.uint64(bit)) != one:
                        bit += 1
                    chosen_ref[m] = w * 64 + bit
                    m += 1
                    x ^= low
        chosen_count = np.zeros(m, np.int32)
        for j in range(m):
            w, bit = chosen_ref[j] >> 6, np.uint64(chosen_ref[j] & 63)
            for d in range(depth):
                chosen_count[j] |= np.int32((planes[d, w] >> bit) & one) << d
        order = np.argsort(-chosen_count, kind="mergesort")  # stable: equal counts stay in reference order
        for j in range(m):
            out_count[i, j] = chosen_count[order[j]]
            out_ref[i, j] = chosen_ref[order[j]]
        planes[:depth] = zero


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
        self.frequency: np.ndarray | None = None
        #: Posting lists (CSR) of the 8-mers without a bitmap; the others' lists are empty.
        self.indptr: np.ndarray | None = None
        self.postings: np.ndarray | None = None
        #: Row of each 8-mer's bitmap in :attr:`bitmaps` (-1: none), and the bitmaps (uint64 words).
        self.bitmap_row: np.ndarray | None = None
        self.bitmaps: np.ndarray | None = None
        self.n_references = 0

    @property
    def n_words(self) -> int:
        """uint64 words of a bitmap of the references."""
        return -(-self.n_references // 64)

    @property
    def nbytes(self) -> int:
        """Bytes of the posting lists and bitmaps."""
        return int(self.postings.nbytes + self.bitmaps.nbytes)

    def _allowed(self, exclude: np.ndarray | None) -> np.ndarray:
        """Bitmap of the references a search may return (bit r % 64 of word r // 64 is reference r): all but
        ``exclude``. Built per search, so only the excluded ones are touched one by one."""
        words = np.full(self.n_words, ~np.uint64(0))
        if self.n_references % 64:
            words[-1] = (np.uint64(1) << np.uint64(self.n_references % 64)) - np.uint64(1)
        if exclude is not None and len(exclude):
            exclude = np.asarray(exclude, dtype=np.int64)
            np.bitwise_and.at(words, exclude >> 6, ~np.left_shift(np.uint64(1), (exclude & 63).astype(np.uint64)))
        return words

    def build(self, sequences: Sequence[str]) -> KmerContainment:
        """Index the distinct (kept) k-mers of every reference barcode."""
        windows = sum(max(len(s) - self.k + 1, 0) for s in sequences)
        self.sampling = max(1, math.ceil(windows / self.max_postings))
        self.keep = kept_kmers(self.k, self.sampling)
        self.n_references = len(sequences)
        self.frequency = np.zeros(4 ** self.k, np.int64)
        no_bitmaps = np.full(4 ** self.k, -1, np.int32), np.zeros((0, self.n_words), np.uint64)
        self._pass(sequences, *no_bitmaps, self.frequency, np.empty(0, np.int32))
        self._lay_out()
        self.bitmaps = np.zeros((int((self.bitmap_row >= 0).sum()), self.n_words), np.uint64)
        self.postings = np.empty(int(self.indptr[-1]), np.int32)
        self._pass(sequences, self.bitmap_row, self.bitmaps, self.indptr[:-1].copy(), self.postings)
        return self

    def _lay_out(self) -> None:
        """Which 8-mers get a bitmap (held by more than :data:`BITMAP_SHARE` of the references), their
        rows, and the posting lists' offsets of the others, from :attr:`frequency`."""
        bitmapped = self.frequency > BITMAP_SHARE * self.n_references
        self.bitmap_row = np.where(bitmapped, np.cumsum(bitmapped) - 1, -1).astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.where(bitmapped, 0, self.frequency))]).astype(np.int64)

    def _pass(self, sequences: Sequence[str], bitmap_row: np.ndarray, bitmaps: np.ndarray, cursor: np.ndarray,
              postings: np.ndarray) -> None:
        """One pass of the posting kernel over every barcode: counts when ``postings`` is empty, else fills."""
        kernel, last = compiled(_postings), np.full(4 ** self.k, -1, np.int64)
        for start in range(0, len(sequences), BLOCK):
            kernel(*kmer_windows(sequences[start:start + BLOCK], self.k), self.keep, last, bitmap_row, bitmaps,
                   cursor, postings, start)

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write ``containment_frequency.npy``, ``containment_postings.npy`` and ``containment_bitmaps.npy``
        into ``folder``."""
        folder = Path(folder)
        for name in ("frequency", "postings", "bitmaps"):
            np.save(folder / f"containment_{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], sampling: int, n_references: int, threads: int = 1
             ) -> KmerContainment:
        """Read what :meth:`save` wrote for ``n_references`` barcodes (``sampling`` as it was built); the
        postings and bitmaps stay memory-mapped."""
        folder = Path(folder)
        index = cls(threads=threads)
        index.sampling, index.keep = sampling, kept_kmers(index.k, sampling)
        index.n_references = n_references
        index.frequency = np.load(folder / "containment_frequency.npy")
        index.postings = np.load(folder / "containment_postings.npy", mmap_mode="r")
        index.bitmaps = np.load(folder / "containment_bitmaps.npy", mmap_mode="r")
        if len(index.frequency) != 4 ** index.k:
            raise ValueError(f"damaged containment index in {folder}")
        index._lay_out()
        if index.indptr[-1] != len(index.postings) or index.bitmaps.shape != (
                int((index.bitmap_row >= 0).sum()), index.n_words):
            raise ValueError(f"damaged containment index in {folder}")
        return index

    def search(self, sequences: Sequence[str], n: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` references holding the largest share of each query's (kept) distinct k-mers: share
        ``(Q, n)`` float32 (-inf where none), index ``(Q, n)`` int64 (-1 where none), best first, equal
        shares in reference order. ``exclude``: references to leave out."""
        top = compiled(_top_shared)
        allowed = self._allowed(exclude)
        count = np.zeros((len(sequences), n), np.int32)
        found = np.full((len(sequences), n), -1, np.int64)
        sizes = np.zeros(len(sequences), np.int64)

        def run(start: int, stop: int) -> None:
            planes = np.zeros((2 * self.k + 1, self.n_words), np.uint64)  # counts up to 4**k distinct k-mers
            top(*kmer_windows(sequences[start:stop], self.k), self.keep, self.indptr, self.postings,
                self.bitmap_row, self.bitmaps, allowed, planes, count[start:stop], found[start:stop],
                sizes[start:stop])

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
