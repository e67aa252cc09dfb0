"""The project's one implementation of classification metrics: micro / macro top-1, top-k, AUROC.

Labels may be integer class codes (``-1`` = missing, as :meth:`Records.labels` gives them) or names
(``None``, NaN or ``""`` = missing). Queries whose true label is missing are left out of every score;
a missing *prediction* simply counts as wrong.

* **micro** accuracy: the fraction of labelled queries predicted right (big classes weigh more).
* **macro** accuracy: the mean over true classes of each class's accuracy (every class weighs the same),
  as the BIOSCAN-5M paper reports for retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bioscan5m.errors import BioscanError


def labelled_mask(y_true: Sequence | np.ndarray) -> np.ndarray:
    """bool ``(n,)``: True where the true label is present (not -1, None, NaN or empty)."""
    y_true = np.asarray(y_true)
    if y_true.dtype.kind in "iu":
        return y_true >= 0
    if y_true.dtype.kind == "f":
        return ~np.isnan(y_true) & (y_true >= 0)
    return np.array([not _is_missing(value) for value in y_true], dtype=bool)


def micro_accuracy(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray) -> float:
    """Fraction of labelled queries whose prediction equals the truth, in [0, 1] (NaN if none labelled)."""
    y_true, y_pred, keep = _paired(y_true, y_pred)
    if not keep.any():
        return float("nan")
    return float(np.mean(y_true[keep] == y_pred[keep]))


def macro_accuracy(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray) -> float:
    """Mean over true classes of per-class accuracy, in [0, 1] (NaN if no query is labelled)."""
    y_true, y_pred, keep = _paired(y_true, y_pred)
    if not keep.any():
        return float("nan")
    truth = y_true[keep]
    correct = (truth == y_pred[keep]).astype(np.float64)
    _, class_of = np.unique(truth.astype(str) if truth.dtype == object else truth, return_inverse=True)
    per_class = np.bincount(class_of, weights=correct) / np.bincount(class_of)
    return float(per_class.mean())


def accuracy(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray) -> dict[str, float | int]:
    """``{"micro", "macro", "queries", "classes"}`` for one rank (queries/classes: labelled ones only)."""
    keep = labelled_mask(y_true)
    truth = np.asarray(y_true)[keep]
    return {
        "micro": micro_accuracy(y_true, y_pred),
        "macro": macro_accuracy(y_true, y_pred),
        "queries": int(keep.sum()),
        "classes": len(np.unique(truth.astype(str) if truth.dtype == object else truth)),
    }


def topk_accuracy(y_true: Sequence | np.ndarray, ranked: np.ndarray, k: int, *, average: str = "micro") -> float:
    """Top-k accuracy: a query counts as right when its true label is among its first ``k`` guesses.

    ``ranked``: ``(n, m)`` guessed labels per query, best first, ``m >= k`` (padding: -1 or None).
    ``average``: ``"micro"`` (per query) or ``"macro"`` (mean per true class).
    """
    ranked = np.asarray(ranked)
    y_true = np.asarray(y_true)
    if ranked.ndim != 2 or len(ranked) != len(y_true):
        raise BioscanError(f"ranked guesses must have shape (n={len(y_true)}, m), got {ranked.shape}")
    if not 1 <= k <= ranked.shape[1]:
        raise BioscanError(f"top-k needs 1 <= k <= {ranked.shape[1]} guesses per query, got k={k}", value=k)
    hit = (ranked[:, :k] == y_true[:, None]).any(axis=1)
    # A hit predicts the truth and a miss predicts nothing, so top-k reduces to top-1 on these predictions.
    y_pred = np.where(hit, y_true, None if y_true.dtype == object else -2)
    if average == "micro":
        return micro_accuracy(y_true, y_pred)
    if average == "macro":
        return macro_accuracy(y_true, y_pred)
    raise BioscanError(f"average must be 'micro' or 'macro', not {average!r}", value=average)


def auroc(is_positive: Sequence | np.ndarray, score: Sequence | np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for telling positives (True) from negatives, in [0, 1].

    0.5 is chance; NaN when only one of the two groups is present.
    """
    from sklearn.metrics import roc_auc_score

    is_positive = np.asarray(is_positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if is_positive.shape != score.shape:
        raise BioscanError(f"{len(is_positive)} outcomes but {len(score)} scores")
    if is_positive.all() or not is_positive.any():
        return float("nan")
    return float(roc_auc_score(is_positive, score))


def _is_missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def _paired(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise BioscanError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if (y_true.dtype == object) != (y_pred.dtype == object) and len(y_true):
        y_true, y_pred = y_true.astype(object), y_pred.astype(object)
    return y_true, y_pred, labelled_mask(y_true)
