"""Probes of frozen embeddings: a linear classifier and a 1-nearest-neighbour classifier.

Both follow scikit-learn's ``fit`` / ``predict`` / ``score`` shape so that they drop into any evaluation code.
Rows with a missing label (index ``-1``) are ignored when fitting.
"""

from __future__ import annotations

import faiss
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bioscan5m.errors import BioscanError


def _check_xy(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.ascontiguousarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise BioscanError(f"features {features.shape} and labels {labels.shape} do not match")
    known = labels != -1
    if not known.any():
        raise BioscanError("no labelled rows to fit")
    return features[known], labels[known]


class LinearProbe:
    """Multinomial logistic regression on standardised frozen features (the paper's linear probe)."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, features: np.ndarray, labels: np.ndarray) -> LinearProbe:
        """Fit on features ``[N, D]`` and integer or string labels ``[N]``."""
        features, labels = _check_xy(features, labels)
        self.scaler_ = StandardScaler().fit(features)
        self.classifier_ = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        self.classifier_.fit(self.scaler_.transform(features), labels)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted label for each row of ``features``."""
        return self.classifier_.predict(self.scaler_.transform(np.asarray(features, dtype=np.float32)))

    def score(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Micro (per-record) accuracy over rows with a known label."""
        labels = np.asarray(labels)
        known = labels != -1
        return float(np.mean(self.predict(features[known]) == labels[known]))


class NearestNeighbourProbe:
    """1-NN by cosine similarity over FAISS (exact inner product on L2-normalised features)."""

    def fit(self, features: np.ndarray, labels: np.ndarray) -> NearestNeighbourProbe:
        """Index the keys ``[N, D]`` with their labels ``[N]``."""
        features, labels = _check_xy(features, labels)
        features = features.copy()
        faiss.normalize_L2(features)
        self.index_ = faiss.IndexFlatIP(features.shape[1])
        self.index_.add(features)
        self.labels_ = labels
        return self

    def kneighbors(self, features: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities ``[M, k]`` and key positions ``[M, k]`` of the k nearest keys."""
        queries = np.ascontiguousarray(features, dtype=np.float32).copy()
        faiss.normalize_L2(queries)
        return self.index_.search(queries, k)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Label of the nearest key for each query row."""
        _, positions = self.kneighbors(features, 1)
        return self.labels_[positions[:, 0]]

    def score(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Micro accuracy of the nearest key's label over rows with a known label."""
        labels = np.asarray(labels)
        known = labels != -1
        return float(np.mean(self.predict(features[known]) == labels[known]))
