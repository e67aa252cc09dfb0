"""The clusterers of the protocol by name: Ward (exact or scalable), k-means, HDBSCAN.

Each has ``fit(vectors)`` and ``cut(n_clusters) -> int64 labels``, so a tree is built once and cut at every
rank's number of classes.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from bioscan5m.errors import BioscanError
from bioscan5m.tasks.cluster.ward import WARD_KNN_NEIGHBORS, WardClusterer

log = logging.getLogger(__name__)

CLUSTERERS: tuple[str, ...] = ("ward", "ward-knn", "kmeans", "hdbscan")
#: Largest N clustered with exact Ward when ``clusterer="ward"`` (above it ``"ward-knn"`` is used); None:
#: exact at every size, as the paper does (memory-frugal above what a distance matrix allows, see ``.ward``).
EXACT_WARD_LIMIT: int | None = None


class KMeansClusterer:
    """k-means (scikit-learn, k-means++ start, one run per k, seeded)."""

    def __init__(self, seed: int | None = 0) -> None:
        self.seed = seed

    def fit(self, vectors: np.ndarray) -> KMeansClusterer:
        self.vectors_ = np.asarray(vectors, dtype=np.float32)
        return self

    def cut(self, n_clusters: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=n_clusters, n_init=1, random_state=self.seed)
        return model.fit_predict(self.vectors_).astype(np.int64)


class HdbscanClusterer:
    """HDBSCAN (scikit-learn): finds its own number of clusters, so k is ignored.

    Records it calls noise become one singleton cluster each, so leaving records out earns no credit.
    """

    def __init__(self, min_cluster_size: int = 5) -> None:
        self.min_cluster_size = min_cluster_size

    def fit(self, vectors: np.ndarray) -> HdbscanClusterer:
        from sklearn.cluster import HDBSCAN

        model = HDBSCAN(min_cluster_size=self.min_cluster_size, copy=True)
        labels = model.fit_predict(vectors).astype(np.int64)
        noise = labels < 0
        labels[noise] = labels.max() + 1 + np.arange(noise.sum())
        self.labels_ = labels
        return self

    def cut(self, n_clusters: int) -> np.ndarray:
        return self.labels_


def resolve_clusterer(name: str, n_samples: int, exact_limit: int | None = EXACT_WARD_LIMIT) -> str:
    """The clusterer that ``name`` means for ``n_samples`` records: ``ward`` becomes ``ward-knn`` above
    ``exact_limit`` (``None``: never). Unknown names raise a BioscanError listing the known ones."""
    if name not in CLUSTERERS:
        raise BioscanError(f"unknown clusterer {name!r}; choose from {', '.join(CLUSTERERS)}", value=name)
    if name == "ward" and exact_limit is not None and n_samples > exact_limit:
        log.info("%d records > exact Ward limit %d: using ward-knn", n_samples, exact_limit)
        return "ward-knn"
    return name


def make_clusterer(name: str = "ward", n_samples: int = 0, *, exact_limit: int | None = EXACT_WARD_LIMIT,
                   knn: int = WARD_KNN_NEIGHBORS, seed: int | None = 0) -> Any:
    """The clusterer called ``name`` (``ward``, ``ward-knn``, ``kmeans``, ``hdbscan``) for ``n_samples``
    records, unfitted (see :func:`resolve_clusterer`)."""
    name = resolve_clusterer(name, n_samples, exact_limit)
    if name == "ward":
        return WardClusterer()
    if name == "ward-knn":
        return WardClusterer(n_neighbors=knn)
    if name == "kmeans":
        return KMeansClusterer(seed=seed)
    return HdbscanClusterer()
