"""Dimension reduction before clustering: UMAP (the paper's), PCA, or none."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from bioscan5m.errors import BioscanError

log = logging.getLogger(__name__)

REDUCERS: tuple[str, ...] = ("umap", "pca", "none")
#: Part of every cache key of reduced vectors: bumped whenever the same vectors and settings reduce differently
#: with the same libraries (2: UMAP's spectral start no longer draws ARPACK restart vectors from OS entropy).
REDUCED_VERSION = 2
#: The libraries whose releases can change a reduction: reduced vectors are cached per their versions.
REDUCTION_LIBRARIES: tuple[str, ...] = ("umap-learn", "pynndescent", "scikit-learn", "scipy", "numpy", "numba")
#: Below this many records UMAP computes exact distances and lays out small graphs quickly itself.
UMAP_EXACT_BELOW = 4096


def reduction_stamp() -> str:
    """:data:`REDUCED_VERSION` and the installed versions of :data:`REDUCTION_LIBRARIES`, for cache keys: a
    reduction cached under one release of UMAP is not read back under another."""
    from bioscan5m.cachedir import release_stamp

    return f"v{REDUCED_VERSION} {release_stamp(REDUCTION_LIBRARIES)}"


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
    notes: dict[str, Any] | None = None,
) -> np.ndarray:
    """Reduce ``vectors [N, D]`` to ``float32 [N, n_components]`` with UMAP, PCA, or not at all (``"none"``).

    ``seed=None`` lets UMAP use every core (not reproducible); a seed makes it single-threaded and exact,
    its spectral start included (see :func:`_seeded_arpack`).
    ``notes``, when given, receives UMAP's start (``umap_init``: ``spectral`` or ``pca``, see
    :func:`_umap_start`).
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
    from sklearn.utils import check_random_state

    # UMAP's spectral start needs n_components < N - 1; tiny inputs get fewer components.
    components = min(n_components, n - 2)
    n_neighbors = min(n_neighbors, n - 1)
    n_jobs = 1 if seed is not None else -1
    random_state = check_random_state(seed)
    options: dict = {}
    if n >= UMAP_EXACT_BELOW:
        options = _umap_start(vectors, components, n_neighbors, metric, random_state, n_jobs)
    if notes is not None:
        notes["umap_init"] = options.get("init", "spectral")
    model = umap.UMAP(n_components=components, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                      random_state=random_state if seed is not None else None, n_jobs=n_jobs, **options)
    with warnings.catch_warnings(), _seeded_arpack(seed):
        warnings.filterwarnings("ignore", message=".*n_jobs value 1 overridden.*")
        warnings.filterwarnings("ignore", message=".*random_state.*parallelism.*")
        warnings.filterwarnings("ignore", message="Graph is not fully connected")  # UMAP copes
        return model.fit_transform(vectors).astype(np.float32)


#: The seed that ``eigsh`` calls from this thread use inside :func:`_seeded_arpack` (None: SciPy's own).
_arpack_seed = threading.local()
#: Guards installing and removing the wrapped ``eigsh``, which all threads share while any one needs it.
_arpack_lock = threading.Lock()
_arpack_users = 0
_unseeded_eigsh: dict[Any, Any] = {}


@contextlib.contextmanager
def _seeded_arpack(seed: int | None) -> Iterator[None]:
    """While active, ``eigsh`` calls from this thread draw ARPACK's restart vectors from ``seed``.

    UMAP's spectral start calls ``eigsh`` with a fixed start vector (all ones) but no ``rng``. When the
    Lanczos iteration breaks down (the ones vector spans a small invariant subspace, as on very regular
    graphs), ARPACK asks for a fresh random vector, and SciPy then draws it from operating-system entropy:
    the same seed and data gave different layouts. Seeding that draw changes nothing when no restart
    happens, so such runs still equal UMAP's own result bit for bit. ``seed=None`` leaves SciPy alone.
    The wrapper is installed while any thread is inside (other threads' calls pass through unchanged) and
    removed by the last one out.
    """
    global _arpack_users
    if seed is None:
        yield
        return
    import scipy.sparse.linalg
    import sklearn.manifold._spectral_embedding as sklearn_spectral

    with _arpack_lock:
        if _arpack_users == 0:
            # UMAP calls scipy's eigsh; for graphs in many pieces it also places them with scikit-learn's
            # SpectralEmbedding, whose module imported eigsh by name.
            for module in (scipy.sparse.linalg, sklearn_spectral):
                if hasattr(module, "eigsh"):
                    _unseeded_eigsh[module] = module.eigsh
                    module.eigsh = _with_thread_seed(module.eigsh)
        _arpack_users += 1
    outer, _arpack_seed.value = getattr(_arpack_seed, "value", None), seed
    try:
        yield
    finally:
        _arpack_seed.value = outer
        with _arpack_lock:
            _arpack_users -= 1
            if _arpack_users == 0:
                for module, eigsh in _unseeded_eigsh.items():
                    module.eigsh = eigsh
                _unseeded_eigsh.clear()


def _with_thread_seed(eigsh: Any) -> Any:
    """``eigsh`` that seeds ``rng`` afresh from this thread's :data:`_arpack_seed`, unless given one."""
    @functools.wraps(eigsh)
    def seeded(*args: Any, **kwargs: Any) -> Any:
        seed = getattr(_arpack_seed, "value", None)
        if seed is not None:
            kwargs.setdefault("rng", np.random.default_rng(seed))
        return eigsh(*args, **kwargs)

    return seeded


def _umap_start(vectors: np.ndarray, components: int, n_neighbors: int, metric: str, random_state: Any,
                n_jobs: int) -> dict[str, Any]:
    """UMAP's neighbour search, done ahead of UMAP (which then reuses it) to choose its starting layout.

    UMAP starts from a spectral layout; when the neighbour graph falls into more than 2 × ``components``
    separate pieces, it first lays out the pieces by a dense spectral embedding of their centroids, which
    can run for hours once there are thousands of far-apart pieces (many tight species clusters). Then a
    PCA start is used instead. The search is UMAP's own call with the same random state, so a connected
    graph gives exactly the embedding UMAP alone would.
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components
    from umap.umap_ import nearest_neighbors

    knn = nearest_neighbors(vectors, n_neighbors, metric, {}, False, random_state, low_memory=True,
                            use_pynndescent=True, n_jobs=n_jobs)
    n = len(vectors)
    rows = np.repeat(np.arange(n), knn[0].shape[1])
    cols = knn[0].ravel()
    valid = cols >= 0
    graph = sparse.coo_matrix((np.ones(valid.sum(), dtype=np.int8), (rows[valid], cols[valid])), shape=(n, n))
    pieces = connected_components(graph, directed=False)[0]
    if pieces > 2 * components:
        log.warning("the %d-neighbour graph of %d records has %d separate pieces: UMAP starts from PCA "
                    "instead of its spectral layout, which can take hours there", n_neighbors, n, pieces)
        return {"precomputed_knn": knn, "init": "pca"}
    return {"precomputed_knn": knn}
