"""The single source of truth for BIOSCAN-5M ranks, splits and columns.

Every other module imports these names instead of spelling them out again.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from bioscan5m.errors import BioscanError

#: Taxonomic ranks from the top down, as named in the BIOSCAN-5M metadata.
TAXONOMIC_RANKS: tuple[str, ...] = ("phylum", "class", "order", "family", "subfamily", "genus", "species")
#: Ranks below class that the paper scores (order ... species).
SCORED_RANKS: tuple[str, ...] = ("order", "family", "subfamily", "genus", "species")
#: Barcode Index Number: BOLD's species-level cluster of barcodes.
BIN = "dna_bin"
#: Every label a model can be trained or scored on.
TARGET_RANKS: tuple[str, ...] = TAXONOMIC_RANKS + (BIN,)

#: The eight partitions of BIOSCAN-5M, in the paper's order.
SPLITS: tuple[str, ...] = (
    "pretrain",
    "train",
    "val",
    "test",
    "key_unseen",
    "val_unseen",
    "test_unseen",
    "other_heldout",
)
SEEN_SPLITS: tuple[str, ...] = ("train", "val", "test")
UNSEEN_SPLITS: tuple[str, ...] = ("key_unseen", "val_unseen", "test_unseen")
#: Names that stand for several splits; ``+`` joins any of these and single splits.
SPLIT_GROUPS: dict[str, tuple[str, ...]] = {
    "seen": SEEN_SPLITS,
    "unseen": UNSEEN_SPLITS,
    "all": SPLITS,
}

#: Image packages of the official release (``*_256``: resized to 256 px on the shorter side).
IMAGE_PACKAGES: tuple[str, ...] = ("original_full", "cropped", "original_256", "cropped_256")

DNA_COLUMN = "dna_barcode"
ID_COLUMN = "processid"
SPLIT_COLUMN = "split"
#: Loaders keep the first 660 nucleotides: a 658 bp COI-5P barcode plus two for the primer.
MAX_NUCLEOTIDES = 660

_category = pa.dictionary(pa.int32(), pa.string())

#: The 23 BIOSCAN-5M metadata columns, in file order, with the Arrow type each is read as.
COLUMNS: dict[str, pa.DataType] = {
    "processid": pa.string(),
    "sampleid": pa.string(),
    "taxon": _category,
    "phylum": _category,
    "class": _category,
    "order": _category,
    "family": _category,
    "subfamily": _category,
    "genus": _category,
    "species": _category,
    "dna_bin": _category,
    "dna_barcode": pa.string(),
    "country": _category,
    "province_state": _category,
    "coord-lat": pa.float64(),
    "coord-lon": pa.float64(),
    "image_measurement_value": pa.float64(),
    "area_fraction": pa.float64(),
    "scale_factor": pa.float64(),
    "inferred_ranks": pa.uint8(),
    "split": _category,
    "index_bioscan_1M_insect": pa.int64(),
    "chunk": pa.string(),
}
COLUMN_NAMES: tuple[str, ...] = tuple(COLUMNS)
#: The normalised record table that every reader produces.
RECORD_SCHEMA: pa.Schema = pa.schema([pa.field(name, dtype) for name, dtype in COLUMNS.items()])


def parse_splits(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Expand a split argument into split names, in the paper's order.

    Accepts one split (``"train"``), a group (``"seen"``, ``"unseen"``, ``"all"``), a ``+``
    combination (``"train+val"``, ``"seen+pretrain"``) or an iterable of any of these.

    >>> parse_splits("train+val")
    ('train', 'val')
    """
    parts = spec.split("+") if isinstance(spec, str) else [p for s in spec for p in s.split("+")]
    chosen: set[str] = set()
    for part in parts:
        name = part.strip()
        if name in SPLIT_GROUPS:
            chosen.update(SPLIT_GROUPS[name])
        elif name in SPLITS:
            chosen.add(name)
        else:
            known = ", ".join(SPLITS + tuple(SPLIT_GROUPS))
            raise BioscanError(f"unknown split {name!r} in {spec!r}; choose from {known}", value=name)
    if not chosen:
        raise BioscanError(f"no split named in {spec!r}", value=spec)
    return tuple(s for s in SPLITS if s in chosen)


def check_rank(rank: str) -> str:
    """Return ``rank`` if it is a target rank, else raise a BioscanError naming the choices."""
    if rank not in TARGET_RANKS:
        raise BioscanError(f"unknown rank {rank!r}; choose from {', '.join(TARGET_RANKS)}", value=rank)
    return rank
