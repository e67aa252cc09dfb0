"""Alignment-free candidate search: k-mer count profiles, PCA-compressed, exact inner product in FAISS.

Each barcode becomes its overlapping k-mer counts (``4**k`` columns, k-mers with N skipped), scaled to
unit length; a PCA fitted on the reference compresses them to ``dim`` columns, which are scaled to unit
length again, so the inner product is a cosine. On BOLD insects, PCA-128 of 6-mer counts found the right
genus for unseen species more often than raw 4-, 5- or 6-mer profiles or hashed 8- to 12-mers, and it
searches ~30x fewer numbers than raw 6-mers (see docs/identify.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
from safetensors.numpy import load_file, save_file
from threadpoolctl import threadpool_limits

from bioscan5m.models.kmer import kmer_windows
from bioscan5m.tasks.identify.blocks import run_blocks
from bioscan5m.tasks.identify.compiled import compiled

#: Barcodes embedded at once (their k-mer codes take ~10 MiB).
BATCH = 4096
#: Reference rows the PCA is fitted on (a random sample; the components barely move beyond this).
PCA_SAMPLE = 8000
#: Above this many reference barcodes the search is approximate: FAISS IVF (inverted lists of k-means
#: cells, ~sqrt(n) cells, :data:`N_PROBE` of them visited per query), with its recall measured at build.
#: sqrt(n) rather than the usual 4 sqrt(n): k-means on 39 points per cell costs ~39 cells^2 dim per
#: iteration, 4 TFLOP in all for 4,000 cells at 1M barcodes (minutes on 2 cores) against 0.25 for 1,000,
#: and 1,000 cells with 32 probed still scan only 3% of a 1M reference.
APPROXIMATE_ABOVE = 200_000
N_PROBE = 32
#: Queries embedded and searched at once by one thread (the last block of a call holds the rest), whatever
#: the number of threads (the rescored cosines depend on neither).
SEARCH_BLOCK = 512
#: Query rows from which FAISS scans a flat index with BLAS (FAISS's former default). FAISS 1.15 counts
#: rows x dim against 128,000, i.e. 1,000 rows at dim 128; below that its plain loop cost ~0.7 ms per
#: query against 35,616 barcodes on one core, against ~0.12 ms with BLAS for a block of 512 (same hits),
#: and BLAS is as fast from ~10 rows: left as it was, the flat scan of 512-query blocks was 5x slower.
BLAS_FROM_ROWS = 20
#: Reference barcodes searched both ways (IVF and exact) to measure the recall of the approximate index.
RECALL_SAMPLE = 1000
#: Candidates fetched from FAISS beyond those asked for, so that ranking them by their exact cosines (see
#: :meth:`KmerIndex.search`) can take in one that FAISS's rounding put just below the last place.
RESCORE_ROOM = 8


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every row scaled to unit L2 norm (all-zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _unit_profiles(codes, valid, out):  # pragma: no cover - compiled by numba
    """Row i of ``out`` (zeros, ``(Q, 4**k)`` float32) becomes the k-mer counts of row i of ``codes`` (the
    windows where ``valid``) scaled to unit length."""
    for i in range(codes.shape[0]):
        for w in range(codes.shape[1]):
            if valid[i, w]:
                out[i, codes[i, w]] += 1.0
        squares = 0.0
        for c in range(out.shape[1]):
            squares += out[i, c] * out[i, c]
        if squares > 0:
            out[i] /= np.sqrt(squares)


def _exact_cosines(queries, references, found, out):  # pragma: no cover - compiled by numba
    """``out[i, j]`` (``(Q, C)`` float32) becomes the inner product of row i of ``queries`` and row
    ``found[i, j]`` of ``references`` (-inf where that is -1), summed in float64 in one fixed order: the
    same value whatever else is searched with the query."""
    for i in range(found.shape[0]):
        for j in range(found.shape[1]):
            r = found[i, j]
            if r < 0:
                out[i, j] = -np.inf
                continue
            total = 0.0
            for t in range(queries.shape[1]):
                total += np.float64(queries[i, t]) * np.float64(references[r, t])
            out[i, j] = total


def _project_profiles(codes, valid, basis, out):  # pragma: no cover - compiled by numba
    """Row i of ``out`` (``(Q, d)`` float32) becomes the unit-length k-mer count profile of row i of ``codes``
    times ``basis`` (``(4**k, d)``), without building the profile: a sum over the row's distinct k-mers of
    count x basis row, scaled by the counts' norm. ``multiplicity`` is zero between rows."""
    multiplicity = np.zeros(basis.shape[0], np.int32)
    total = np.zeros(basis.shape[1], np.float64)
    for i in range(codes.shape[0]):
        for w in range(codes.shape[1]):
            if valid[i, w]:
                multiplicity[codes[i, w]] += 1
        total[:] = 0.0
        squares = 0.0
        for w in range(codes.shape[1]):
            if valid[i, w]:
                c = codes[i, w]
                m = multiplicity[c]
                if m:
                    multiplicity[c] = 0  # each distinct k-mer once
                    squares += m * m
                    for j in range(basis.shape[1]):
                        total[j] += m * basis[c, j]
        scale = 1.0 / np.sqrt(squares) if squares > 0 else 0.0
        for j in range(basis.shape[1]):
            out[i, j] = total[j] * scale


def principal_axes(x: np.ndarray, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Column means ``(F,)`` and the first ``dim`` principal axes ``(dim, F)`` of the rows of ``x`` (float32
    ``(N, F)``, centred in place), the same numbers as scikit-learn's ``PCA(dim, random_state=seed)`` with
    ``svd_solver="randomized", iterated_power=3`` when ``dim`` is under half of ``min(N, F)`` and
    ``svd_solver="full"`` otherwise: the same operations in the same order (Halko et al.'s range finder with
    LU-normalised power iterations, then an SVD; signs so that each axis's largest entry is positive),
    without importing scikit-learn (~1.4 s, most of a small reference's build).

    Both run on one BLAS thread here (scikit-learn's only under a limit like this one): BLAS sums the products
    in an order that depends on its threads, so with as many as the machine has cores (numpy's default) the
    axes, and the answers, depended on the machine.
    """
    # Imported before the limit: threadpoolctl limits only the BLAS libraries already loaded, and scipy's
    # is its own.
    from scipy import linalg

    with threadpool_limits(1, user_api="blas"):
        mean = np.mean(x, axis=0)
        x -= mean
        if dim < min(x.shape) // 2:
            transposed = x.shape[0] < x.shape[1]  # the range is found on the smaller side
            a = x.T if transposed else x
            basis = np.random.RandomState(seed).normal(size=(a.shape[1], dim + 10)).astype(x.dtype, copy=False)
            for _ in range(3):
                basis = linalg.lu(a @ basis, permute_l=True, check_finite=False)[0]
                basis = linalg.lu(a.T @ basis, permute_l=True, check_finite=False)[0]
            basis = linalg.qr(a @ basis, mode="economic", check_finite=False)[0]
            u, _, vt = linalg.svd(basis.T @ a, full_matrices=False, lapack_driver="gesdd")
            axes = (basis @ u)[:, :dim].T if transposed else vt[:dim]
        else:
            axes = linalg.svd(x, full_matrices=False)[2][:dim]
        signs = np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])
        return mean, axes * signs[:, None]


class KmerIndex:
    """Cosine search over PCA-compressed k-mer profiles of reference barcodes.

    ``KmerIndex(k, dim).build(sequences)`` then ``search(queries, n) -> (similarity (Q, n), index (Q, n))``
    with index -1 (similarity -inf) where fewer than ``n`` references exist.
    """

    def __init__(self, k: int = 6, dim: int = 128, seed: int = 0, threads: int = 1) -> None:
        self.k = k
        self.dim = dim
        self.seed = seed
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.index: faiss.Index | None = None
        #: Recall@10 of the approximate index against exact search (1.0 for an exact index).
        self.recall = 1.0
        #: Python threads that embed and search (see :meth:`search`).
        self.threads = threads

    def profiles(self, sequences: Sequence[str]) -> np.ndarray:
        """Unit-length k-mer count profiles, float32 ``(len(sequences), 4**k)``, blocks of :data:`BATCH`
        spread over :attr:`threads`."""
        kernel = compiled(_unit_profiles)
        out = np.zeros((len(sequences), 4 ** self.k), dtype=np.float32)

        def run(start: int, stop: int) -> None:
            kernel(*kmer_windows(sequences[start:stop], self.k), out[start:stop])

        run_blocks(run, len(sequences), self.threads, BATCH)
        return out

    def embed(self, sequences: Sequence[str]) -> np.ndarray:
        """Unit-length PCA coordinates of the profiles, float32 ``(len(sequences), dim)``: each profile's
        projection is summed from the PCA components of its k-mers (:func:`_project_profiles`), so the
        4**k-column profiles are never built."""
        kernel = compiled(_project_profiles)
        projected = np.zeros((len(sequences), self.components.shape[0]), dtype=np.float32)
        for start in range(0, len(sequences), BATCH):
            kernel(*kmer_windows(sequences[start:start + BATCH], self.k), self._basis, projected[start:start + BATCH])
        return unit_rows(projected - self._mean_projection)

    def embed_all(self, sequences: Sequence[str]) -> np.ndarray:
        """:meth:`embed` of many barcodes, blocks of :data:`BATCH` spread over :attr:`threads`."""
        out = np.zeros((len(sequences), self.components.shape[0]), dtype=np.float32)

        def run(start: int, stop: int) -> None:
            out[start:stop] = self.embed(sequences[start:stop])

        run_blocks(run, len(sequences), self.threads, BATCH)
        return out

    def _set_pca(self, mean: np.ndarray, components: np.ndarray) -> None:
        """The PCA (mean ``(4**k,)``, components ``(d, 4**k)``) and what :meth:`embed` reads of it: the
        components k-mer by k-mer ``(4**k, d)`` and the mean's projection."""
        # Contiguous copies: safetensors writes the raw buffer, whatever the strides say.
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.components = np.ascontiguousarray(components, dtype=np.float32)
        self._basis = np.ascontiguousarray(self.components.T)
        self._mean_projection = self.mean @ self._basis

    def build(self, sequences: Sequence[str]) -> KmerIndex:
        """Fit the PCA on (a sample of) ``sequences`` and index all of them."""
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(len(sequences), min(PCA_SAMPLE, len(sequences)), replace=False))
        profiles = self.profiles([sequences[i] for i in sample])
        dim = max(1, min(self.dim, profiles.shape[0] - 1, profiles.shape[1]))
        # On one BLAS thread (see principal_axes), which also leaves the other cores to the containment
        # index, built meanwhile, instead of BLAS threads spinning for them (~1 CPU s).
        self._set_pca(*principal_axes(profiles, dim, self.seed))
        if len(sequences) <= APPROXIMATE_ABOVE:
            self.index = faiss.IndexFlatIP(self.components.shape[0])
            self.index.add(self.embed_all(sequences))
            return self
        self._build_approximate(sequences, sample, rng)
        return self

    def _build_approximate(self, sequences: Sequence[str], sample: np.ndarray, rng: np.random.Generator) -> None:
        """An IVF index trained on the PCA sample; while adding, the exact top 10 of :data:`RECALL_SAMPLE`
        reference barcodes is kept, to measure the approximate index's recall against it."""
        d = self.components.shape[0]
        n_lists = int(np.sqrt(len(sequences)))
        training = self.embed_all([sequences[i] for i in sample])
        if len(training) < 39 * n_lists:  # FAISS wants ~39 points per cell
            extra = rng.choice(len(sequences), min(len(sequences), 39 * n_lists), replace=False)
            training = self.embed_all([sequences[i] for i in np.sort(extra)])
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, n_lists, faiss.METRIC_INNER_PRODUCT)
        self.index.train(training)
        self.index.nprobe = N_PROBE
        self.index.make_direct_map()  # the candidates' vectors are read back by id to rescore them (saved too)
        probes = self.embed_all([sequences[i] for i in rng.choice(len(sequences), min(RECALL_SAMPLE, len(sequences)),
                                                               replace=False)])
        best = np.full((len(probes), 10), -np.inf, dtype=np.float32)
        best_ids = np.full((len(probes), 10), -1, dtype=np.int64)
        chunk = BATCH * max(1, self.threads)  # embedded by all threads at once
        for first in range(0, len(sequences), chunk):
            embedded = self.embed_all(sequences[first:first + chunk])
            self.index.add(embedded)
            for offset in range(0, len(embedded), BATCH):
                block, start = embedded[offset:offset + BATCH], first + offset
                scores = np.hstack([best, probes @ block.T])
                ids = np.hstack([best_ids, np.broadcast_to(np.arange(start, start + len(block)),
                                                           (len(probes), len(block)))])
                top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
                best, best_ids = np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)
        _, approximate = self.index.search(probes, 10)
        self.recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, best_ids)]))

    def search(self, sequences: Sequence[str], n: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most similar references of each query: cosine ``(Q, n)`` float32, index ``(Q, n)`` int64.

        FAISS finds :data:`RESCORE_ROOM` more than ``n``; their cosines are computed again exactly
        (:func:`_exact_cosines`) and the best ``n`` kept, ties in index order. FAISS's own cosines differ in
        the last bits between a query searched alone and in a block of 20 or more (a plain loop or BLAS),
        which changed confidences, novelty scores and, among near-equal references, the order of hits.

        ``exclude``: reference indices to leave out (used to simulate queries of absent species). With
        ``threads`` > 1, blocks of :data:`SEARCH_BLOCK` queries (the last one smaller) are
        embedded and searched on that many Python threads, each with one OpenMP thread (FAISS releases the GIL): OpenMP threads spin while
        they wait for busy cores, which made a 2-thread search 2-5x slower than one on the shared machine.
        """
        params = None
        if exclude is not None and len(exclude):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.asarray(exclude, np.int64)))
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=N_PROBE) if isinstance(self.index, faiss.IndexIVF)
                      else faiss.SearchParameters(sel=selector))
        similarity = np.full((len(sequences), n), -np.inf, dtype=np.float32)
        index = np.full((len(sequences), n), -1, dtype=np.int64)
        # A process-wide FAISS setting; only lowered, in case the caller chose a lower one.
        faiss.cvar.distance_compute_blas_threshold = min(faiss.cvar.distance_compute_blas_threshold,
                                                         BLAS_FROM_ROWS * self.index.d)

        rescore = compiled(_exact_cosines)

        def run(start: int, stop: int) -> None:
            if self.threads > 1:
                faiss.omp_set_num_threads(1)
            embedded = self.embed(sequences[start:stop])
            found = self.index.search(embedded, n + RESCORE_ROOM, params=params)[1]
            references, rows = self._vectors_of(found)
            exact = np.empty(found.shape, dtype=np.float32)
            rescore(embedded, references, rows, exact)
            best = np.lexsort((found, -exact))[:, :n]  # by cosine, then by index
            similarity[start:stop] = np.take_along_axis(exact, best, 1)
            index[start:stop] = np.take_along_axis(found, best, 1)

        run_blocks(run, len(sequences), self.threads, SEARCH_BLOCK, smallest=SEARCH_BLOCK)
        index[similarity == -np.inf] = -1
        return similarity, index

    def _vectors_of(self, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The indexed vectors ``found`` (``(Q, C)``, -1 for none) points to, and its rows into them: a
        flat index's own storage as it is; an IVF index's found vectors read back by id."""
        if isinstance(self.index, faiss.IndexFlat):
            d = self.index.d
            return faiss.rev_swig_ptr(self.index.get_xb(), self.index.ntotal * d).reshape(-1, d), found
        kept = found >= 0
        ids, rows = np.unique(found[kept], return_inverse=True)
        positions = np.full(found.shape, -1, dtype=np.int64)
        positions[kept] = rows
        return self.index.reconstruct_batch(ids), positions

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write ``kmer_pca.safetensors`` and ``kmer.faiss`` into ``folder``."""
        folder = Path(folder)
        save_file({"mean": self.mean, "components": self.components,
                   "recall": np.array([self.recall], dtype=np.float64)}, str(folder / "kmer_pca.safetensors"))
        faiss.write_index(self.index, str(folder / "kmer.faiss"))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], k: int, seed: int = 0) -> KmerIndex:
        """Read what :meth:`save` wrote."""
        folder = Path(folder)
        arrays = load_file(str(folder / "kmer_pca.safetensors"))
        index = cls(k, arrays["components"].shape[0], seed)
        index._set_pca(arrays["mean"], arrays["components"])
        index.index = faiss.read_index(str(folder / "kmer.faiss"))
        if isinstance(index.index, faiss.IndexIVF):
            index.index.nprobe = N_PROBE
            if index.index.direct_map.type == faiss.DirectMap.NoMap:
                index.index.make_direct_map()
        index.recall = float(arrays["recall"][0]) if "recall" in arrays else 1.0
        return index
