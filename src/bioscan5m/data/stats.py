"""Dataset statistics: the paper's split table, distinct names per rank, orders and collection sites.

Every function takes a :class:`~bioscan5m.data.records.Records` (from ``load_records``) and returns a
pandas object. Tables have one row per split present, in the paper's order, then ``(none)`` for
records without a split (BOLD and FASTA sources), then ``total`` over all records. Counts of
"distinct" things ignore missing values, so ``species`` counts labelled species only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from bioscan5m.data.schema import DNA_COLUMN, ID_COLUMN, SPLIT_COLUMN, SPLITS, TARGET_RANKS
from bioscan5m.data.sequences import clean_barcodes
from bioscan5m.errors import BioscanError

if TYPE_CHECKING:
    from bioscan5m.data.records import Records

#: Row label for records that belong to no split.
NO_SPLIT = "(none)"
#: Row label for the whole table.
TOTAL = "total"
LATITUDE, LONGITUDE = "coord-lat", "coord-lon"
#: The columns the statistics read; pass them as ``columns=`` to ``load_records`` to load no more.
STATS_COLUMNS: tuple[str, ...] = (ID_COLUMN, SPLIT_COLUMN, DNA_COLUMN, *TARGET_RANKS, LATITUDE, LONGITUDE)
#: Barcodes cleaned per batch: bounds the memory of the Python strings cleaning produces.
_BATCH = 1 << 18


def split_summary(records: Records) -> pd.DataFrame:
    """The paper's split table: ``records``, ``unique_barcodes`` and ``species`` per split (int64).

    Barcodes are cleaned first (:func:`~bioscan5m.data.sequences.clean_barcodes`: gaps removed,
    ends' N stripped, cut to 660 nt); empty ones are not counted.
    """
    split = _split_codes(records)
    labels = _row_labels(split)
    records_per_split = split.value_counts().reindex(labels[:-1], fill_value=0)
    summary = pd.DataFrame(
        {
            "records": [*records_per_split.tolist(), len(split)],
            "unique_barcodes": _unique_barcodes(records, split, labels),
            "species": rank_counts(records, ranks=("species",))["species"].to_numpy(),
        },
        index=pd.Index(labels, name=SPLIT_COLUMN),
    )
    return summary.astype("int64")


def rank_counts(records: Records, ranks: tuple[str, ...] = TARGET_RANKS) -> pd.DataFrame:
    """Distinct names per rank (columns ``ranks``, default the seven ranks and ``dna_bin``) per split."""
    split = _split_codes(records)
    labels = _row_labels(split)
    names = _column_frame(records, ranks)
    per_split = names.groupby(split.to_numpy(), observed=True, sort=False).nunique()
    per_split = per_split.reindex(labels[:-1], fill_value=0)
    total = names.nunique().to_frame(TOTAL).T
    table = pd.concat([per_split, total]).astype("int64")
    table.index.name = SPLIT_COLUMN
    return table


def stats_table(records: Records) -> pd.DataFrame:
    """:func:`split_summary` and :func:`rank_counts` side by side (``species`` once)."""
    counts = rank_counts(records).drop(columns="species")
    return split_summary(records).join(counts)


def order_counts(records: Records) -> pd.Series:
    """Records per order, most frequent first (unlabelled records are left out)."""
    orders = _column_frame(records, ("order",))["order"]
    counts = orders.value_counts(sort=False).astype("int64")
    counts = counts[counts > 0]
    # Ties broken by name so the order of bars does not depend on the input's row order.
    counts = counts.sort_index(key=lambda index: index.astype(str)).sort_values(ascending=False, kind="stable")
    counts.index = counts.index.astype(str)
    counts.index.name, counts.name = "order", "records"
    return counts


def collection_sites(records: Records) -> pd.DataFrame:
    """Distinct (``coord-lat``, ``coord-lon``) pairs with their number of ``records``, most first.

    Records lacking either coordinate, or with one outside [-90, 90] / [-180, 180], are left out.
    """
    coords = _column_frame(records, (LATITUDE, LONGITUDE)).astype("float64")
    valid = coords[LATITUDE].between(-90, 90) & coords[LONGITUDE].between(-180, 180)
    sites = coords[valid].value_counts().rename("records").reset_index()
    return sites.sort_values(["records", LATITUDE, LONGITUDE], ascending=[False, True, True], ignore_index=True)


def _table(records: Records, columns: tuple[str, ...]) -> pa.Table:
    """The named columns of ``records.table``, with a clear error for those missing."""
    table = records.table
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise BioscanError(
            f"the records lack column(s) {', '.join(missing)} needed for statistics; "
            "load them with load_records(..., columns=STATS_COLUMNS)",
            path=getattr(records, "source", None),
            value=missing,
        )
    return table.select(list(columns))


def _column_frame(records: Records, columns: tuple[str, ...]) -> pd.DataFrame:
    return _table(records, columns).to_pandas()


def _split_codes(records: Records) -> pd.Series:
    """The split of every record as a categorical (paper order; missing splits as ``(none)``)."""
    split = _column_frame(records, (SPLIT_COLUMN,))[SPLIT_COLUMN].astype("category")
    present = set(split.cat.categories)
    # Unknown split names (not in the schema) are kept after the paper's, so nothing is lost.
    categories = [s for s in SPLITS if s in present] + sorted(present.difference(SPLITS))
    split = split.cat.set_categories(categories)
    if split.isna().any():
        split = split.cat.add_categories(NO_SPLIT).fillna(NO_SPLIT)
    return split


def _row_labels(split: pd.Series) -> list[str]:
    """Row labels of every table: the splits that occur, then ``total``."""
    present = set(split.unique())
    return [label for label in split.cat.categories if label in present] + [TOTAL]


def _unique_barcodes(records: Records, split: pd.Series, labels: list[str]) -> list[int]:
    """Distinct cleaned, non-empty barcodes per row label (the last label is the total)."""
    raw = _table(records, (DNA_COLUMN,)).column(DNA_COLUMN)
    chunks = []
    for start in tqdm(range(0, len(raw), _BATCH), desc="cleaning barcodes", unit="batch", disable=None):
        batch = raw.slice(start, _BATCH)
        try:
            cleaned = pa.array(clean_barcodes(batch), type=pa.large_string())
        except BioscanError as error:
            raise _name_record(records, error, start) from error
        chunks.append(pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, pa.large_string()), cleaned))
    barcodes = pa.chunked_array(chunks, type=pa.large_string())
    grouped = (
        pa.table({"row": pa.array(split.cat.codes.to_numpy()), "barcode": barcodes})
        .group_by("row", use_threads=False)
        .aggregate([("barcode", "count_distinct")])
        .to_pandas()
    )
    by_label = dict(zip(split.cat.categories[grouped["row"]], grouped["barcode_count_distinct"], strict=True))
    return [int(by_label.get(label, 0)) for label in labels[:-1]] + [pc.count_distinct(barcodes).as_py()]


def _name_record(records: Records, error: BioscanError, offset: int) -> BioscanError:
    """Re-word a cleaning error of one batch so that it names the record (processid) at fault."""
    position = error.reason.split(":", 1)[0].removeprefix("barcode ")
    if not position.isdigit() or ID_COLUMN not in records.table.column_names:
        return error
    index = offset + int(position)
    processid = records.table.column(ID_COLUMN)[index].as_py()
    detail = error.reason.split(":", 1)[1].strip()
    # Named by processid alone: the cached table groups rows by split, so its row number is not the file's.
    return BioscanError(f"record {processid}: {detail}", path=getattr(records, "source", None),
                        value=error.value)
