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

from bioscan5m.models.kmer import kmer_counts

#: Rows profiled at once: 4096 x 4**6 float32 is 64 MiB.
BATCH = 4096
#: Reference rows the PCA is fitted on (a random sample; the components barely move beyond this).
PCA_SAMPLE = 8000


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every row scaled to unit L2 norm (all-zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class KmerIndex:
    """Cosine search over PCA-compressed k-mer profiles of reference barcodes.

    ``KmerIndex(k, dim).build(sequences)`` then ``search(queries, n) -> (similarity (Q, n), index (Q, n))``
    with index -1 (similarity -inf) where fewer than ``n`` references exist.
    """

    def __init__(self, k: int = 6, dim: int = 128, seed: int = 0) -> None:
        self.k = k
        self.dim = dim
        self.seed = seed
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.index: faiss.IndexFlatIP | None = None

    def profiles(self, sequences: Sequence[str]) -> np.ndarray:
        """Unit-length k-mer count profiles, float32 ``(len(sequences), 4**k)``."""
        return unit_rows(kmer_counts(sequences, self.k))

    def embed(self, sequences: Sequence[str]) -> np.ndarray:
        """Unit-length PCA coordinates of the profiles, float32 ``(len(sequences), dim)``."""
        parts = [
            unit_rows((self.profiles(sequences[i:i + BATCH]) - self.mean) @ self.components.T)
            for i in range(0, len(sequences), BATCH)
        ]
        return np.vstack(parts) if parts else np.zeros((0, self.components.shape[0]), dtype=np.float32)

    def build(self, sequences: Sequence[str]) -> KmerIndex:
        """Fit the PCA on (a sample of) ``sequences`` and index all of them."""
        from sklearn.decomposition import PCA

        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(len(sequences), min(PCA_SAMPLE, len(sequences)), replace=False))
        profiles = self.profiles([sequences[i] for i in sample])
        dim = max(1, min(self.dim, profiles.shape[0] - 1, profiles.shape[1]))
        randomized = dim < min(profiles.shape) // 2
        pca = PCA(dim, svd_solver="randomized" if randomized else "full", iterated_power=3 if randomized else "auto",
                  random_state=self.seed).fit(profiles)
        # Contiguous copies: safetensors writes the raw buffer, whatever the strides say.
        self.mean = np.ascontiguousarray(pca.mean_, dtype=np.float32)
        self.components = np.ascontiguousarray(pca.components_, dtype=np.float32)
        self.index = faiss.IndexFlatIP(self.components.shape[0])
        for start in range(0, len(sequences), BATCH):
            self.index.add(self.embed(sequences[start:start + BATCH]))
        return self

    def search(self, sequences: Sequence[str], n: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most similar references of each query: cosine ``(Q, n)`` float32, index ``(Q, n)`` int64.

        ``exclude``: reference indices to leave out (used to simulate queries of absent species).
        """
        params = None
        if exclude is not None and len(exclude):
            params = faiss.SearchParameters(sel=faiss.IDSelectorNot(faiss.IDSelectorBatch(np.asarray(exclude,
                                                                                                     np.int64))))
        similarity, index = self.index.search(self.embed(sequences), n, params=params)
        similarity[index < 0] = -np.inf
        return similarity, index

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write ``kmer_pca.safetensors`` and ``kmer.faiss`` into ``folder``."""
        folder = Path(folder)
        save_file({"mean": self.mean, "components": self.components}, str(folder / "kmer_pca.safetensors"))
        faiss.write_index(self.index, str(folder / "kmer.faiss"))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], k: int, seed: int = 0) -> KmerIndex:
        """Read what :meth:`save` wrote."""
        folder = Path(folder)
        arrays = load_file(str(folder / "kmer_pca.safetensors"))
        index = cls(k, arrays["components"].shape[0], seed)
        index.mean, index.components = arrays["mean"], arrays["components"]
        index.index = faiss.read_index(str(folder / "kmer.faiss"))
        return index
