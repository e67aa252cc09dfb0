"""The zero-shot clustering protocol (BIOSCAN-5M Task II) and its score: AMI per rank.

The paper's protocol, the default :class:`ClusteringProtocol`: reduce the embeddings with UMAP to 50
dimensions (30 neighbours, min_dist 0, seeded), cluster them with Ward's method into k clusters, k = the
number of true classes at the rank, and score the partition with the adjusted mutual information (AMI)
against the true labels. Records without a label at a rank are left out at that rank. Several modalities
(e.g. image and DNA) are z-scored per dimension and concatenated.

The paper does not settle how the per-rank figure was scored, so both readings of the authors' code are here
(``ClusteringProtocol.reading``):

* ``"per-rank"`` (default; fits the published figure better): at each rank, the records labelled at that
  rank are clustered into k = that rank's number of classes.
* ``"species-cut"`` (the authors' results notebook): every record is clustered once, k = the number of
  species (a missing species counts as one class), and that one partition is scored against every rank's
  labels, a missing label counting as one more class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioscan5m.cachedir import mark_used
from bioscan5m.data.schema import TARGET_RANKS, check_rank
from bioscan5m.embeddings.store import Embeddings
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_write
from bioscan5m.tasks.cluster.clusterers import EXACT_WARD_LIMIT, make_clusterer, resolve_clusterer
from bioscan5m.tasks.cluster.reduce import check_reducer, reduce_embeddings, reduction_stamp
from bioscan5m.tasks.cluster.ward import WARD_KNN_NEIGHBORS

log = logging.getLogger(__name__)

#: The ranks the paper scores zero-shot clustering at: class down to species, then BIN.
ZSC_RANKS: tuple[str, ...] = TARGET_RANKS[TARGET_RANKS.index("class") :]
#: How per-rank AMI is read from the protocol (see the module docstring).
READINGS: tuple[str, ...] = ("per-rank", "species-cut")


@dataclass(frozen=True)
class ClusteringProtocol:
    """How embeddings become clusters; the defaults are the paper's protocol.

    ``reducer`` (``umap``, ``pca``, ``none``) with ``n_components``, and for UMAP ``n_neighbors``,
    ``min_dist`` and ``metric``; ``clusterer`` (``ward``, ``ward-knn``, ``kmeans``, ``hdbscan``), where
    ``ward`` becomes ``ward-knn`` above ``exact_limit`` records (None: never) and ``knn`` is the neighbour
    count of its graph; ``seed`` for UMAP, PCA and k-means (None: UMAP on every core, not reproducible);
    ``reading``: ``per-rank`` or ``species-cut`` (see the module docstring).
    """

    reducer: str = "umap"
    n_components: int = 50
    n_neighbors: int = 30
    min_dist: float = 0.0
    metric: str = "euclidean"
    clusterer: str = "ward"
    exact_limit: int | None = EXACT_WARD_LIMIT
    knn: int = WARD_KNN_NEIGHBORS
    seed: int | None = 0
    reading: str = "per-rank"

    def __post_init__(self) -> None:
        check_reducer(self.reducer)  # unknown names fail here, before hours of UMAP
        resolve_clusterer(self.clusterer, 0)
        if self.reading not in READINGS:
            raise BioscanError(f"unknown reading {self.reading!r}; choose from {', '.join(READINGS)}",
                               value=self.reading)
        for name in ("n_components", "n_neighbors", "knn"):
            value = getattr(self, name)
            if value < 1:
                raise BioscanError(f"{name} must be at least 1, got {value}", value=value)

    def reduce(self, vectors: np.ndarray, cache_dir: str | os.PathLike[str] | None = None,
               notes: dict[str, Any] | None = None) -> np.ndarray:
        """``vectors [N, D]`` → ``float32 [N, n_components]`` (unchanged with ``reducer="none"``).

        With ``cache_dir`` the result is saved there, keyed by the vectors' bytes and the reduction
        settings, and a later call with the same vectors and settings reads it instead of running UMAP again.
        ``notes`` receives how UMAP started (see :func:`reduce_embeddings`), also on a cache hit.
        """
        notes = {} if notes is None else notes
        if cache_dir is None or self.reducer == "none":
            return self._reduce(vectors, notes)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        settings = [reduction_stamp(), self.reducer, self.n_components, self.n_neighbors, self.min_dist,
                    self.metric, self.seed, vectors.shape]
        digest = hashlib.sha256(json.dumps(settings).encode())
        digest.update(memoryview(vectors).cast("B"))
        path = Path(cache_dir) / f"{self.reducer}{self.n_components}-{digest.hexdigest()[:24]}.npy"
        if path.is_file():
            try:
                reduced = np.load(path, allow_pickle=False)
                notes.update(json.loads(path.with_suffix(".json").read_text()))
                mark_used(path)
                return reduced
            except (OSError, ValueError, EOFError):
                log.warning("%s is damaged; reducing again", path)
        reduced = self._reduce(vectors, notes)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path.with_suffix(".json")) as handle:
            json.dump(notes, handle)
        with atomic_write(path, "wb") as handle:
            np.save(handle, reduced)
        return reduced

    def _reduce(self, vectors: np.ndarray, notes: dict[str, Any]) -> np.ndarray:
        return reduce_embeddings(vectors, self.reducer, n_components=self.n_components,
                                 n_neighbors=self.n_neighbors, min_dist=self.min_dist, metric=self.metric,
                                 seed=self.seed, notes=notes)

    def deviations(self) -> list[str]:
        """How this protocol differs from the paper's, one phrase each (empty: the paper's protocol)."""
        paper = PAPER_PROTOCOL
        names = {"reducer": "reducer", "n_components": "dimensions", "n_neighbors": "UMAP neighbours",
                 "min_dist": "UMAP min_dist", "metric": "UMAP metric", "clusterer": "clusterer"}
        found = [f"{label} {getattr(self, name)} (paper: {getattr(paper, name)})"
                 for name, label in names.items() if getattr(self, name) != getattr(paper, name)]
        if self.exact_limit is not None and self.clusterer == "ward":
            found.append(f"approximate Ward (ward-knn) above {self.exact_limit:,} records")
        return found

    def clusterer_for(self, n_samples: int) -> str:
        """The clusterer used for ``n_samples`` records (``ward`` may become ``ward-knn``)."""
        return resolve_clusterer(self.clusterer, n_samples, self.exact_limit)

    def make_clusterer(self, n_samples: int) -> Any:
        """An unfitted clusterer for ``n_samples`` reduced vectors: ``fit(x)``, then ``cut(k)``."""
        return make_clusterer(self.clusterer, n_samples, exact_limit=self.exact_limit, knn=self.knn,
                              seed=self.seed)


#: The paper's protocol: UMAP to 50 d (30 neighbours, min_dist 0, seed 0) and Ward.
PAPER_PROTOCOL = ClusteringProtocol()


def cluster_embeddings(vectors: np.ndarray, n_clusters: int,
                       protocol: ClusteringProtocol = PAPER_PROTOCOL) -> np.ndarray:
    """Cluster ``vectors [N, D]`` into ``n_clusters``: reduce, then cluster. Returns ``int64 [N]`` labels."""
    reduced = protocol.reduce(vectors)
    return protocol.make_clusterer(len(reduced)).fit(reduced).cut(n_clusters)


def combine_embeddings(parts: Embeddings | Sequence[Embeddings]) -> Embeddings:
    """One embedding per record from several modalities: z-score every dimension, then concatenate.

    Records are joined by id (those missing from any part are dropped, with a warning); a single part (or a
    lone :class:`Embeddings`) is returned unchanged.
    """
    if isinstance(parts, Embeddings):
        return parts
    if not parts:
        raise BioscanError("no embeddings given")
    if len(parts) == 1:
        return parts[0]
    common = parts[0].ids
    for part in parts[1:]:
        common = common[np.isin(common, part.ids)]
    if len(common) == 0:
        raise BioscanError("the embeddings share no record id: " + ", ".join(
            f"{p.name} (e.g. {', '.join(map(str, p.ids[:2]))})" for p in parts))
    blocks = []
    for part in parts:
        if len(part) != len(common):
            log.warning("%s: %d of %d records have no other-modality embedding; left out",
                        part.name, len(part) - len(common), len(part))
        rows = pd.Index(part.ids).get_indexer(common)
        blocks.append(standardize(part.vectors[rows]))
    name = " + ".join(p.name for p in parts)
    manifest = {"encoder": {"name": name}, "parts": [p.manifest for p in parts]}
    return Embeddings(ids=common, vectors=np.concatenate(blocks, axis=1), manifest=manifest)


def standardize(vectors: np.ndarray) -> np.ndarray:
    """Z-score every column (mean 0, standard deviation 1; constant columns become 0): ``float32``."""
    x = np.asarray(vectors, dtype=np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def record_rows(ids: np.ndarray, records: Any) -> np.ndarray:
    """Row of each embedding id in ``records``; ids that are not there raise a BioscanError with examples."""
    ids = np.asarray(ids).astype(str)
    duplicated = pd.Index(ids).duplicated()
    if duplicated.any():
        raise BioscanError(f"{int(duplicated.sum())} record ids occur twice in the embeddings, "
                           f"e.g. {', '.join(ids[duplicated][:3])}")
    record_ids = pd.Index(np.asarray(records.ids).astype(str))
    first = ~record_ids.duplicated(keep="first")  # a table listing an id twice: use its first row
    found = record_ids[first].get_indexer(ids)
    rows = np.where(found >= 0, np.flatnonzero(first)[found], -1)
    missing = rows < 0
    if missing.any():
        examples = ", ".join(ids[missing][:5])
        raise BioscanError(
            f"{int(missing.sum())} of {len(ids)} embedding ids are not in the labels table "
            f"({len(records.ids)} records), e.g. {examples}; were the embeddings made from another source?",
            path=getattr(records, "source", None),
        )
    return rows




def zero_shot_clustering(
    embeddings: Embeddings | Sequence[Embeddings],
    records: Any,
    ranks: Iterable[str] = ZSC_RANKS,
    protocol: ClusteringProtocol = PAPER_PROTOCOL,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    notes: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """AMI of clustering ``embeddings`` against the labels in ``records`` at each rank.

    ``embeddings``: one :class:`Embeddings` or several modalities to z-score and concatenate. ``records``:
    a ``Records`` holding every embedded id (it may hold more). The embeddings are reduced once; then, in the
    ``per-rank`` reading, at each rank the records with a label are clustered into as many clusters as they
    have classes (one tree per distinct set of labelled records, cut at each k); in the ``species-cut``
    reading one clustering of every record is scored against each rank (see the module docstring). Returns one row per rank: ``rank``, ``n_records``,
    ``n_classes``, ``n_clusters``, ``clusterer``, ``ami`` (NaN when a rank has fewer than 2 classes).
    ``cache_dir``: keep the reduced vectors there and reuse them (see :meth:`ClusteringProtocol.reduce`). A
    progress bar names the stage running (``progress``: None shows it on a terminal only). ``notes``
    receives how the reduction started (``umap_init``).
    """
    from tqdm.auto import tqdm

    ranks = [check_rank(rank) for rank in ranks]
    combined = combine_embeddings(embeddings)
    rows = record_rows(combined.ids, records)
    with tqdm(total=1 + len(ranks), desc=combined.name, unit="stage", leave=False,
              disable=None if progress is None else not progress) as bar:
        bar.set_postfix_str(f"{protocol.reducer} of {len(combined):,} x {combined.dim}")
        reduced = protocol.reduce(combined.vectors, cache_dir, notes)
        bar.update()
        labels = {rank: np.asarray(records.labels(rank))[rows] for rank in ranks}
        if protocol.reading == "species-cut":
            species = np.asarray(records.labels("species"))[rows]
            return pd.DataFrame(_species_cut_scores(reduced, labels, protocol, bar, species))
        return pd.DataFrame(_per_rank_scores(reduced, labels, protocol, bar))


def _per_rank_scores(reduced: np.ndarray, labels: dict[str, np.ndarray], protocol: ClusteringProtocol,
                     bar: Any) -> list[dict[str, Any]]:
    """At each rank, its labelled records into k = its classes (one tree per distinct labelled set)."""
    from sklearn.metrics import adjusted_mutual_info_score

    fitted: dict[bytes, Any] = {}
    results = []
    for rank, truth in labels.items():
        labelled = truth >= 0
        n_classes = len(np.unique(truth[labelled]))
        row = {"rank": rank, "n_records": int(labelled.sum()), "n_classes": n_classes, "n_clusters": 0,
               "clusterer": "", "ami": float("nan")}
        if n_classes >= 2:
            row["clusterer"] = protocol.clusterer_for(row["n_records"])
            bar.set_postfix_str(f"{rank}: {row['clusterer']}, {n_classes:,} clusters of {row['n_records']:,}")
            key = hashlib.sha1(np.packbits(labelled).tobytes()).digest()
            if key not in fitted:
                fitted[key] = protocol.make_clusterer(row["n_records"]).fit(reduced[labelled])
            predicted = fitted[key].cut(n_classes)
            row.update(n_clusters=len(np.unique(predicted)),
                       ami=float(adjusted_mutual_info_score(truth[labelled], predicted)))
        results.append(row)
        bar.update()
    return results


def _species_cut_scores(reduced: np.ndarray, labels: dict[str, np.ndarray], protocol: ClusteringProtocol,
                        bar: Any, species: np.ndarray) -> list[dict[str, Any]]:
    """Every record once into k = species classes (missing = a class), scored against every rank."""
    from sklearn.metrics import adjusted_mutual_info_score

    n_clusters = len(np.unique(species))  # label -1 (no species) is one class
    clusterer = protocol.clusterer_for(len(reduced))
    bar.set_postfix_str(f"species cut: {clusterer}, {n_clusters:,} clusters of {len(reduced):,}")
    predicted = protocol.make_clusterer(len(reduced)).fit(reduced).cut(n_clusters) if n_clusters >= 2 else None
    results = []
    for rank, truth in labels.items():
        n_classes = len(np.unique(truth))
        row = {"rank": rank, "n_records": len(truth), "n_classes": n_classes, "n_clusters": 0,
               "clusterer": "", "ami": float("nan")}
        if predicted is not None and n_classes >= 2:
            row.update(clusterer=clusterer, n_clusters=len(np.unique(predicted)),
                       ami=float(adjusted_mutual_info_score(truth, predicted)))
        results.append(row)
        bar.update()
    return results
