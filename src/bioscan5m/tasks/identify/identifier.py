"""``BarcodeIdentifier``: name new DNA barcodes from a reference with taxonomy, scikit-learn style.

>>> model = BarcodeIdentifier().fit("insect_bold_records.tsv.gz")       # doctest: +SKIP
>>> model.predict("new_barcodes.fasta").head()                           # doctest: +SKIP

``fit`` builds (or loads from its cache) everything a query needs: the k-mer index, the reference's
taxonomy and the calibration. The cache folder is keyed by a hash of the reference's barcodes, ids and
taxonomy plus the parameters, so an edited reference is re-indexed and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from bioscan5m.cachedir import cache_folder, discard, mark_used
from bioscan5m.data.schema import DNA_COLUMN, ID_COLUMN, SCORED_RANKS
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_path
from bioscan5m.tasks.identify.align import candidate_identities
from bioscan5m.tasks.identify.consensus import SPECIES, Calibration, Votes, vote
from bioscan5m.tasks.identify.kmer_index import KmerIndex
from bioscan5m.tasks.identify.reference import ReferenceSet, read_queries, read_reference

#: ``kmer``: k-mer search only; ``kmer+align``: k-mer search, then exact alignment of the candidates;
#: ``blast`` / ``vsearch``: the external programs find the hits, the same consensus names them.
METHODS: tuple[str, ...] = ("kmer+align", "kmer", "blast", "vsearch")
DEFAULT_METHOD = "kmer+align"
PEER_METHODS = ("blast", "vsearch")
#: Columns of the prediction table, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "query_id",
    *[name for rank in SCORED_RANKS for name in (rank, f"{rank}_confidence")],
    "nearest_id",
    "similarity",
    "novel_species",
    "novelty_score",
)
#: Bump when what is stored in the cache changes meaning.
CACHE_VERSION = 5
#: Extra hits fetched while calibrating, so that hiding a species' barcodes still leaves enough hits.
EXCLUSION_ROOM = 64


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

    Fitted attributes: ``reference_`` (:class:`ReferenceSet`), ``index_`` (:class:`KmerIndex`),
    ``calibration_`` (method family → :class:`Calibration`), ``cache_path_``, ``from_cache_``.
    """

    def __init__(self, method: str = DEFAULT_METHOD, *, k: int = 6, dim: int = 128, n_candidates: int = 10,
                 tau: float = 0.02, n_simulated: int = 2000, batch_size: int = 1024, threads: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True, seed: int = 0,
                 progress: bool | None = None) -> None:
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

    # --- fitting ------------------------------------------------------------------------------------

    def fit(self, reference: object) -> BarcodeIdentifier:
        """Index ``reference`` (a path ``load_records`` reads, ``Records`` or DataFrame with taxonomy)."""
        self._check_params()
        self._set_threads()
        ref = read_reference(reference)
        self.reference_ = ref
        self.from_cache_ = False
        self._workdir = None
        if self.use_cache:
            self.cache_path_ = default_index_dir(self.cache_dir) / self._cache_key(ref)
            if (self.cache_path_ / "config.json").is_file():
                try:
                    self._load(self.cache_path_)
                    self.from_cache_ = True
                    mark_used(self.cache_path_)
                except (OSError, ValueError, KeyError, RuntimeError, SafetensorError):
                    discard(self.cache_path_)  # damaged: index the reference again
                    self.reference_ = ref
            if not self.from_cache_:
                self._build(ref)
                self._save(self.cache_path_)
        else:
            self.cache_path_ = None
            self._build(ref)
        return self

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise BioscanError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}",
                               value=self.method)
        for name in ("k", "dim", "n_candidates", "n_simulated", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise BioscanError(f"{name} must be at least 1, not {getattr(self, name)}", value=getattr(self, name))
        if not self.tau > 0:
            raise BioscanError(f"tau must be positive, not {self.tau}", value=self.tau)

    def _set_threads(self) -> None:
        import faiss

        self.threads_ = int(self.threads or os.cpu_count() or 1)
        faiss.omp_set_num_threads(self.threads_)

    def _cache_key(self, ref: ReferenceSet) -> str:
        params = f"v{CACHE_VERSION}|k{self.k}|d{self.dim}|c{self.n_candidates}|t{self.tau}|s{self.n_simulated}|{self.seed}"
        return hashlib.sha256(f"{ref.fingerprint()}|{params}".encode()).hexdigest()[:24]

    def _build(self, ref: ReferenceSet) -> None:
        self.index_ = KmerIndex(self.k, self.dim, self.seed).build(ref.sequences)
        self.calibration_, self.cosine_to_identity_ = self._calibrate(ref)

    def _calibrate(self, ref: ReferenceSet) -> tuple[dict[str, Calibration], np.ndarray]:
        """Fit the calibration on queries simulated from the reference (see ``consensus``)."""
        from sklearn.isotonic import IsotonicRegression

        records, excluded, novel = self._simulated_queries(ref)
        sequences = [ref.sequences[h] for h in ref.record_haplotype[records]]
        cosine = np.full((len(records), self.n_candidates), -np.inf, dtype=np.float32)
        candidates = np.full((len(records), self.n_candidates), -1, dtype=np.int64)
        # One batched search with room for the hidden barcodes; only queries of species with more hidden
        # barcodes than that room are searched one by one, with FAISS skipping the hidden ones.
        room = self.n_candidates + EXCLUSION_ROOM
        wide_cosine, wide = self.index_.search(sequences, min(room, len(ref)))
        alone = []
        for row, hidden in enumerate(excluded):
            keep = ~np.isin(wide[row], hidden) & (wide[row] >= 0)
            if len(hidden) and keep.sum() < self.n_candidates and len(ref) > room:
                alone.append(row)
                continue
            kept = np.flatnonzero(keep)[:self.n_candidates]
            cosine[row, :len(kept)], candidates[row, :len(kept)] = wide_cosine[row, kept], wide[row, kept]
        for row in tqdm(alone, desc="calibrating", unit="query", disable=self._no_bar()):
            cosine[row], candidates[row] = self.index_.search([sequences[row]], self.n_candidates, excluded[row])
        identity = candidate_identities(sequences, ref.sequences, candidates)

        # The k-mer method reports identities: a monotone curve from cosine to alignment identity, stored
        # as 201 (cosine, identity) points at the cosine quantiles.
        found = candidates >= 0
        mapping = np.array([[0.0, 1.0], [0.0, 1.0]])
        if found.any():
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(cosine[found], identity[found])
            grid = np.quantile(cosine[found], np.linspace(0, 1, 201))
            mapping = np.stack([grid, iso.predict(grid)]).astype(np.float64)

        truth = ref.record_labels[records].astype(np.int64)
        mapped = _interp(cosine, mapping)
        calibration = {}
        for family, similarity in (("align", identity), ("kmer", mapped)):
            votes = vote(similarity, candidates, ref.labels, self.tau, mapped[:, 0])
            calibration[family] = Calibration().fit(votes, truth, novel)
        return calibration, mapping

    def _simulated_queries(self, ref: ReferenceSet) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Reference records to use as queries, the haplotypes hidden from each, and whether its species is.

        Seen: a random record, hiding only its own barcode if no other record shares it. New species: one
        record of a random species, hiding every barcode of that species.
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
        return records, hide_seen + hide_new, novel

    # --- predicting ---------------------------------------------------------------------------------

    def predict(self, queries: object) -> pd.DataFrame:
        """One row per query with the columns of :data:`OUTPUT_COLUMNS`.

        ``queries``: a FASTA or table path, ``Records``, DataFrame, ``{id: barcode}`` or list of barcodes.
        """
        if not hasattr(self, "index_"):
            raise BioscanError("this BarcodeIdentifier is not fitted yet: call fit(reference) first")
        ids, votes = self._votes(queries)
        calibration = self.calibration_["kmer" if self.method == "kmer" else "align"]
        return self._table(ids, votes, calibration)

    def _votes(self, queries: object) -> tuple[np.ndarray, Votes]:
        """Query ids and the vote over each query's hits."""
        self._set_threads()
        ids, sequences = read_queries(queries)
        similarity = np.full((len(ids), self.n_candidates), -np.inf, dtype=np.float32)
        candidates = np.full((len(ids), self.n_candidates), -1, dtype=np.int64)
        kmer_similarity = np.zeros(len(ids), dtype=np.float32)
        # The k-mer search runs for every method: its similarity is what the novelty score reads.
        bar = tqdm(total=len(ids), desc=f"identifying ({self.method})", unit="query", disable=self._no_bar())
        for start in range(0, len(ids), self.batch_size):
            rows = slice(start, min(start + self.batch_size, len(ids)))
            cosine, found = self.index_.search(sequences[rows], self.n_candidates)
            mapped = _interp(cosine, self.cosine_to_identity_)
            kmer_similarity[rows] = mapped[:, 0]
            candidates[rows], similarity[rows] = found, mapped
            if self.method == "kmer+align":
                similarity[rows] = candidate_identities(sequences[rows], self.reference_.sequences, found)
            bar.update(rows.stop - rows.start)
        bar.close()
        if self.method in PEER_METHODS:
            similarity, candidates = self._peer_hits(ids, sequences)
        return ids, vote(similarity, candidates, self.reference_.labels, self.tau, kmer_similarity)

    def _table(self, ids: np.ndarray, votes: Votes, calibration: Calibration) -> pd.DataFrame:
        confidence = calibration.confidence(votes)
        novelty = calibration.novelty_score(votes)
        ref = self.reference_
        columns: dict[str, object] = {"query_id": ids}
        for column, rank in enumerate(SCORED_RANKS):
            names = np.array(ref.names[rank] + ("",), dtype=object)
            columns[rank] = names[votes.labels[:, column]]  # -1 picks the trailing ""
            columns[f"{rank}_confidence"] = confidence[:, column]
        columns["nearest_id"] = np.where(votes.nearest >= 0, ref.record_ids[np.maximum(votes.nearest, 0)], "")
        columns["similarity"] = np.clip(votes.best, 0.0, 1.0)
        columns["novel_species"] = novelty >= 0.5
        columns["novelty_score"] = novelty
        return pd.DataFrame(columns)[list(OUTPUT_COLUMNS)]

    def _peer_hits(self, ids: np.ndarray, sequences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run BLAST or VSEARCH; hits as (identity (Q, C), reference index (Q, C)) like the k-mer search."""
        from bioscan5m.peers.blast import blast_search
        from bioscan5m.peers.programs import write_fasta
        from bioscan5m.peers.vsearch import vsearch_search

        database = self._peer_database()
        with tempfile.TemporaryDirectory(prefix="bioscan5m-identify-") as tmp:
            query_fasta = write_fasta(Path(tmp) / "queries.fasta", [f"q{i}" for i in range(len(ids))], sequences)
            if self.method == "blast":
                hits = blast_search(database, query_fasta, threads=self.threads_, max_hits=self.n_candidates)
            else:
                hits = vsearch_search(database, query_fasta, threads=self.threads_, max_hits=self.n_candidates)
        similarity = np.full((len(ids), self.n_candidates), -np.inf, dtype=np.float32)
        candidates = np.full((len(ids), self.n_candidates), -1, dtype=np.int64)
        if len(hits):
            row = hits["query_id"].str[1:].astype(np.int64).to_numpy()
            column = hits.groupby("query_id", sort=False).cumcount().to_numpy()
            candidates[row, column] = hits["subject_id"].str[1:].astype(np.int64).to_numpy()
            similarity[row, column] = hits["identity"].to_numpy()
        return similarity, candidates

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
            building = Path(tempfile.mkdtemp(prefix=".blastdb-", dir=folder))
            try:
                make_blast_db(fasta, building / "reference")
                os.replace(building, database)
            finally:
                shutil.rmtree(building, ignore_errors=True)
        return database / "reference"

    def _no_bar(self) -> bool | None:
        return None if self.progress is None else not self.progress

    # --- the cache ----------------------------------------------------------------------------------

    def _save(self, folder: Path) -> None:
        """Write the fitted state into ``folder`` atomically (built beside it, then renamed into place)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            ref = self.reference_
            sequences, sequence_ends = _pack(ref.sequences)
            record_ids, record_id_ends = _pack(ref.record_ids)
            save_file({"labels": ref.labels, "n_records": ref.n_records, "sequences": sequences,
                       "sequence_ends": sequence_ends, "record_ids": record_ids, "record_id_ends": record_id_ends,
                       "cosine_to_identity": self.cosine_to_identity_}, str(building / "reference.safetensors"))
            self.index_.save(building)
            config = {
                "version": CACHE_VERSION, "k": self.k, "dim": self.dim, "n_candidates": self.n_candidates,
                "tau": self.tau, "n_simulated": self.n_simulated, "seed": self.seed, "source": ref.source,
                "ranks": list(SCORED_RANKS), "names": {rank: list(ref.names[rank]) for rank in SCORED_RANKS},
                "calibration": {family: c.to_dict() for family, c in self.calibration_.items()},
            }
            (building / "config.json").write_text(json.dumps(config), encoding="utf-8")
            os.chmod(building, 0o755)
            try:
                os.replace(building, folder)
            except OSError:  # another process saved the same index first: keep theirs
                pass
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def _load(self, folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        arrays = load_file(str(folder / "reference.safetensors"))
        names = {rank: tuple(config["names"][rank]) for rank in SCORED_RANKS}
        self.reference_ = ReferenceSet(
            sequences=_unpack(arrays["sequences"], arrays["sequence_ends"]),
            record_ids=np.array(_unpack(arrays["record_ids"], arrays["record_id_ends"]), dtype=object),
            n_records=arrays["n_records"], labels=arrays["labels"], names=names,
            record_haplotype=np.zeros(0, np.int64), record_labels=np.zeros((0, len(SCORED_RANKS)), np.int32),
            source=config["source"],
        )
        self.index_ = KmerIndex.load(folder, config["k"], config["seed"])
        self.cosine_to_identity_ = arrays["cosine_to_identity"]
        self.calibration_ = {family: Calibration.from_dict(c) for family, c in config["calibration"].items()}


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


def identify(reference: object, queries: object, out: str | os.PathLike[str], **params) -> pd.DataFrame:
    """Fit a :class:`BarcodeIdentifier` (``params``) on ``reference``, predict ``queries``, write ``out``.

    ``out`` is a TSV with :data:`OUTPUT_COLUMNS` (confidences and scores to 4 decimals, novel_species as
    true/false), written atomically: nothing is left at ``out`` if anything fails. Returns the table.
    """
    # Read the queries first: a bad query file should fail before the (slower) reference indexing.
    ids, sequences = read_queries(queries)
    queries = pd.DataFrame({ID_COLUMN: ids, DNA_COLUMN: sequences})
    table = BarcodeIdentifier(**params).fit(reference).predict(queries)
    with atomic_path(out) as tmp:
        written = table.copy()
        written["novel_species"] = np.where(table["novel_species"], "true", "false")
        written.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    return table
