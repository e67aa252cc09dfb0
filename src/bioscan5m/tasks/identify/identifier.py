"""``BarcodeIdentifier``: name new DNA barcodes from a reference with taxonomy, scikit-learn style.

>>> model = BarcodeIdentifier().fit("insect_bold_records.tsv.gz")       # doctest: +SKIP
>>> model.predict("new_barcodes.fasta").head()                           # doctest: +SKIP

``fit`` builds (or loads from its cache) everything a query needs: the k-mer index, the reference's
taxonomy and the calibration. The cache folder is keyed by a hash of the reference's barcodes, ids and
taxonomy plus the parameters, so an edited reference is re-indexed and an unchanged one never is.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from bioscan5m.cachedir import cache_folder, discard, mark_used, release_stamp
from bioscan5m.errors import BioscanError
from bioscan5m.filehash import remembered_digest
from bioscan5m.fileio import atomic_folder, atomic_path
from bioscan5m.tasks.identify.blocks import overlapped, side_tasks, thread_budget
from bioscan5m.tasks.identify.consensus import RANKS, SPECIES, Calibration, Votes, vote
from bioscan5m.tasks.identify.containment import (
    STRAND_MARGIN,
    KmerContainment,
    strand_votes,
)
from bioscan5m.tasks.identify.embedding_index import BARCODEBERT_PREFIX, EmbeddingIndex, model_directory
from bioscan5m.tasks.identify.kmer_index import KmerIndex
from bioscan5m.tasks.identify.queries import (
    MIN_IDENTITY,
    MIN_QUERY_LENGTH,
    NO_HIT,
    OK,
    PARTIAL_LENGTH,
    query_statuses,
    reverse_complement,
)
from bioscan5m.tasks.identify.reference import ReferenceSet, read_queries, read_reference
from bioscan5m.tasks.identify.sequence_alignment import PackedBarcodes, candidate_alignments

#: ``kmer``: k-mer search only; ``kmer+align``: k-mer search, then exact alignment of the candidates;
#: ``blast`` / ``vsearch``: the external programs find the hits, the same consensus names them.
#: ``barcodebert:DIR`` (not listed: DIR is the user's) searches the embeddings of a trained model.
METHODS: tuple[str, ...] = ("kmer+align", "kmer", "blast", "vsearch")
DEFAULT_METHOD = "kmer+align"
PEER_METHODS = ("blast", "vsearch")
#: Columns of the prediction table, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "query_id",
    "status",
    "strand",
    *[name for rank in RANKS for name in (rank, f"{rank}_confidence")],
    "lineage",
    "nearest_id",
    "nearest_bin",
    "identity",
    "aligned_length",
    "query_coverage",
    "novel_species",
    "novelty_score",
)
#: Columns of the top-hits table (``--hits N``), like BLAST's tabular output plus the hit's taxonomy.
HIT_COLUMNS: tuple[str, ...] = ("query_id", "hit", "reference_id", "bin_uri", "identity", "aligned_length", "strand",
                                *RANKS)
#: Default confidence a rank needs to enter the ``lineage`` column.
DEFAULT_MIN_CONFIDENCE = 0.7
#: Bump when what is stored in the cache changes meaning.
CACHE_VERSION = 12
#: The libraries whose releases can change an index (the PCA, FAISS's clustering, the containment kernel, the
#: calibration's fits): indexes are cached per their versions, FAISS's read from the module (faiss-cpu, -gpu).
INDEX_LIBRARIES: tuple[str, ...] = ("numpy", "scipy", "scikit-learn", "numba")
#: Hex digits of an index's key (its folder name in the identify cache).
KEY_LENGTH = 24
#: Extra hits fetched while calibrating, so that hiding a species' barcodes still leaves enough hits.
EXCLUSION_ROOM = 64
#: Share of the simulated calibration queries cut to fragments, and their length range in nt. A quarter
#: (~700 fragments for the staged BOLD reference) fits the partial models about as well as half did (held-out
#: fragments' novelty AUROC within 0.002) at half the cost: each fragment costs a containment search.
FRAGMENT_SHARE = 0.25
FRAGMENT_LENGTHS = (MIN_QUERY_LENGTH, PARTIAL_LENGTH - 1)


@dataclass
class _SimulatedQueries:
    """The queries a fit simulates from its reference: the records (Q,) they come from, the haplotypes hidden
    from each, whether each plays a new species (Q,), the query barcodes and which are partial (Q,)."""

    records: np.ndarray
    excluded: list[np.ndarray]
    novel: np.ndarray
    sequences: list[str]
    partial: np.ndarray


@dataclass
class _CalibrationHits:
    """Some simulated queries (``rows`` into them) searched and aligned: the search's scores and candidates,
    and the identity and aligned length of each candidate, all ``(len(rows), n_candidates)``."""

    rows: np.ndarray
    score: np.ndarray
    found: np.ndarray
    identity: np.ndarray
    aligned: np.ndarray


@dataclass
class _Hits:
    """What the search found for Q distinct query barcodes (C hits each, columns in search order).

    ``sequences``: the queries in the orientation searched; ``strand`` (Q,) "+"/"-"; ``status`` (Q,) before
    the search (:mod:`queries`); ``similarity`` (Q, C) identity scale (-inf: none); ``candidates`` (Q, C)
    reference indices (-1: none); ``aligned`` (Q, C) aligned length in nt; ``coverage`` (Q, C) share of the
    query aligned; ``kmer_similarity`` (Q,) of the closest reference on the identity scale.
    """

    sequences: list[str]
    strand: np.ndarray
    status: np.ndarray
    similarity: np.ndarray
    candidates: np.ndarray
    aligned: np.ndarray
    coverage: np.ndarray
    kmer_similarity: np.ndarray


def default_index_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where fitted reference indexes are cached: the ``identify`` folder of the cache root (``cache_dir``,
    ``$BIOSCAN5M_CACHE_DIR`` or the user cache folder)."""
    return cache_folder("identify", cache_dir)


class BarcodeIdentifier:
    """Identify DNA barcodes against a reference: one name and confidence per rank, plus novelty.

    Parameters (set here, used by :meth:`fit`):
      method: one of :data:`METHODS` (default ``kmer+align``, the best measured).
      k: k-mer length of the profiles (6). dim: PCA dimensions searched (128).
      n_candidates: hits kept per query for the vote (10). tau: vote temperature on the identity scale
        (0.02: a hit 2% less similar counts e^-1 as much).
      n_simulated: simulated queries of each kind (seen / new species) used for calibration (2000).
      batch_size: queries processed at once (1024). threads: CPU threads (None: all).
      cache_dir: the cache root; indexes go to its ``identify`` folder (see :func:`default_index_dir`);
        use_cache: False rebuilds and keeps nothing.
      seed: randomness of the PCA sample and the simulation. progress: tqdm bars (None: on a terminal).
      min_confidence: confidence a rank needs to enter the ``lineage`` column (0.7).

    Fitted attributes: ``reference_`` (:class:`ReferenceSet`), ``index_`` (:class:`KmerIndex`),
    ``calibration_`` (method family → :class:`Calibration`), ``cache_path_``, ``from_cache_``.
    """

    def __init__(self, method: str = DEFAULT_METHOD, *, k: int = 6, dim: int = 128, n_candidates: int = 10,
                 tau: float = 0.02, n_simulated: int = 2000, batch_size: int = 1024, threads: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True, seed: int = 0,
                 progress: bool | None = None, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
        self.method = method
        self.k = k
        self.dim = dim
        self.n_candidates = n_candidates
        self.tau = tau
        self.n_simulated = n_simulated
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.seed = seed
        self.progress = progress
        self.min_confidence = min_confidence

    # --- fitting ------------------------------------------------------------------------------------

    def fit(self, reference: object) -> BarcodeIdentifier:
        """Index ``reference`` (a path ``load_records`` reads, ``Records`` or DataFrame with taxonomy)."""
        self._check_params()
        self._set_threads()
        self.from_cache_ = False
        self._workdir = None
        # A model's embeddings are not cached here (the key does not know the model): built each fit.
        if not (self.use_cache and model_directory(self.method) is None):
            self.cache_path_ = None
            self.reference_ = self._read_reference(reference)
            self._build(self.reference_)
            return self
        folder = default_index_dir(self.cache_dir)
        # A reference file unchanged since it was last indexed (same file, size and times: filehash's
        # identity) need not be read again to find its index.
        read: list[ReferenceSet] = []  # the reference, when finding its key had to read it
        key = self._remembered_key(reference, read)
        if key is not None and self._load_cached(folder / key):
            return self
        ref = read[0] if read else self._read_reference(reference)
        self.reference_ = ref
        self.cache_path_ = folder / self._cache_key(ref)
        if not self._load_cached(self.cache_path_):
            self.reference_ = ref
            self._build(ref)
            self._save(self.cache_path_)
        return self

    def _remembered_key(self, reference: object, read: list[ReferenceSet]) -> str | None:
        """The index key of a reference given as one file, remembered by :mod:`bioscan5m.filehash` under the
        file's identity and times (None for anything else: a dataset folder's files can change without the
        folder's own times changing). A reference read to find it is appended to ``read``."""
        if not _is_file(reference):
            return None

        def index_digest(path: Path, size: int) -> str:
            read.append(self._read_reference(path))
            return self._index_digest(read[-1])

        return remembered_digest(reference, f"identify-index|{self._params_key()}", index_digest,
                                 self.cache_dir)[:KEY_LENGTH]

    def _read_reference(self, reference: object) -> ReferenceSet:
        """``read_reference``, with a records cache for a dataset folder only: its index key is found by
        reading its records, every run. A file's index is found by the file's identity, so the file is not
        read again; for 72k BOLD records, writing and reading back a records cache made the read 3x slower
        (1.4 s against 0.5 s), while reading that cache later, for another index, was hardly faster than
        parsing the file (0.4 s)."""
        return read_reference(reference, cache_dir=self.cache_dir,
                              use_cache=self.use_cache and not _is_file(reference))

    def _load_cached(self, folder: Path) -> bool:
        """Load the fitted state saved in ``folder``; False if there is none (a damaged one is removed)."""
        if not (folder / "config.json").is_file():
            return False
        try:
            self._load(folder)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError):
            discard(folder)  # damaged: index the reference again
            return False
        self.cache_path_, self.from_cache_ = folder, True
        mark_used(folder)
        return True

    def _check_params(self) -> None:
        if self.method not in METHODS and model_directory(self.method) is None:
            raise BioscanError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)} or "
                               f"{BARCODEBERT_PREFIX}DIR", value=self.method)
        for name in ("k", "dim", "n_candidates", "n_simulated", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise BioscanError(f"{name} must be at least 1, not {getattr(self, name)}", value=getattr(self, name))
        if not self.tau > 0:
            raise BioscanError(f"tau must be positive, not {self.tau}", value=self.tau)

    def _set_threads(self) -> None:
        import faiss

        self.threads_ = int(self.threads or os.cpu_count() or 1)
        faiss.omp_set_num_threads(self.threads_)
        if hasattr(self, "index_") and model_directory(self.method) is None:
            self.index_.threads = self.threads_

    def _params_key(self) -> str:
        import faiss

        return (f"v{CACHE_VERSION}|k{self.k}|d{self.dim}|c{self.n_candidates}|t{self.tau}|s{self.n_simulated}|"
                f"{self.seed}|{release_stamp(INDEX_LIBRARIES)} faiss={faiss.__version__}")

    def _index_digest(self, ref: ReferenceSet) -> str:
        return hashlib.sha256(f"{ref.fingerprint()}|{self._params_key()}".encode()).hexdigest()

    def _cache_key(self, ref: ReferenceSet) -> str:
        return self._index_digest(ref)[:KEY_LENGTH]

    def _build(self, ref: ReferenceSet) -> None:
        model_dir = model_directory(self.method)
        # Two steps of seconds (minutes for a million barcodes): say which one runs.
        bar = tqdm(total=2, desc=f"indexing {len(ref):,} reference barcodes", unit="step", disable=self._no_bar())
        simulated = self._simulated_queries(ref)
        # The containment index is built on another thread meanwhile (its kernel releases the GIL), and
        # scikit-learn, which the calibration needs, is imported (~1.4 s of Python) while kernels run. The
        # partial simulated queries need only the containment index: they are searched and aligned as soon
        # as it is built, while the k-mer index's PCA runs on one core. Their blocks and the k-mer index's
        # share one thread budget. With one thread, each of these runs in turn instead.
        with bar, thread_budget(self.threads_), side_tasks(self.threads_) as pool:
            bar.set_postfix_str("k-mer and containment indexes")
            building = pool.submit(KmerContainment(threads=self.threads_).build, ref.sequences)
            pool.submit(_import_scikit_learn)

            def partial_hits() -> _CalibrationHits:
                return self._calibration_hits(simulated, simulated.partial, building.result().search)

            partial = pool.submit(contextvars.copy_context().run, partial_hits)
            if model_dir is not None:
                self.index_ = EmbeddingIndex(model_dir).build(ref.sequences)
            else:
                self.index_ = KmerIndex(self.k, self.dim, self.seed, self.threads_).build(ref.sequences)
            self._containment_index = building.result()
            self.kmer_sampling_ = self._containment().sampling
            self._set_threads()
            bar.update()
            bar.set_postfix_str("calibrating on queries simulated from the reference")
            full = self._calibration_hits(simulated, ~simulated.partial, self.index_.search)
            self.calibration_, self.cosine_to_identity_ = self._calibrate(ref, simulated, full, partial.result())
            bar.update()

    def _calibration_hits(self, simulated: _SimulatedQueries, rows: np.ndarray, search) -> _CalibrationHits:
        """The simulated queries ``rows`` (a mask) searched by ``search`` with their hidden references left out,
        and aligned to their candidates."""
        rows = np.flatnonzero(rows)
        queries = [simulated.sequences[i] for i in rows]
        score, found = self._search_hiding(search, queries, [simulated.excluded[i] for i in rows])
        identity, aligned, _ = candidate_alignments(queries, self.reference_.packed, found, self.threads_)
        return _CalibrationHits(rows, score, found, identity, aligned)

    def _calibrate(self, ref: ReferenceSet, simulated: _SimulatedQueries, full_hits: _CalibrationHits,
                   partial_hits: _CalibrationHits) -> tuple[dict[str, Calibration], np.ndarray]:
        """Fit the calibration on queries simulated from the reference (see ``consensus``): the full-length
        ones found by the k-mer index (``full_hits``), the partial ones by the containment index."""
        from sklearn.isotonic import IsotonicRegression

        records, novel, sequences, partial = simulated.records, simulated.novel, simulated.sequences, simulated.partial
        full = ~partial
        cosine = np.full((len(records), self.n_candidates), -np.inf, dtype=np.float32)
        candidates = np.full((len(records), self.n_candidates), -1, dtype=np.int64)
        identity = np.full((len(records), self.n_candidates), -np.inf, dtype=np.float32)
        aligned = np.zeros((len(records), self.n_candidates), dtype=np.int32)
        for hits in (full_hits, partial_hits):
            candidates[hits.rows], identity[hits.rows], aligned[hits.rows] = hits.found, hits.identity, hits.aligned
        cosine[full_hits.rows] = full_hits.score

        # The k-mer method reports identities: a monotone curve from cosine to alignment identity (fitted
        # on the full-length queries: a fragment's profile is a part of its barcode's), stored as 201
        # (cosine, identity) points at the cosine quantiles.
        found = (candidates >= 0) & full[:, None]
        mapping = np.array([[0.0, 1.0], [0.0, 1.0]])
        if found.any():
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(cosine[found], identity[found])
            grid = np.quantile(cosine[found], np.linspace(0, 1, 201))
            mapping = np.stack([grid, iso.predict(grid)]).astype(np.float64)

        truth = ref.record_labels[records].astype(np.int64)
        mapped = _interp(cosine, mapping)
        votes = vote(identity, candidates, ref.labels, self.tau, mapped[:, 0], aligned, partial)
        calibration = {"align": Calibration().fit(votes, truth, novel)}
        # Methods without an alignment search by profile cosine only, and are meant for full-length barcodes.
        kmer_aligned = self._kmer_overlap([sequences[i] for i in np.flatnonzero(full)], candidates[full])[0]
        votes = vote(mapped[full], candidates[full], ref.labels, self.tau, mapped[full, 0], kmer_aligned)
        calibration["kmer"] = Calibration().fit(votes, truth[full], novel[full])
        return calibration, mapping

    def _search_hiding(self, search, sequences: list[str], excluded: list[np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray]:
        """``search`` (the k-mer index's or the containment's) for simulated queries, each with its hidden
        references left out: scores and candidates ``(Q, n_candidates)``.

        One batched search with room for the hidden barcodes; only queries of species with more hidden
        barcodes than that room are searched one by one, skipping the hidden ones.
        """
        n = len(self.reference_)
        score = np.full((len(sequences), self.n_candidates), -np.inf, dtype=np.float32)
        candidates = np.full((len(sequences), self.n_candidates), -1, dtype=np.int64)
        if not sequences:
            return score, candidates
        room = self.n_candidates + EXCLUSION_ROOM
        wide_score, wide = search(sequences, min(room, n))
        alone = []
        for row, hidden in enumerate(excluded):
            keep = ~np.isin(wide[row], hidden) & (wide[row] >= 0)
            if len(hidden) and keep.sum() < self.n_candidates and n > room:
                alone.append(row)
                continue
            kept = np.flatnonzero(keep)[:self.n_candidates]
            score[row, :len(kept)], candidates[row, :len(kept)] = wide_score[row, kept], wide[row, kept]
        for row in tqdm(alone, desc="calibrating", unit="query", leave=False, disable=self._no_bar()):
            found_score, found = search([sequences[row]], self.n_candidates, excluded[row])
            width = found.shape[1]
            score[row, :width], candidates[row, :width] = found_score[0], found[0]
        return score, candidates

    def _containment(self) -> KmerContainment:
        """The k-mer containment index of the reference (built by ``fit``, memory-mapped from the cache)."""
        if getattr(self, "_containment_index", None) is None:
            self._containment_index = KmerContainment(threads=self.threads_).build(self.reference_.sequences)
        self._containment_index.threads = self.threads_
        return self._containment_index

    def _simulated_queries(self, ref: ReferenceSet) -> _SimulatedQueries:
        """Reference records to use as queries, the haplotypes hidden from each, and whether its species is.

        Seen: a random record, hiding only its own barcode if no other record shares it. New species: one
        record of a random species, hiding every barcode of that species. Each query is its record's barcode
        or a fragment of it (see ``_fragments``).
        """
        rng = np.random.default_rng(self.seed)
        labelled = np.flatnonzero((ref.record_labels >= 0).any(1))
        seen = np.sort(rng.choice(labelled, min(self.n_simulated, len(labelled)), replace=False))
        hide_seen = [np.array([h]) if ref.n_records[h] == 1 else np.zeros(0, np.int64)
                     for h in ref.record_haplotype[seen]]

        record_species = ref.record_labels[:, SPECIES]
        haplotype_species = ref.labels[:, SPECIES]
        candidates = np.unique(haplotype_species[haplotype_species >= 0])
        if len(candidates) == 1 and (haplotype_species == candidates[0]).all():
            candidates = candidates[:0]  # hiding the only species would leave nothing to search
        chosen = rng.choice(candidates, min(self.n_simulated, len(candidates)), replace=False)
        by_species = pd.Series(np.arange(len(record_species))).groupby(record_species).agg(list)
        haplotypes_of = pd.Series(np.arange(len(haplotype_species))).groupby(haplotype_species).agg(list)
        new = np.array([rng.choice(by_species[s]) for s in chosen], dtype=np.int64)
        hide_new = [np.asarray(haplotypes_of[s], dtype=np.int64) for s in chosen]

        records = np.concatenate([seen, new]).astype(np.int64)
        novel = np.concatenate([np.zeros(len(seen), bool), np.ones(len(new), bool)])
        sequences = _fragments([ref.sequences[h] for h in ref.record_haplotype[records]], self.seed)
        partial = np.array([len(q) < PARTIAL_LENGTH for q in sequences], dtype=bool)
        return _SimulatedQueries(records, hide_seen + hide_new, novel, sequences, partial)

    # --- predicting ---------------------------------------------------------------------------------

    def predict(self, queries: object) -> pd.DataFrame:
        """One row per query with the columns of :data:`OUTPUT_COLUMNS`.

        ``queries``: a FASTA/FASTQ or table path, ``Records``, DataFrame, ``{id: barcode}`` or list of barcodes.
        """
        return self.predict_with_hits(queries, 0)[0]

    def predict_with_hits(self, queries: object, n_hits: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The predictions (as :meth:`predict`) and the ``n_hits`` best reference hits of each query, best
        first (columns :data:`HIT_COLUMNS`, identity in percent), from one search."""
        if not hasattr(self, "index_"):
            raise BioscanError("this BarcodeIdentifier is not fitted yet: call fit(reference) first")
        return self._predict(*read_queries(queries), n_hits)

    def _predict(self, ids: np.ndarray, sequences: list[str], n_hits: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:meth:`predict_with_hits` of queries already read and cleaned (``read_queries``). The same barcode
        often comes many times (one haplotype, many specimens): each distinct one is searched, voted on and
        made into rows once, and its rows are repeated for every query that holds it."""
        hits, inverse = self._search(sequences, max(self.n_candidates, int(n_hits)))
        c = self.n_candidates
        partial = np.array([len(s) < PARTIAL_LENGTH for s in hits.sequences]) & (self.method not in ("kmer",)) & (
            model_directory(self.method) is None)
        votes = vote(hits.similarity[:, :c], hits.candidates[:, :c], self.reference_.labels, self.tau,
                     hits.kmer_similarity, hits.aligned[:, :c], partial)
        # Methods without an alignment report (and are calibrated on) the search's similarity.
        calibration = self.calibration_["align" if self.method == "kmer+align" or self.method in PEER_METHODS
                                        else "kmer"]
        table = self._table(hits, votes, calibration).iloc[inverse].reset_index(drop=True)
        table["query_id"] = ids
        return table, _for_each_query(self._hits_table(hits, int(n_hits)), inverse, ids)

    def _search(self, sequences: list[str], width: int) -> tuple[_Hits, np.ndarray]:
        """Every distinct query barcode's hits (answerable ones through the k-mer search, then alignment or
        the peer program, on the strand the strand vote picks, or on both where the vote is close), and the
        row of each of ``sequences`` among them."""
        self._set_threads()
        distinct, inverse = np.unique(np.array(sequences, dtype=object), return_inverse=True)
        distinct = [str(s) for s in distinct]
        n = len(distinct)
        status = query_statuses(distinct)
        oriented = list(distinct)
        strand = np.full(n, "+", dtype=object)
        similarity = np.full((n, width), -np.inf, dtype=np.float32)
        candidates = np.full((n, width), -1, dtype=np.int64)
        aligned = np.zeros((n, width), dtype=np.int32)
        coverage = np.zeros((n, width), dtype=np.float32)
        kmer_similarity = np.zeros(n, dtype=np.float32)
        width = min(width, len(self.reference_))
        answerable = np.flatnonzero(status == OK)  # too short or low-complexity: nothing to search
        # Packed here, once, not by the first two batches at the same time.
        packed = self.reference_.packed if self.method == "kmer+align" else None

        def run_batch(rows: np.ndarray) -> np.ndarray:
            batch, minus, cosine, found = self._search_batch([distinct[i] for i in rows], width, packed)
            strand[rows[minus]] = "-"
            for i, seq in zip(rows, batch):
                oriented[i] = seq
            mapped = _interp(cosine, self.cosine_to_identity_)
            kmer_similarity[rows] = mapped[:, 0]
            candidates[rows, :width] = found
            if packed is not None:
                found_identity, found_aligned, found_coverage = candidate_alignments(
                    batch, packed, found, self.threads_)
            else:
                found_identity = mapped
                found_aligned, found_coverage = self._kmer_overlap(batch, found)
            similarity[rows, :width], aligned[rows, :width], coverage[rows, :width] = (
                found_identity, found_aligned, found_coverage)
            return rows

        batches = [answerable[start:start + self.batch_size] for start in range(0, len(answerable), self.batch_size)]
        bar = tqdm(total=len(sequences), desc=f"identifying ({self.method})", unit="query", disable=self._no_bar())
        # With several threads, two batches overlap (each writes only its own rows): one's Python work
        # (strand vote, bookkeeping) runs while the other's blocks keep the threads busy.
        with bar, thread_budget(self.threads_):
            for rows in overlapped(run_batch, batches, depth=2 if self.threads_ > 1 else 1):
                bar.update(int(np.isin(inverse, rows).sum()))
            bar.update(len(sequences) - bar.n)
        hits = _Hits(oriented, strand, status, similarity, candidates, aligned, coverage, kmer_similarity)
        if self.method in PEER_METHODS:
            self._peer_hits(hits, distinct)
        return hits, inverse

    def _search_batch(self, forward: list[str], width: int, packed: PackedBarcodes | None
                      ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Candidates of a batch of queries: the queries as searched, whether each was reverse-complemented
        (Q,), the k-mer index's cosines (Q, width; -inf where not searched) and the candidates (Q, width).
        ``packed``: the reference packed for alignment (``kmer+align``), else None.

        The strand vote decides most queries' strand before any search; the rest are searched both ways
        and keep the strand whose first candidate aligns better (``kmer+align``; else is more similar,
        for partial queries holds more of the query's 8-mers). Partial queries take their candidates from
        the containment search (``kmer+align``), full-length ones from the k-mer index.
        """
        q = len(forward)
        reverse = [reverse_complement(s) for s in forward]
        containment = self._containment()  # its 8-mer counts (and which 8-mers it keeps) tell the strand
        margin = strand_votes(forward, reverse, containment.frequency, containment.keep)
        both = np.flatnonzero(np.abs(margin) < STRAND_MARGIN)
        minus = margin <= -STRAND_MARGIN
        # Rows 0..q-1: each query on its voted strand (+ if undecided); rows q..: the undecided, other way.
        searched = [r if m else f for f, r, m in zip(forward, reverse, minus)] + [reverse[i] for i in both]
        contained = self.method == "kmer+align" and model_directory(self.method) is None
        partial = np.array([len(s) < PARTIAL_LENGTH for s in searched]) & contained
        cosine = np.full((len(searched), width), -np.inf, dtype=np.float32)
        found = np.full((len(searched), width), -1, dtype=np.int64)
        share = np.full(len(searched), -np.inf, dtype=np.float32)
        for rows, search in ((np.flatnonzero(~partial), self.index_.search),
                             (np.flatnonzero(partial), self._containment().search)):
            if len(rows):
                score, hits = search([searched[i] for i in rows], width)
                found[rows] = hits
                if search == self.index_.search:
                    cosine[rows] = score
                else:
                    share[rows] = score[:, 0]
        if len(both):
            first_score = np.where(partial, share, cosine[:, 0])
            if packed is not None:
                # Short queries can meet an odd reference by k-mers on the wrong strand: let the alignment
                # to each strand's first candidate decide.
                first = candidate_alignments(searched, packed, np.maximum(found[:, :1], 0), self.threads_)[0][:, 0]
                other_wins = (first[q:] > first[both]) | ((first[q:] == first[both]) & (first_score[q:] > first_score[both]))
            else:
                other_wins = first_score[q:] > first_score[both]
            flip = both[other_wins]
            cosine[flip], found[flip] = cosine[q:][other_wins], found[q:][other_wins]
            minus[flip] = True
            for i in flip:
                searched[i] = reverse[i]
        return searched[:q], minus, cosine[:q], found[:q]

    def _kmer_overlap(self, queries: list[str], candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Without an alignment: aligned length = the shorter of query and reference, coverage = the share
        of the query that length is."""
        lengths = np.array([len(s) for s in self.reference_.sequences] + [0], dtype=np.int64)[candidates]
        query_lengths = np.array([max(len(q), 1) for q in queries], dtype=np.int64)[:, None]
        overlap = np.minimum(lengths, query_lengths)
        return overlap.astype(np.int32), (overlap / query_lengths).astype(np.float32)

    def _table(self, hits: _Hits, votes: Votes, calibration: Calibration) -> pd.DataFrame:
        """One row per distinct query barcode (:data:`OUTPUT_COLUMNS`, ``query_id`` its row number)."""
        ref = self.reference_
        status = hits.status.copy()
        status[(status == OK) & ((votes.nearest < 0) | (votes.best < MIN_IDENTITY))] = NO_HIT
        answered = status == OK
        labels = np.where(answered[:, None], votes.labels, -1)
        confidence = np.where(answered[:, None], calibration.confidence(votes), 0.0)
        # A query without an answer has no related reference: as far as the reference can tell, its
        # species is absent (novelty 1), though it is not called a new species (its status says why).
        novelty = np.where(answered, calibration.novelty_score(votes), 1.0)
        best = np.argmax(np.where(hits.candidates >= 0, hits.similarity, -np.inf)[:, :self.n_candidates], axis=1)
        located = (hits.status == OK) & (votes.nearest >= 0)  # no_hit still shows what came closest

        columns: dict[str, object] = {"query_id": np.arange(len(status)), "status": status,
                                      "strand": np.where(hits.status == OK, hits.strand, "")}
        names = {}
        for column, rank in enumerate(RANKS):
            names[rank] = np.array(ref.names[rank] + ("",), dtype=object)[labels[:, column]]  # -1: ""
            columns[rank] = names[rank]
            columns[f"{rank}_confidence"] = confidence[:, column]
        columns["lineage"] = _lineage(names, confidence, self.min_confidence)
        nearest = np.maximum(votes.nearest, 0)
        columns["nearest_id"] = np.where(located, ref.record_ids[nearest], "")
        columns["nearest_bin"] = np.where(located, _bins(ref)[nearest], "")
        columns["identity"] = np.where(located, np.round(100 * np.clip(votes.best, 0.0, 1.0), 2), np.nan)
        rows = np.arange(len(best))
        columns["aligned_length"] = np.where(located, hits.aligned[rows, best], 0)
        columns["query_coverage"] = np.where(located, hits.coverage[rows, best], 0.0)
        columns["novel_species"] = answered & (novelty >= 0.5)
        columns["novelty_score"] = novelty
        return pd.DataFrame(columns)[list(OUTPUT_COLUMNS)]

    def _hits_table(self, hits: _Hits, n_hits: int) -> pd.DataFrame:
        """The ``n_hits`` best hits per answerable distinct query barcode (``query_id`` its row number), best
        identity first (ties: search order)."""
        ref = self.reference_
        if n_hits < 1:
            return pd.DataFrame(columns=list(HIT_COLUMNS))
        score = np.where((hits.candidates >= 0) & (hits.status == OK)[:, None], hits.similarity, -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")[:, :n_hits]
        rows = np.repeat(np.arange(len(hits.status)), order.shape[1])
        columns = order.ravel()
        keep = np.isfinite(score[rows, columns])
        rows, columns = rows[keep], columns[keep]
        reference = hits.candidates[rows, columns]
        table = {"query_id": rows, "hit": columns * 0, "reference_id": ref.record_ids[reference],
                 "bin_uri": _bins(ref)[reference],
                 "identity": np.round(100 * np.clip(hits.similarity[rows, columns], 0, 1), 2),
                 "aligned_length": hits.aligned[rows, columns], "strand": hits.strand[rows]}
        table["hit"] = pd.Series(rows).groupby(rows).cumcount().to_numpy() + 1
        for column, rank in enumerate(RANKS):
            table[rank] = np.array(ref.names[rank] + ("",), dtype=object)[ref.labels[reference, column]]
        return pd.DataFrame(table)[list(HIT_COLUMNS)]

    def _peer_hits(self, hits: _Hits, sequences: list[str]) -> None:
        """Replace the k-mer hits by BLAST's or VSEARCH's (both strands), keeping the k-mer similarity."""
        from bioscan5m.peers.blast import blast_search
        from bioscan5m.peers.programs import write_fasta
        from bioscan5m.peers.vsearch import vsearch_search

        database = self._peer_database()
        width = hits.candidates.shape[1]
        with tempfile.TemporaryDirectory(prefix="bioscan5m-identify-") as tmp:
            query_fasta = write_fasta(Path(tmp) / "queries.fasta", [f"q{i}" for i in range(len(sequences))],
                                      sequences)
            search = blast_search if self.method == "blast" else vsearch_search
            found = search(database, query_fasta, threads=self.threads_, max_hits=width)
        hits.similarity[:] = -np.inf
        hits.candidates[:] = -1
        hits.aligned[:] = 0
        hits.coverage[:] = 0
        if len(found):
            row = found["query_id"].str[1:].astype(np.int64).to_numpy()
            column = found.groupby("query_id", sort=False).cumcount().to_numpy()
            hits.candidates[row, column] = found["subject_id"].str[1:].astype(np.int64).to_numpy()
            hits.similarity[row, column] = found["identity"].to_numpy()
            hits.aligned[row, column] = found["alignment_length"].to_numpy()
            lengths = np.array([max(len(s), 1) for s in sequences])[row]
            hits.coverage[row, column] = np.minimum(1.0, found["alignment_length"].to_numpy() / lengths)
            first = column == 0
            hits.strand[row[first]] = found["strand"].to_numpy()[first]

    def _peer_database(self) -> Path:
        """The reference as the peer program wants it (FASTA, or a BLAST database), built once per cache."""
        from bioscan5m.peers.blast import make_blast_db
        from bioscan5m.peers.programs import find_program, write_fasta

        find_program("blastn" if self.method == "blast" else "vsearch")
        if self.cache_path_ is None:
            if self._workdir is None:
                self._workdir = tempfile.TemporaryDirectory(prefix="bioscan5m-identify-")
            folder = Path(self._workdir.name)
        else:
            folder = self.cache_path_
        fasta = folder / "reference.fasta"
        if not fasta.is_file():
            with atomic_path(fasta) as tmp:
                write_fasta(tmp, [f"h{i}" for i in range(len(self.reference_))], self.reference_.sequences)
        if self.method == "vsearch":
            return fasta
        database = folder / "blastdb"
        if not database.is_dir():
            with atomic_folder(database, replace=False) as building:
                make_blast_db(fasta, building / "reference")
        return database / "reference"

    def _no_bar(self) -> bool | None:
        return None if self.progress is None else not self.progress

    # --- the cache ----------------------------------------------------------------------------------

    def _save(self, folder: Path) -> None:
        """Write the fitted state into ``folder`` atomically (built beside it, then renamed into place)."""
        with atomic_folder(folder, replace=False) as building:  # another process may save the same index first
            ref = self.reference_
            sequences, sequence_ends = _pack(ref.sequences)
            record_ids, record_id_ends = _pack(ref.record_ids)
            bins, bin_ends = _pack(_bins(ref))
            save_file({"labels": ref.labels, "n_records": ref.n_records, "sequences": sequences,
                       "sequence_ends": sequence_ends, "record_ids": record_ids, "record_id_ends": record_id_ends,
                       "bins": bins, "bin_ends": bin_ends,
                       "cosine_to_identity": self.cosine_to_identity_,
                       "kmer_sampling": np.array([self.kmer_sampling_], dtype=np.int64)},
                      str(building / "reference.safetensors"))
            self.index_.save(building)
            self._containment().save(building)
            config = {
                "version": CACHE_VERSION, "k": self.k, "dim": self.dim, "n_candidates": self.n_candidates,
                "tau": self.tau, "n_simulated": self.n_simulated, "seed": self.seed, "source": ref.source,
                "ranks": list(RANKS), "names": {rank: list(ref.names[rank]) for rank in RANKS},
                "calibration": {family: c.to_dict() for family, c in self.calibration_.items()},
            }
            (building / "config.json").write_text(json.dumps(config), encoding="utf-8")

    def _load(self, folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        arrays = load_file(str(folder / "reference.safetensors"))
        names = {rank: tuple(config["names"][rank]) for rank in RANKS}
        self.reference_ = ReferenceSet(
            sequences=_unpack(arrays["sequences"], arrays["sequence_ends"]),
            record_ids=np.array(_unpack(arrays["record_ids"], arrays["record_id_ends"]), dtype=object),
            n_records=arrays["n_records"], labels=arrays["labels"], names=names,
            record_haplotype=np.zeros(0, np.int64), record_labels=np.zeros((0, len(RANKS)), np.int32),
            source=config["source"], bins=np.array(_unpack(arrays["bins"], arrays["bin_ends"]), dtype=object),
        )
        self.index_ = KmerIndex.load(folder, config["k"], config["seed"])
        self.cosine_to_identity_ = arrays["cosine_to_identity"]
        self.kmer_sampling_ = int(arrays["kmer_sampling"][0])
        self._containment_index = KmerContainment.load(folder, self.kmer_sampling_, len(self.reference_))
        self.calibration_ = {family: Calibration.from_dict(c) for family, c in config["calibration"].items()}


def _import_scikit_learn() -> None:
    """Import what the calibration uses of scikit-learn."""
    import sklearn.isotonic
    import sklearn.linear_model  # noqa: F401


def _is_file(reference: object) -> bool:
    """Whether ``reference`` is the path of one file (not a dataset folder, table or records)."""
    return isinstance(reference, str | os.PathLike) and Path(reference).is_file()


def _fragments(sequences: list[str], seed: int) -> list[str]:
    """``sequences`` with a :data:`FRAGMENT_SHARE` of them cut to a random length in
    :data:`FRAGMENT_LENGTHS`: a third at the 5' end (mini-barcodes), a third at the 3' end (Leray-type
    amplicons), a third anywhere."""
    rng = np.random.default_rng(seed + 1)
    out = list(sequences)
    for i in np.flatnonzero(rng.random(len(out)) < FRAGMENT_SHARE):
        length = int(rng.integers(FRAGMENT_LENGTHS[0], FRAGMENT_LENGTHS[1] + 1))
        if length >= len(out[i]):
            continue
        where = rng.integers(3)
        start = 0 if where == 0 else len(out[i]) - length if where == 1 else int(rng.integers(len(out[i]) - length + 1))
        out[i] = out[i][start:start + length]
    return out


def _lineage(names: dict[str, np.ndarray], confidence: np.ndarray, min_confidence: float) -> np.ndarray:
    """``Insecta;Diptera;Chironomidae;Chironomus``: the named ranks from the top, down to the last one
    reached without passing a rank under ``min_confidence`` (unnamed ranks such as a missing subfamily
    are skipped)."""
    out = np.full(len(confidence), "", dtype=object)
    for row in range(len(out)):
        parts = []
        for column, rank in enumerate(RANKS):
            name = names[rank][row]
            if not name:
                continue
            if confidence[row, column] < min_confidence:
                break
            parts.append(name)
        out[row] = ";".join(parts)
    return out


def _for_each_query(hits: pd.DataFrame, inverse: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    """The hit table of distinct barcodes (``query_id``: their row numbers, in order) as one block of rows
    per query, in query order: query i gets the block of distinct row ``inverse[i]``, under its own id."""
    distinct_row = hits["query_id"].to_numpy(dtype=np.int64)
    counts = np.bincount(distinct_row, minlength=int(inverse.max(initial=-1)) + 1)
    first = np.cumsum(counts) - counts
    repeats = counts[inverse]
    position = np.arange(repeats.sum()) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    out = hits.iloc[np.repeat(first[inverse], repeats) + position].reset_index(drop=True)
    out["query_id"] = np.repeat(ids, repeats)
    return out


def _bins(ref: ReferenceSet) -> np.ndarray:
    """Each reference barcode's BIN ("" where unknown)."""
    return ref.bins if ref.bins is not None else np.full(len(ref), "", dtype=object)


def _interp(cosine: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Cosines mapped onto the identity scale by the fitted monotone curve; -inf stays -inf."""
    out = np.interp(np.where(np.isfinite(cosine), cosine, 0.0), mapping[0], mapping[1]).astype(np.float32)
    return np.where(np.isfinite(cosine), out, -np.inf).astype(np.float32)


def _pack(strings) -> tuple[np.ndarray, np.ndarray]:
    encoded = [str(s).encode("utf-8") for s in strings]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), ends


def _unpack(data: np.ndarray, ends: np.ndarray) -> list[str]:
    raw = data.tobytes()
    starts = np.concatenate([[0], ends[:-1]])
    return [raw[s:e].decode("utf-8") for s, e in zip(starts.tolist(), ends.tolist())]


def identify(reference: object, queries: object, out: str | os.PathLike[str], *, hits: int = 0,
             hits_out: str | os.PathLike[str] | None = None, **params) -> pd.DataFrame:
    """Fit a :class:`BarcodeIdentifier` (``params``) on ``reference``, predict ``queries``, write ``out``.

    ``out`` is a TSV with :data:`OUTPUT_COLUMNS` (confidences and scores to 4 decimals, identity in percent
    to 2, novel_species as true/false), written atomically: nothing is left at ``out`` if anything fails.
    ``hits`` > 0 also writes the best ``hits`` reference hits per query (:data:`HIT_COLUMNS`) to
    ``hits_out`` (default: ``out`` with ``.hits.tsv`` in place of its suffix). Returns the predictions.
    """
    # Check the options and read the queries first: a mistake there should fail before the (slower)
    # reference indexing.
    model = BarcodeIdentifier(**params)
    model._check_params()
    ids, sequences = read_queries(queries)
    table, top = model.fit(reference)._predict(ids, sequences, hits)
    if hits > 0:
        with atomic_path(hits_out or default_hits_path(out)) as tmp:
            top.to_csv(tmp, sep="\t", index=False)
    with atomic_path(out) as tmp:
        as_written(table).to_csv(tmp, sep="\t", index=False)
    return table


def as_written(predictions: pd.DataFrame) -> pd.DataFrame:
    """The predictions as the TSV holds them: confidences, scores and coverage to 4 decimals, novel_species
    as true/false."""
    rounded = {c: 4 for c in predictions.columns if c.endswith(("_confidence", "_score", "_coverage"))}
    written = predictions.round(rounded)
    written["novel_species"] = np.where(predictions["novel_species"], "true", "false")
    return written


def default_hits_path(out: str | os.PathLike[str]) -> Path:
    """Where ``--hits`` go by default: ``predictions.tsv`` → ``predictions.hits.tsv``."""
    out = Path(out)
    return out.with_name(f"{out.name.removesuffix(out.suffix) if out.suffix else out.name}.hits.tsv")
