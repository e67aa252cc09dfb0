"""From a query's best hits to one name per rank, a calibrated confidence per rank and a novelty score.

**Vote.** Each hit weighs ``exp((similarity - best similarity) / tau)``: with a small ``tau`` the top
hit decides, a larger one lets several close relatives outvote a single one. Only the best hit of each
species votes, so a species with 300 stored haplotypes does not drown one with 3. Ranks are decided top
down (order, family, ...), each among the hits that agree with the names already chosen, so the predicted
lineage is always consistent. A hit without a name at a rank neither votes there nor is excluded by it.

**Calibration.** Per rank, a logistic regression turns features of the vote (best similarity, the
winner's similarity, its share of the vote, the aligned length as a share of a full 658 bp barcode and
its product with the winner's similarity, for partial queries) into the probability that the name is
right; another turns the k-mer similarity of the closest reference (on the identity scale; full-length
queries) or the best identity, the aligned share, their product and the lead of the best hit over another
species' (partial queries) into the probability that the query's species is absent from the reference. Both are fitted on queries simulated from the reference itself (leave one record out: seen
species; leave a whole species out: new species; a quarter of them cut to fragments of 80-499 nt), so
they act as rank-specific identity thresholds learned from the reference, for the query's length: a
150 nt exact match is not "novel" because its k-mer profile is a quarter of a barcode's, and a short
poor match is not "confident".

**When the reference cannot teach.** If every simulated query was named right at a rank (a reference
with one species, or one genus), there is nothing to learn a threshold from; the model is then fitted
on made-up examples of :data:`PRIOR_IDENTITY` thresholds (COI distances commonly used for each rank)
instead, read on the alignment identity alone, so a query
at 80% identity to the only species is not named that species with high confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bioscan5m.data.schema import TAXONOMIC_RANKS

#: Ranks named by identification, from phylum to species.
RANKS: tuple[str, ...] = TAXONOMIC_RANKS
SPECIES = RANKS.index("species")
#: Cap of the lead of the best hit over another species' (when no other species is among the hits).
MAX_SPECIES_GAP = 0.1
#: A full Folmer-region barcode, for the aligned share of a query.
FULL_LENGTH = 658
#: Identity at or above which a name at each rank is usually right in COI (used only when the reference
#: has no wrong simulated answer to learn from); species: the 2-3% threshold of BOLD and most studies.
PRIOR_IDENTITY = {"phylum": 0.70, "class": 0.75, "order": 0.80, "family": 0.85, "subfamily": 0.87, "genus": 0.90,
                  "species": 0.97}


@dataclass
class Votes:
    """Outcome of :func:`vote` for Q queries over R = len(RANKS) ranks.

    ``labels`` (Q, R) int codes (-1: no name); ``share`` (Q, R) winner's fraction of the vote weight;
    ``label_similarity`` (Q, R) best similarity of a hit carrying the winner; ``best`` (Q,) best
    similarity (0 without hits); ``nearest`` (Q,) reference index of the best hit (-1 if none);
    ``kmer_similarity`` (Q,) k-mer similarity of the closest reference on the identity scale;
    ``aligned_length`` (Q,) aligned length of the best hit in nt.
    """

    labels: np.ndarray
    share: np.ndarray
    label_similarity: np.ndarray
    best: np.ndarray
    nearest: np.ndarray
    kmer_similarity: np.ndarray
    aligned_length: np.ndarray

    partial: np.ndarray | None = None
    species_gap: np.ndarray | None = None

    @property
    def aligned_share(self) -> np.ndarray:
        """Aligned length as a share of a full barcode, in [0, 1]."""
        return np.clip(self.aligned_length / FULL_LENGTH, 0.0, 1.0)

    def rows(self, mask: np.ndarray) -> Votes:
        """The votes of the queries where ``mask`` is true."""
        return Votes(*(None if v is None else v[mask] for v in (
            self.labels, self.share, self.label_similarity, self.best, self.nearest, self.kmer_similarity,
            self.aligned_length, self.partial, self.species_gap)))

    def features(self, rank: int, partial: bool = False) -> np.ndarray:
        """Features of the name chosen at one rank column, float64: best similarity, the winner's, its
        vote share; for partial queries also the aligned share and its product with the winner's."""
        winner = self.label_similarity[:, rank]
        columns = [self.best, winner, self.share[:, rank]]
        if partial:
            columns += [self.aligned_share, winner * self.aligned_share]
        return np.column_stack(columns).astype(np.float64)

    def novelty_features(self, partial: bool = False) -> np.ndarray:
        """Features for the novelty model, float64: the k-mer similarity (full-length queries); the best
        identity, the aligned share, their product and the lead of the best hit over the best hit of
        another species (partial queries)."""
        if not partial:
            return self.kmer_similarity[:, None].astype(np.float64)
        gap = np.zeros(len(self.best)) if self.species_gap is None else self.species_gap
        return np.column_stack([self.best, self.aligned_share, self.best * self.aligned_share, gap]).astype(np.float64)


def vote(similarity: np.ndarray, candidates: np.ndarray, labels: np.ndarray, tau: float,
         kmer_similarity: np.ndarray | None = None, aligned_length: np.ndarray | None = None,
         partial: np.ndarray | None = None) -> Votes:
    """Similarity-weighted, lineage-consistent vote over each query's hits (see module docstring).

    ``similarity`` (Q, C) in [0, 1] (-inf: no hit), ``candidates`` (Q, C) reference indices (-1: none),
    ``labels`` (H, R) reference label codes, ``tau`` > 0; ``kmer_similarity`` (Q,) is passed through to
    the result (default: the best similarity); ``aligned_length`` (Q, C) in nt (default: a full barcode);
    ``partial`` (Q,) marks partial barcodes, calibrated apart (default: none).
    """
    q, c = candidates.shape
    n_ranks = labels.shape[1]
    order = np.argsort(-np.where(candidates >= 0, similarity, -np.inf), axis=1, kind="stable")
    similarity = np.take_along_axis(similarity, order, 1).astype(np.float64)
    candidates = np.take_along_axis(candidates, order, 1)
    valid = (candidates >= 0) & np.isfinite(similarity)
    hit_labels = np.where(valid[:, :, None], labels[np.maximum(candidates, 0)], -2)  # (Q, C, R)
    best = np.where(valid[:, 0], similarity[:, 0], 0.0)
    weight = np.where(valid, np.exp((np.where(valid, similarity, 0.0) - best[:, None]) / tau), 0.0)
    species = hit_labels[:, :, SPECIES]
    earlier = np.tril(np.ones((c, c), dtype=bool), -1)  # [a, b]: b comes before a
    repeated = ((species[:, :, None] == species[:, None, :]) & (species[:, :, None] >= 0) & earlier).any(2)
    weight[repeated] = 0.0
    total_weight = np.maximum(weight.sum(1), 1e-300)

    out_labels = np.full((q, n_ranks), -1, dtype=np.int64)
    share = np.zeros((q, n_ranks))
    label_similarity = np.zeros((q, n_ranks))
    consistent = valid.copy()
    rows = np.arange(q)
    for rank in range(n_ranks):
        names = hit_labels[:, :, rank]
        eligible = consistent & (names >= 0)
        same = (names[:, :, None] == names[:, None, :]).astype(np.float64)
        tally = np.einsum("qab,qb->qa", same, weight * eligible)
        # Ties go to the name of the better hit.
        winner = np.argmax(np.where(eligible, tally + 1e-9 * weight, -1.0), axis=1)
        has = eligible.any(1)
        chosen = np.where(has, names[rows, winner], -1)
        out_labels[:, rank] = chosen
        share[:, rank] = np.where(has, tally[rows, winner] / total_weight, 0.0)
        carries = valid & (names == chosen[:, None]) & has[:, None]
        label_similarity[:, rank] = np.where(has, np.where(carries, similarity, -np.inf).max(1), 0.0)
        consistent &= (names == chosen[:, None]) | (names < 0) | ~has[:, None]
    # How far the best hit leads the best hit of another species (capped: none among the hits).
    other = valid & (species >= 0) & (species != out_labels[:, SPECIES][:, None])
    runner_up = np.where(other, similarity, -np.inf).max(1)
    species_gap = np.clip(best - runner_up, 0.0, MAX_SPECIES_GAP)
    nearest = np.where(valid[:, 0], candidates[:, 0], -1)
    kmer_similarity = best if kmer_similarity is None else np.where(np.isfinite(kmer_similarity), kmer_similarity, 0.0)
    if aligned_length is None:
        length = np.full(q, float(FULL_LENGTH))
    else:
        length = np.where(valid[:, 0], np.take_along_axis(aligned_length, order, 1)[:, 0], 0).astype(np.float64)
    return Votes(out_labels, share, label_similarity, best, nearest, np.asarray(kmer_similarity, dtype=np.float64),
                 length, None if partial is None else np.asarray(partial, dtype=bool), species_gap)


def _prior_votes(threshold: float, n_ranks: int, n: int = 400) -> Votes:
    """Votes of ``n`` made-up queries whose single hit is at identities spread over [0.6, 1], half of
    them within 5 points of ``threshold`` (where the prior's curve must be steep). Their k-mer similarity
    and aligned length are random, so the fitted model reads the identity alone."""
    rng = np.random.default_rng(0)
    best = np.sort(np.concatenate([np.linspace(0.6, 1.0, n // 2), np.linspace(threshold - 0.05,
                                                                               min(1.0, threshold + 0.05), n - n // 2)]))
    ones = np.ones((n, n_ranks))
    return Votes(np.zeros((n, n_ranks), np.int64), ones, best[:, None] * ones, best, np.zeros(n, np.int64),
                 rng.uniform(0.6, 1.0, n), rng.uniform(100, FULL_LENGTH, n))


class LogisticCalibrator:
    """A standardised logistic regression stored as plain numbers (JSON-friendly); constant if one class."""

    def __init__(self, mean=None, scale=None, coef=None, intercept: float = 0.0) -> None:
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self.coef = None if coef is None else np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)

    def fit(self, x: np.ndarray, y: np.ndarray, balanced: bool = False) -> LogisticCalibrator:
        """Fit P(y=1 | x) (``balanced``: as if both outcomes were equally common); with a single class,
        store its smoothed frequency as a constant."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=bool)
        if y.all() or not y.any():
            rate = (y.sum() + 1) / (len(y) + 2)
            self.mean = self.scale = self.coef = None
            self.intercept = float(np.log(rate / (1 - rate)))
            return self
        self.mean = x.mean(0)
        self.scale = np.where(x.std(0) > 0, x.std(0), 1.0)
        model = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced" if balanced else None)
        model.fit((x - self.mean) / self.scale, y)
        self.coef, self.intercept = model.coef_[0], float(model.intercept_[0])
        return self

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(y=1 | x) for each row of ``x``, float64 ``(n,)``. The logit is summed column by column, not by a
        matrix product, whose last bits depend on how many rows it is given."""
        logit = np.full(len(x), self.intercept)
        if self.coef is not None:
            standard = (x - self.mean) / self.scale
            for column, weight in enumerate(self.coef):
                logit = logit + standard[:, column] * weight
        return 1.0 / (1.0 + np.exp(-logit))

    def to_dict(self) -> dict:
        as_list = (lambda a: None if a is None else [float(v) for v in a])
        return {"mean": as_list(self.mean), "scale": as_list(self.scale), "coef": as_list(self.coef),
                "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict) -> LogisticCalibrator:
        return cls(data["mean"], data["scale"], data["coef"], data["intercept"])


class CalibrationPart:
    """Per-rank correctness models plus the novelty model for one kind of query (full or partial)."""

    def __init__(self, ranks: list[LogisticCalibrator] | None = None,
                 novelty: LogisticCalibrator | None = None, partial: bool = False) -> None:
        self.ranks = ranks or []
        self.novelty = novelty or LogisticCalibrator()
        self.partial = partial
        self.prior_reads_identity = False  # set when the novelty model is the prior's, on identity alone

    def fit(self, votes: Votes, truth: np.ndarray, novel: np.ndarray) -> CalibrationPart:
        """``truth`` (Q, R) true label codes (-1: unknown, left out of that rank); ``novel`` (Q,) bool."""
        self.ranks = []
        for rank in range(truth.shape[1]):
            known = truth[:, rank] >= 0
            correct = votes.labels[known, rank] == truth[known, rank]
            x = votes.features(rank, self.partial)[known]
            if correct.all():  # nothing wrong to learn a threshold from: fall back on the prior
                prior = _prior_votes(PRIOR_IDENTITY[RANKS[rank]], truth.shape[1])
                x, correct = prior.features(rank, self.partial), prior.best >= PRIOR_IDENTITY[RANKS[rank]]
            self.ranks.append(LogisticCalibrator().fit(x, correct))
        x = votes.novelty_features(self.partial)
        if novel.all() or not novel.any():  # no new species could be simulated (one-species reference)
            prior = _prior_votes(PRIOR_IDENTITY["species"], truth.shape[1])
            # The prior reads identity: for full-length queries, use it in place of the k-mer similarity.
            x = prior.novelty_features(True) if self.partial else prior.best[:, None]
            novel = prior.best < PRIOR_IDENTITY["species"]
            self.prior_reads_identity = not self.partial
        # The mix of seen and new species among the simulated queries is arbitrary: score as if even.
        self.novelty = LogisticCalibrator().fit(x, novel, balanced=True)
        return self

    def confidence(self, votes: Votes) -> np.ndarray:
        out = np.column_stack([model.probability(votes.features(rank, self.partial))
                               for rank, model in enumerate(self.ranks)])
        return np.where(votes.labels >= 0, out, 0.0)

    def novelty_score(self, votes: Votes) -> np.ndarray:
        x = votes.best[:, None] if self.prior_reads_identity else votes.novelty_features(self.partial)
        return np.where(votes.nearest >= 0, self.novelty.probability(x), 1.0)

    def to_dict(self) -> dict:
        return {"ranks": [m.to_dict() for m in self.ranks], "novelty": self.novelty.to_dict(),
                "partial": self.partial, "prior_reads_identity": self.prior_reads_identity}

    @classmethod
    def from_dict(cls, data: dict) -> CalibrationPart:
        part = cls([LogisticCalibrator.from_dict(m) for m in data["ranks"]],
                   LogisticCalibrator.from_dict(data["novelty"]), data["partial"])
        part.prior_reads_identity = data["prior_reads_identity"]
        return part


class Calibration:
    """Confidence and novelty models fitted on simulated queries, one set for full-length queries and one
    for partial barcodes (``Votes.partial``): the same identity means more from 650 nt than from 150."""

    def __init__(self, full: CalibrationPart | None = None, partial: CalibrationPart | None = None) -> None:
        self.full = full or CalibrationPart()
        self.partial = partial or CalibrationPart(partial=True)

    def fit(self, votes: Votes, truth: np.ndarray, novel: np.ndarray) -> Calibration:
        """``truth`` (Q, R) true label codes (-1: unknown, left out of that rank); ``novel`` (Q,) bool.
        Without partial queries among them, the partial models are the full-length ones' rules (prior)."""
        partial = _partial(votes)
        self.full = CalibrationPart().fit(votes.rows(~partial), truth[~partial], novel[~partial])
        self.partial = CalibrationPart(partial=True).fit(votes.rows(partial), truth[partial], novel[partial])
        return self

    def confidence(self, votes: Votes) -> np.ndarray:
        """P(name right) per query and rank, ``(Q, R)``; 0 where no name was given."""
        partial = _partial(votes)
        out = np.zeros(votes.labels.shape)
        for part, mask in ((self.full, ~partial), (self.partial, partial)):
            if mask.any():
                out[mask] = part.confidence(votes.rows(mask))
        return out

    def novelty_score(self, votes: Votes) -> np.ndarray:
        """P(species absent from the reference) per query, ``(Q,)``; 1 for a query without any hit."""
        partial = _partial(votes)
        out = np.ones(len(votes.best))
        for part, mask in ((self.full, ~partial), (self.partial, partial)):
            if mask.any():
                out[mask] = part.novelty_score(votes.rows(mask))
        return out

    def to_dict(self) -> dict:
        return {"full": self.full.to_dict(), "partial": self.partial.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(CalibrationPart.from_dict(data["full"]), CalibrationPart.from_dict(data["partial"]))


def _partial(votes: Votes) -> np.ndarray:
    return np.zeros(len(votes.best), bool) if votes.partial is None else votes.partial
