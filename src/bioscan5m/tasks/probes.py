"""Probes of frozen DNA embeddings: how much taxonomy can a simple classifier read off them?

* :class:`LinearProbe`: softmax regression on standardised features (the paper's linear probe: train on
  ``train``, score species on ``test``), trained through the project's one engine (AdamW, mini-batches, GPU
  when there is one), so it scales to BIOSCAN-5M's 289k records and 11,846 species.
* :class:`NearestNeighbourProbe`: 1-NN by cosine similarity (exact FAISS inner product on L2-normalised
  features); the paper's 1-NN probe queries ``test_unseen`` against ``train`` keys and scores genus.

Both follow scikit-learn's ``fit`` / ``predict`` / ``score`` shape; rows whose label is missing (``-1``) are
left out when fitting. :func:`run_probe` is the ``bioscan5m probe`` command: records → embeddings (cached)
→ probe → micro and macro accuracy per rank (:mod:`bioscan5m.tasks.metrics`) in a TSV.

A classifier trained at one rank is also scored at the ranks above it: each class is mapped to its
*lineage* (the genus, family and order its training records carry), see :func:`class_lineage`.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from bioscan5m.data.partition import BY_RECORD, load_partition
from bioscan5m.data.schema import ID_COLUMN, SCORED_RANKS, TARGET_RANKS, check_rank
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_write
from bioscan5m.tasks.metrics import accuracy

log = logging.getLogger(__name__)

PROBES: tuple[str, ...] = ("linear", "knn")
#: The paper's protocol for each probe: (training/key split, test/query split, headline rank).
PAPER_PROTOCOL: dict[str, tuple[str, str, str]] = {
    "linear": ("train", "test", "species"),
    "knn": ("train", "test_unseen", "genus"),
}
#: Columns of every per-rank score table written by this module and by fine-tuning.
SCORE_COLUMNS: tuple[str, ...] = ("rank", "micro", "macro", "queries", "classes")


# --------------------------------------------------------------------------------------------- estimators


def _check_xy(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.ascontiguousarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise BioscanError(f"features {features.shape} and labels {labels.shape} do not match")
    known = labels != -1
    if not known.any():
        raise BioscanError("no labelled rows to fit")
    return features[known], labels[known]


def _softmax_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], ctx) -> dict:
    """Engine step of the linear probe: cross-entropy of one mini-batch of standardised features."""
    features, targets = (tensor.to(ctx.device) for tensor in batch)
    logits = model(features)
    return {"loss": F.cross_entropy(logits.float(), targets),
            "accuracy": (logits.argmax(-1) == targets).float().mean()}


class _ClassifierMixin:
    """``score`` of a probe with ``predict``, as scikit-learn's ClassifierMixin."""

    def score(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Micro (per-record) accuracy of :meth:`predict` over rows with a known label."""
        labels = np.asarray(labels)
        known = labels != -1
        return float(np.mean(self.predict(np.asarray(features)[known]) == labels[known]))


class LinearProbe(_ClassifierMixin):
    """Multinomial logistic regression on standardised frozen features (the paper's linear probe).

    Trained with AdamW on mini-batches through :func:`bioscan5m.train.engine.train` (cosine schedule).
    epochs: passes over the training rows; batch_size: rows per step; lr: peak learning rate;
    weight_decay: L2 penalty on the weights (AdamW's decoupled form); device: "auto" (a GPU when there is
    one), "cpu", "cuda"....

    After ``fit``: ``classes_ [C]`` (the distinct labels), ``mean_`` / ``scale_ [D]`` (standardisation),
    ``coef_ [C, D]`` and ``intercept_ [C]``; ``decision_function(X) = standardise(X) @ coef_.T + intercept_``.
    """

    def __init__(self, epochs: int = 30, batch_size: int = 256, lr: float = 1e-2, weight_decay: float = 1e-4,
                 device: str = "auto", seed: int = 0) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.seed = seed

    def fit(self, features: np.ndarray, labels: np.ndarray) -> LinearProbe:
        """Fit on features ``[N, D]`` and integer labels ``[N]`` (``-1`` rows are ignored)."""
        from bioscan5m.train.engine import TrainConfig, train

        features, labels = _check_xy(features, labels)
        if self.epochs < 1:
            raise BioscanError(f"the linear probe needs at least 1 epoch, got {self.epochs}", value=self.epochs)
        self.classes_, targets = np.unique(labels, return_inverse=True)
        self.mean_ = features.mean(0)
        scale = features.std(0)
        self.scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)  # constant columns stay 0
        inputs = torch.from_numpy(self._standardise(features))
        targets = torch.from_numpy(targets.astype(np.int64))
        linear = nn.Linear(inputs.shape[1], len(self.classes_))
        nn.init.zeros_(linear.weight)  # a convex problem: start from the uniform prediction, seed-free
        nn.init.zeros_(linear.bias)
        batch_size = min(self.batch_size, len(inputs))
        steps = self.epochs * (len(inputs) // batch_size)
        with tempfile.TemporaryDirectory(prefix="bioscan5m-probe-") as run_dir:
            config = TrainConfig(out_dir=run_dir, steps=steps, batch_size=batch_size, lr=self.lr,
                                 weight_decay=self.weight_decay, schedule="cosine", warmup=0.0, grad_clip=None,
                                 precision="fp32", device=self.device, seed=self.seed, log_every=max(steps, 1),
                                 quiet=True)
            # Items are row numbers; the collate gathers a whole batch with one fancy index (fast).
            train(linear, _softmax_step, range(len(inputs)), config,
                  collate_fn=lambda rows: (inputs[rows], targets[rows]))
        self.coef_ = linear.weight.detach().cpu().numpy()
        self.intercept_ = linear.bias.detach().cpu().numpy()
        return self

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, dtype=np.float32) - self.mean_) / self.scale_).astype(np.float32)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Class scores (logits) ``float32 [N, C]``, columns in the order of ``classes_``."""
        return self._standardise(features) @ self.coef_.T + self.intercept_

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, C]`` (softmax of the scores)."""
        scores = self.decision_function(features)
        scores -= scores.max(1, keepdims=True)
        probabilities = np.exp(scores)
        return probabilities / probabilities.sum(1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted label ``[N]`` for each row of ``features``."""
        return self.classes_[self.decision_function(features).argmax(1)]



class NearestNeighbourProbe(_ClassifierMixin):
    """1-NN by cosine similarity over FAISS (exact inner product on L2-normalised features)."""

    def fit(self, features: np.ndarray, labels: np.ndarray) -> NearestNeighbourProbe:
        """Index the keys ``[N, D]`` with their labels ``[N]`` (keys labelled ``-1`` are left out)."""
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



# --------------------------------------------------------------------------------------------- ranks


def scored_ranks(rank: str) -> tuple[str, ...]:
    """The ranks a classifier trained at ``rank`` is scored at: the scored ranks above it, then itself.

    >>> scored_ranks("species")
    ('order', 'family', 'subfamily', 'genus', 'species')
    """
    position = TARGET_RANKS.index(check_rank(rank))
    return tuple(r for r in SCORED_RANKS if TARGET_RANKS.index(r) < position) + (rank,)


def class_lineage(records, rank: str, ranks: Sequence[str]) -> dict[str, np.ndarray]:
    """For every class of ``rank`` (its label map over the whole source), its name at each of ``ranks``.

    The name at a higher rank is the most common one among the records of that class (a species sits in
    one genus, but a mislabelled record must not decide it). Returns ``{rank: object array [C]}``, None
    where no record of the class carries that rank. ``records`` must hold the ``rank`` and ``ranks`` columns.
    """
    names = records.label_map(rank).names
    codes = records.labels(rank)
    lineage: dict[str, np.ndarray] = {}
    for other in ranks:
        if other == rank:
            lineage[other] = np.array(names, dtype=object)
            continue
        table = pd.DataFrame({"code": codes, "name": records.column(other)})
        table = table[(table["code"] >= 0) & table["name"].notna()]
        counts = table.groupby(["code", "name"], sort=True).size().reset_index(name="n")
        best = counts.sort_values(["code", "n"], ascending=[True, False], kind="stable").drop_duplicates("code")
        column = np.full(len(names), None, dtype=object)
        column[best["code"].to_numpy()] = best["name"].to_numpy(dtype=object)
        lineage[other] = column
    return lineage


def score_by_rank(truth: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Micro and macro accuracy (in [0, 1]) at each rank of ``predicted``: columns :data:`SCORE_COLUMNS`.

    truth / predicted: ``{rank: names [N]}`` (None = missing; a missing truth leaves the record out at
    that rank, a missing prediction counts as wrong). Ranks where no record has a true name are left out.
    """
    rows = [{"rank": rank, **accuracy(_names(truth[rank]), _names(predicted[rank]))} for rank in predicted]
    return pd.DataFrame([row for row in rows if row["queries"]], columns=list(SCORE_COLUMNS))


def accuracy_at(scores: pd.DataFrame, rank: str, average: str = "micro") -> float:
    """The ``average`` (micro or macro) accuracy in [0, 1] at ``rank`` of a table of :data:`SCORE_COLUMNS`."""
    row = scores[scores["rank"] == rank]
    if row.empty:
        raise BioscanError(f"no score at rank {rank!r}", value=rank)
    return float(row[average].iloc[0])


def _names(values) -> np.ndarray:
    return np.asarray(values, dtype=object)


# --------------------------------------------------------------------------------------------- protocols


def linear_probe(train_features: np.ndarray, train_records, test_features: np.ndarray, test_records,
                 rank: str = "species", **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit a :class:`LinearProbe` at ``rank`` on the training records and score it on the test records.

    Features are row-aligned with their records. Test predictions are scored at ``rank`` and, through
    the lineage of the predicted class, at every scored rank above it. ``options`` go to LinearProbe.
    Returns ``(scores, predictions)``: :data:`SCORE_COLUMNS`, and one row per test record (processid, then
    ``<rank>`` and ``predicted_<rank>`` for each scored rank).
    """
    ranks = scored_ranks(rank)
    labels = train_records.labels(rank)
    if not (labels >= 0).any():
        raise BioscanError(f"none of the {len(train_records)} training records has a {rank} label",
                           path=train_records.source, value=rank)
    probe = LinearProbe(**options).fit(train_features, labels)
    lineage = class_lineage(train_records, rank, ranks)
    predicted_class = probe.predict(test_features)
    predicted = {r: lineage[r][predicted_class] for r in ranks}
    return score_predictions(test_records, predicted)


def nearest_neighbour_probe(key_features: np.ndarray, key_records, query_features: np.ndarray, query_records,
                            ranks: Sequence[str] = SCORED_RANKS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """1-NN by cosine: each query takes the taxonomy of its most similar key, scored at each of ``ranks``.

    Features are row-aligned with their records. Returns ``(scores, predictions)`` as :func:`linear_probe`.
    """
    if len(key_records) == 0:
        raise BioscanError("no key records to search", path=key_records.source)
    probe = NearestNeighbourProbe().fit(key_features, np.arange(len(key_records)))
    nearest = probe.predict(query_features)
    predicted = {r: key_records.column(r)[nearest] for r in ranks}
    return score_predictions(query_records, predicted)


def score_predictions(records, predicted: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score predicted names ``{rank: [N]}`` of ``records`` against their own labels: ``(scores,
    predictions)`` as :func:`linear_probe` returns them."""
    truth = {rank: records.column(rank) for rank in predicted}
    table = {ID_COLUMN: records.ids}
    for rank in predicted:
        table[rank] = truth[rank]
        table[f"predicted_{rank}"] = predicted[rank]
    return score_by_rank(truth, predicted), pd.DataFrame(table)


# --------------------------------------------------------------------------------------------- embeddings


def encoder_slug(name: str) -> str:
    """A file-name-safe version of an encoder name (for cache folders)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "encoder"


# --------------------------------------------------------------------------------------------- the command


@dataclass
class ProbeResult:
    """Scores of one probe run: per-rank micro/macro accuracy, the files written, and the set-up."""

    probe: str
    encoder: str
    rank: str
    scores: pd.DataFrame
    predictions: pd.DataFrame = field(repr=False)
    n_train: int
    n_test: int
    files: dict[str, Path] = field(default_factory=dict)

    def accuracy(self, rank: str | None = None, average: str = "micro") -> float:
        """Accuracy in [0, 1] at ``rank`` (default: the probe's headline rank)."""
        return accuracy_at(self.scores, rank or self.rank, average)


def check_labelled(records, rank: str, what: str, split: str | None) -> None:
    """Raise a BioscanError when none of ``records`` carries a ``rank`` label."""
    where = f"split {split!r}" if split else "these records"
    if len(records) == 0:
        raise BioscanError(f"{where} has no records with a DNA barcode ({what})", value=split)
    if not (records.labels(rank) >= 0).any():
        raise BioscanError(f"{where} has no {rank} labels ({what}); choose another split or rank",
                           path=records.source, value=split)


def run_probe(
    probe: str,
    source: str | os.PathLike[str],
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    rank: str | None = None,
    train_split: str | None = None,
    test_split: str | None = None,
    holdout: float | None = None,
    holdout_by: str | None = None,
    seed: int = 0,
    device: str | None = None,
    batch_size: int | None = None,
    probe_options: Mapping[str, object] | None = None,
) -> ProbeResult:
    """The ``bioscan5m probe`` command: embed the records of ``source`` with ``model`` and probe them.

    probe: "linear" (trained at ``rank``, default species; default splits train → test) or "knn" (1-NN
    cosine, every scored rank, headline ``rank`` default genus; default splits train → test_unseen).
    holdout: for sources without splits, the fraction of records to test on, chosen by ``holdout_by``
    (default: "record" for linear, "species" for knn: whole species held out, as unseen species; see
    :mod:`bioscan5m.data.partition`).
    Writes ``<out>/<probe>_probe.tsv`` (scores, accuracies in [0, 1]) and
    ``<out>/<probe>_probe_predictions.tsv``; embeddings are cached in the ``embeddings`` cache folder.
    """
    if probe not in PROBES:
        raise BioscanError(f"unknown probe {probe!r}; choose from {', '.join(PROBES)}", value=probe)
    paper_train, paper_test, paper_rank = PAPER_PROTOCOL[probe]
    rank = check_rank(rank or paper_rank)
    if holdout is None:
        train_split, test_split = train_split or paper_train, test_split or paper_test
    holdout_by = holdout_by or (BY_RECORD if probe == "linear" else "species")
    ranks = scored_ranks(rank) if probe == "linear" else tuple(dict.fromkeys((*SCORED_RANKS, rank)))
    train_records, test_records = load_partition(source, train_split, test_split, columns=ranks,
                                                 holdout=holdout, holdout_by=holdout_by, seed=seed)
    check_labelled(train_records, rank, "training records" if probe == "linear" else "keys", train_split)
    check_labelled(test_records, rank, "test records" if probe == "linear" else "queries", test_split)

    from bioscan5m.embeddings.encoders import create_encoder
    from bioscan5m.embeddings.store import embed_records, embeddings_cache_entry

    encoder = create_encoder(model, "dna", device=device)
    out = Path(out)
    label = encoder_slug(encoder.name)
    train_features = embed_records(train_records, encoder, embeddings_cache_entry(label, train_records),
                                   device=device, batch_size=batch_size)
    test_features = embed_records(test_records, encoder, embeddings_cache_entry(label, test_records),
                                  device=device, batch_size=batch_size)
    if probe == "linear":
        options = {"device": device or "auto", "seed": seed, **(probe_options or {})}
        scores, predictions = linear_probe(train_features, train_records, test_features, test_records, rank,
                                           **options)
    else:
        scores, predictions = nearest_neighbour_probe(train_features, train_records, test_features, test_records,
                                                      ranks)
    files = {"scores": out / f"{probe}_probe.tsv", "predictions": out / f"{probe}_probe_predictions.tsv"}
    write_tsv(scores, files["scores"])
    write_tsv(predictions, files["predictions"])
    return ProbeResult(probe, encoder.name, rank, scores, predictions, len(train_records), len(test_records), files)


def write_tsv(table: pd.DataFrame, dest: str | os.PathLike[str]) -> Path:
    """Write ``table`` as a tab-separated file with a header (atomically; missing values empty)."""
    with atomic_write(dest) as handle:
        table.to_csv(handle, sep="\t", index=False, lineterminator="\n")
    return Path(dest)
