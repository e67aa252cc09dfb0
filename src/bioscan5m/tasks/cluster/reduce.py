"""Dimension reduction before clustering: UMAP (the paper's), PCA, or none."""

from __future__ import annotations

import numpy as np

from bioscan5m.errors import BioscanError

REDUCERS: tuple[str, ...] = ("umap", "pca", "none")


def check_reducer(name: str) -> str:
    """``name`` if it is a known reducer; otherwise a BioscanError listing them."""
    if name not in REDUCERS:
        raise BioscanError(f"unknown reducer {name!r}; choose from {', '.join(REDUCERS)}", value=name)
    return name


def reduce_embeddings(
    vectors: np.ndarray,
    reducer: str = "umap",
    *,
    n_components: int = 50,
    n_neighbors: int = 30,
    min_dist: float = 0.0,
    metric: str = "euclidean",
    seed: int | None = 0,
) -> np.ndarray:
    """Reduce ``vectors [N, D]`` to ``float32 [N, n_components]`` with UMAP, PCA, or not at all (``"none"``).

    ``seed=None`` lets UMAP use every core (not reproducible); a seed makes it single-threaded and exact.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    check_reducer(reducer)
    n, dim = vectors.shape
    if reducer == "none" or (reducer == "pca" and dim <= n_components):
        return vectors
    if reducer == "pca":
        from sklearn.decomposition import PCA

        components = min(n_components, n)
        return PCA(n_components=components, random_state=seed).fit_transform(vectors).astype(np.float32)
    if n < 4:
        raise BioscanError(f"UMAP needs at least 4 records, got {n}", value=n)
    import warnings

    import umap

    # UMAP's spectral start needs n_components < N - 1; tiny inputs get fewer components.
    components = min(n_components, n - 2)
    model = umap.UMAP(n_components=components, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist,
                      metric=metric, random_state=seed, n_jobs=1 if seed is not None else -1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value 1 overridden.*")
        warnings.filterwarnings("ignore", message=".*random_state.*parallelism.*")
        warnings.filterwarnings("ignore", message="Graph is not fully connected")  # UMAP copes
        return model.fit_transform(vectors).astype(np.float32)

