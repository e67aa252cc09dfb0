"""Dividing records into a training (or reference) side and a test (or query) side.

By BIOSCAN-5M's split names (:func:`load_partition`), or, for sources without splits, by a seeded hold-out:
single records, or whole taxa, so that every held-out record is of a taxon the training side never saw
(the paper's unseen species). The one choice of unseen taxa (:func:`unseen_taxa`) serves both the probes'
hold-out (:func:`holdout_mask`) and the identification benchmark's query roles (:func:`holdout_split`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bioscan5m.data.schema import DNA_COLUMN, SPLIT_COLUMN, TAXONOMIC_RANKS, parse_splits
from bioscan5m.errors import BioscanError

#: ``holdout_by`` value that holds out single records (any other value names a rank).
BY_RECORD = "record"
#: Roles of :func:`holdout_split`.
REFERENCE, SEEN, UNSEEN = "reference", "seen", "unseen"


def unseen_taxa(taxon: np.ndarray, parent: np.ndarray, fraction: float, rng: np.random.Generator, *,
                of: str = "records") -> list:
    """Whole taxa to hide, drawn with ``rng`` among the named taxa whose parent (e.g. genus) has >= 2 taxa.

    taxon / parent: the names ``[N]`` of every record (None, NaN or "" = unnamed); a taxon's parent is the
    first one its records name. of="records": taxa in a seeded order until about ``fraction`` of the N
    records are hidden, each parent keeping at least one of its taxa (so it can still be recognised).
    of="taxa": a seeded ``fraction`` of the eligible taxa, drawn at once (BIOSCAN-5M's unseen species).
    """
    if of not in ("records", "taxa"):
        raise BioscanError(f"unseen taxa are counted in 'records' or 'taxa', not {of!r}", value=of)
    names = pd.DataFrame({"taxon": _named(taxon), "parent": _named(parent)})
    sizes = names.dropna(subset=["taxon"]).groupby("taxon", sort=True).agg(n=("parent", "size"),
                                                                           parent=("parent", "first"))
    sizes = sizes[sizes["parent"].notna()]
    # Taxa of each parent still on the reference side; a taxon is hidden only while another one stays.
    remaining = sizes.groupby("parent")["n"].size().to_dict()
    if of == "taxa":
        eligible = sizes.index[sizes["parent"].map(remaining) >= 2].to_numpy(dtype=object)
        return list(rng.choice(eligible, round(fraction * len(eligible)), replace=False)) if len(eligible) else []
    chosen, held = [], 0
    for name in rng.permutation(sizes.index.to_numpy(copy=True)):
        if held >= fraction * len(names):
            break
        parent_name = sizes.at[name, "parent"]
        if remaining[parent_name] >= 2:
            remaining[parent_name] -= 1
            chosen.append(name)
            held += int(sizes.at[name, "n"])
    return chosen


def _named(values) -> np.ndarray:
    """Names as an object array, None where unnamed (None, NaN or the empty string)."""
    return np.array([value if isinstance(value, str) and value else None for value in values], dtype=object)


def holdout_mask(records, fraction: float, *, by: str = BY_RECORD, seed: int = 0) -> np.ndarray:
    """bool ``[N]``: True for the records held out as test/query records, for sources without splits.

    by="record": a seeded ``fraction`` of the records. by=<rank> (e.g. "species"): whole taxa of that rank
    are held out until about ``fraction`` of the records are (:func:`unseen_taxa`), so every held-out record
    is of a taxon the training side never saw; every parent (the rank above, skipping subfamily) keeps at
    least one of its taxa on the training side. Records without a label at ``by`` are never held out.
    """
    if not 0.0 < fraction < 1.0:
        raise BioscanError(f"the held-out fraction must be between 0 and 1, got {fraction}", value=fraction)
    rng = np.random.default_rng(seed)
    n = len(records)
    if by == BY_RECORD:
        mask = np.zeros(n, dtype=bool)
        mask[rng.permutation(n)[: round(fraction * n)]] = True
        return mask
    position = TAXONOMIC_RANKS.index(by) if by in TAXONOMIC_RANKS else -1
    if position < 1:
        raise BioscanError(f"cannot hold out by {by!r}; choose {BY_RECORD!r} or one of "
                           f"{', '.join(TAXONOMIC_RANKS[1:])}", value=by)
    # The parent is the next rank up, skipping subfamily: many records (all of BOLD's v3 exports) lack it.
    parent = [r for r in TAXONOMIC_RANKS[:position] if r != "subfamily"][-1]
    taxa = records.column(by)
    chosen = unseen_taxa(taxa, records.column(parent), fraction, rng)
    if not chosen:
        raise BioscanError(f"no {by} can be held out: none shares its {parent} with another {by}", value=by)
    return pd.Series(taxa).isin(chosen).to_numpy()


def holdout_split(species: np.ndarray, genus: np.ndarray, *, seen_fraction: float = 0.05,
                  unseen_fraction: float = 0.15, min_records: int = 10, seed: int = 0) -> np.ndarray:
    """Role of every record for measuring identification: ``"reference"``, ``"seen"`` or ``"unseen"``
    (object array, shape ``(n,)``), as in the BIOSCAN-5M benchmark.

    ``unseen`` (scored at genus): every record of a random ``unseen_fraction`` of the species of genera with
    >= 2 species (:func:`unseen_taxa`). ``seen`` (scored at species, which keeps other records in the
    reference): a random ``seen_fraction`` of the other records of species with >= ``min_records`` records.
    Records without a species or genus name stay in the reference. Same ``seed``, same split.
    """
    rng = np.random.default_rng(seed)
    species, genus = _named(species), _named(genus)
    named = np.array([s is not None and g is not None for s, g in zip(species, genus)], dtype=bool)
    hidden = set(unseen_taxa(np.where(named, species, None), genus, unseen_fraction, rng, of="taxa"))
    roles = np.full(len(species), REFERENCE, dtype=object)
    is_unseen = named & np.array([s in hidden for s in species])
    roles[is_unseen] = UNSEEN
    names, counts = np.unique(species[named], return_counts=True)
    big = set(names[counts >= min_records])
    candidates = np.flatnonzero(named & ~is_unseen & np.array([s in big for s in species]))
    roles[rng.choice(candidates, round(seen_fraction * len(candidates)), replace=False)] = SEEN
    return roles


def with_barcodes(records):
    """The records that have a non-empty (cleaned) DNA barcode: the ones a DNA encoder can embed."""
    barcodes = records.barcodes(clean=True)
    return records.filter(np.fromiter((bool(b) for b in barcodes), dtype=bool, count=len(barcodes)))


def load_partition(source: str | os.PathLike[str], train_split: str | None, test_split: str | None, *,
                   columns: Sequence[str], holdout: float | None = None, holdout_by: str = BY_RECORD,
                   seed: int = 0, cache_dir: str | os.PathLike[str] | None = None):
    """(training or key records, test or query records) of ``source``, both with a barcode.

    With ``holdout`` (for sources without BIOSCAN-5M splits, e.g. a BOLD TSV or FASTA), the records
    (of ``train_split`` when given) are divided by :func:`holdout_mask`; otherwise by the two split names.
    """
    from bioscan5m.data.records import load_records

    wanted = list(dict.fromkeys([DNA_COLUMN, SPLIT_COLUMN, *columns]))
    if holdout is not None and holdout_by != BY_RECORD:
        wanted += [rank for rank in TAXONOMIC_RANKS if rank not in wanted]  # the held-out rank and its parent
    if holdout is not None:
        records = with_barcodes(load_records(source, split=train_split, columns=wanted, cache_dir=cache_dir))
        held = holdout_mask(records, holdout, by=holdout_by, seed=seed)
        return records.filter(~held), records.filter(held)
    if train_split is None or test_split is None:
        raise BioscanError("name the training and test splits, or hold out a fraction of the records")
    train_names, test_names = parse_splits(train_split), parse_splits(test_split)
    try:
        records = load_records(source, split=tuple(dict.fromkeys(train_names + test_names)), columns=wanted,
                               cache_dir=cache_dir)
    except BioscanError as error:
        if "split assignments" not in error.reason:
            raise
        raise BioscanError(f"{error.reason}. To test on a random share of them instead, use --holdout 0.2",
                           path=error.path, value=error.value) from None
    records = with_barcodes(records)
    splits = records.column(SPLIT_COLUMN)
    return records.filter(np.isin(splits, train_names)), records.filter(np.isin(splits, test_names))
