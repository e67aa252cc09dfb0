"""The inputs of identification: a reference of barcodes with taxonomy, and query barcodes.

A reference is reduced to its distinct cleaned barcodes ("haplotypes"): a barcode shared by 500
records is searched and aligned once. Each haplotype keeps, per scored rank, the name most of its
records carry (ties: the alphabetically first), its most common BIN, the id of its first record and
its record count.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bioscan5m.data.schema import BIN, DNA_COLUMN, ID_COLUMN
from bioscan5m.data.sequences import barcode_blocks, clean_barcodes
from bioscan5m.errors import BioscanError
from bioscan5m.tasks.identify.consensus import RANKS
from bioscan5m.tasks.identify.sequence_alignment import PackedBarcodes, pack_barcodes

#: How barcodes are cleaned before identification: ambiguity codes become N (N matches any base).
CLEAN_OPTIONS = {"iupac": "mask"}


@dataclass
class ReferenceSet:
    """Distinct reference barcodes with their taxonomy.

    ``sequences`` (H,) cleaned barcodes; ``record_ids`` (H,) id of each one's first record;
    ``n_records`` (H,) int64; ``labels`` (H, len(RANKS)) int32 codes into ``names[rank]``
    (-1 = missing); ``record_haplotype`` (N,) and ``record_labels`` (N, R) describe the records
    themselves (used only while fitting); ``bins`` (H,) the most common BIN of each ("" if none).
    """

    sequences: list[str]
    record_ids: np.ndarray
    n_records: np.ndarray
    labels: np.ndarray
    names: dict[str, tuple[str, ...]]
    record_haplotype: np.ndarray
    record_labels: np.ndarray
    source: str = ""
    bins: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    @cached_property
    def packed(self) -> PackedBarcodes:
        """The barcodes packed for the alignment kernel (made on first use)."""
        return pack_barcodes(self.sequences)

    def fingerprint(self) -> str:
        """sha256 of everything identification depends on: barcodes, ids, taxonomy at every rank, BINs (hex)."""
        digest = hashlib.sha256()
        for seq in self.sequences:
            digest.update(seq.encode("ascii"))
            digest.update(b"\n")
        for rank in RANKS:
            digest.update("\t".join(self.names.get(rank, ())).encode("utf-8"))
            digest.update(b"\n")
        if self.bins is not None:
            digest.update("\t".join(map(str, self.bins)).encode("utf-8"))
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        digest.update(np.ascontiguousarray(self.n_records).tobytes())
        digest.update("\n".join(map(str, self.record_ids)).encode("utf-8"))
        return digest.hexdigest()


def read_reference(reference: object, *, cache_dir: str | os.PathLike[str] | None = None,
                   use_cache: bool = True) -> ReferenceSet:
    """Build a :class:`ReferenceSet` from a path (anything ``load_records`` reads), a ``Records`` or a
    pandas DataFrame with ``dna_barcode``, ``processid`` and rank columns. A file's parsed records are
    cached by ``load_records`` under ``cache_dir`` (its default: the user cache) unless ``use_cache`` is False.

    Records without a barcode are skipped; a reference without any taxonomy is an error.
    """
    frame, source = _as_frame(reference, "reference", columns=[ID_COLUMN, DNA_COLUMN, *RANKS, BIN],
                              cache_dir=cache_dir, use_cache=use_cache)
    missing = [rank for rank in RANKS if rank not in frame.columns or frame[rank].isna().all()]
    if len(missing) == len(RANKS):
        raise BioscanError(
            f"the reference has no taxonomy: every one of {', '.join(RANKS)} is empty; give a "
            "BOLD/BIOSCAN table, a FASTA with SINTAX headers (>id;tax=o:...,g:...,s:...), or a FASTA together "
            "with a taxonomy TSV (BOLD rank columns, or QIIME2's Feature ID + Taxon)",
            path=source or None,
        )
    # Many records share a barcode: each distinct raw barcode is cleaned once.
    raw_codes, cleaned = _clean_distinct(frame, source, "reference record")
    usable = np.flatnonzero([len(s) > 0 for s in cleaned])
    keep = np.isin(raw_codes, usable)
    if not keep.any():
        raise BioscanError("the reference has no usable barcode (all empty or all N)", path=source or None)
    if not keep.all():
        frame = frame.loc[keep].reset_index(drop=True)
        raw_codes = raw_codes[keep]
    haplotypes, usable_haplotype = _distinct([cleaned[i] for i in usable])
    haplotype_of = np.full(len(cleaned), -1, dtype=np.int64)
    haplotype_of[usable] = usable_haplotype
    record_haplotype = haplotype_of[raw_codes]
    first = np.unique(record_haplotype, return_index=True)[1]  # each haplotype's first record
    n_records = np.bincount(record_haplotype, minlength=len(haplotypes)).astype(np.int64)
    names: dict[str, tuple[str, ...]] = {}
    record_labels = np.full((len(frame), len(RANKS)), -1, dtype=np.int32)
    labels = np.full((len(haplotypes), len(RANKS)), -1, dtype=np.int32)
    for column, rank in enumerate(RANKS):
        values = frame[rank] if rank in frame.columns else pd.Series([None] * len(frame))
        names[rank], record_labels[:, column] = _rank_codes(values)
        labels[:, column] = _majority(record_haplotype, record_labels[:, column], len(haplotypes))
    bins = np.full(len(haplotypes), "", dtype=object)
    if BIN in frame.columns and frame[BIN].notna().any():
        bin_names, bin_codes = _bin_codes(frame[BIN])
        bins = np.append(bin_names, "").astype(object)[_majority(record_haplotype, bin_codes, len(haplotypes))]
    # Only each haplotype's first record's id becomes a Python string.
    first_ids = (frame[ID_COLUMN].iloc[first].astype(str).to_numpy() if ID_COLUMN in frame.columns
                 else np.arange(len(frame)).astype(str)[first])
    return ReferenceSet(
        sequences=haplotypes,
        record_ids=first_ids,
        n_records=n_records,
        labels=labels,
        names=names,
        record_haplotype=record_haplotype,
        record_labels=record_labels,
        source=source,
        bins=bins,
    )


def read_queries(queries: object) -> tuple[np.ndarray, list[str]]:
    """Query ids and cleaned barcodes from a path (FASTA or any table ``load_records`` reads), a
    ``Records``, a DataFrame, a ``{id: barcode}`` mapping or a list of barcodes (ids ``query1``...).

    An empty query set, or a query with nothing left after cleaning (empty or all N), is an error.
    """
    if isinstance(queries, Mapping):
        frame, source = pd.DataFrame({ID_COLUMN: list(queries), DNA_COLUMN: list(queries.values())}), ""
    elif isinstance(queries, Sequence) and not isinstance(queries, str | os.PathLike):
        ids = [f"query{i + 1}" for i in range(len(queries))]
        frame, source = pd.DataFrame({ID_COLUMN: ids, DNA_COLUMN: list(queries)}), ""
    else:
        # Queries are read once per run: a records cache of them would only fill the cache folder.
        frame, source = _as_frame(queries, "queries", columns=[ID_COLUMN, DNA_COLUMN], use_cache=False)
    if len(frame) == 0:
        raise BioscanError("no query barcodes given", path=source or None)
    # Queries repeat too (half of a field sample's): each distinct one is cleaned once.
    codes, cleaned = _clean_distinct(frame, source, "query")
    ids = frame[ID_COLUMN].astype(str).to_numpy() if ID_COLUMN in frame.columns else np.array(
        [f"query{i + 1}" for i in range(len(frame))])
    empty = np.isin(codes, np.flatnonzero([not seq.strip("N") for seq in cleaned]))
    if empty.any():
        query_id = ids[np.argmax(empty)]
        raise BioscanError(f"query {query_id!r} has no DNA left after cleaning (empty or only N)",
                           path=source or None, value=query_id)
    return ids, list(map(cleaned.__getitem__, codes))


def _as_frame(source: object, what: str, columns: list[str], use_cache: bool = True,
              cache_dir: str | os.PathLike[str] | None = None) -> tuple[pd.DataFrame, str]:
    """``source`` as a DataFrame and the path it came from ("" if none); of a file, only ``columns`` are read."""
    if isinstance(source, pd.DataFrame):
        frame, name = source, ""
    elif hasattr(source, "to_pandas") and hasattr(source, "table"):  # bioscan5m Records
        frame, name = source.to_pandas(), str(getattr(source, "source", ""))
    elif isinstance(source, str | os.PathLike):
        from bioscan5m.data.records import load_records

        path = Path(source)
        frame, name = load_records(path, columns=columns, cache_dir=cache_dir, use_cache=use_cache).to_pandas(), str(path)
    else:
        raise BioscanError(f"cannot read {what} from a {type(source).__name__}; give a file path, Records "
                           "or a pandas DataFrame")
    if DNA_COLUMN not in frame.columns:
        raise BioscanError(f"the {what} table has no {DNA_COLUMN!r} column", path=name or None)
    return frame, name


def _clean_distinct(frame: pd.DataFrame, source: str, what: str) -> tuple[np.ndarray, list[str]]:
    """Each record's index (int64) into the distinct raw barcodes (missing ones are one of them), and those
    barcodes cleaned (a missing one: "")."""
    raw = _raw_barcodes(frame[DNA_COLUMN])
    try:
        codes, distinct = _factorize(raw)
    except TypeError:  # an unhashable value (a list...): every record its own, cleaning names the bad one
        codes, distinct = np.arange(len(raw), dtype=np.int64), list(raw)
    # The first bad distinct barcode first appears where the first bad record is: name that record.
    cleaned = _cleaned(distinct, frame, lambda position: int(np.argmax(codes == position)), source, what)
    return codes, cleaned


def _raw_barcodes(column: pd.Series) -> pa.Array | pa.ChunkedArray | list:
    """A barcode column as ``clean_barcodes`` takes it: a file's Arrow column as it is (never a Python string
    of every barcode at once), anything else as a list (None where missing)."""
    if hasattr(column.array, "__arrow_array__") and not isinstance(column.dtype, pd.CategoricalDtype):
        return pa.array(column.array)
    return column.astype(object).where(column.notna(), None).tolist()


def _factorize(values: pa.Array | pa.ChunkedArray | list) -> tuple[np.ndarray, list]:
    """Each value's index (int64) into the distinct values, and those in order of first appearance.

    A dict of Python strings filled a block at a time keeps only the distinct barcodes: Arrow's (and so
    pandas') dictionary encoding grows a hash table and a copy of them besides, ~2x the memory, fresh
    memory being what costs most on some virtual machines."""
    index: dict = {}
    codes = np.empty(len(values), dtype=np.int64)
    start = 0
    for block in barcode_blocks(values):
        codes[start:start + len(block)] = [index.setdefault(value, len(index)) for value in block]
        start += len(block)
    return codes, list(index)


def _cleaned(raw, frame: pd.DataFrame, record_of, source: str, what: str) -> list[str]:
    """``raw`` barcodes cleaned; a bad one is an error naming the id of record ``record_of(position)``."""
    try:
        return clean_barcodes(raw, **CLEAN_OPTIONS)
    except BioscanError as error:
        # clean_barcodes names the position; name the record id instead, which the user can find.
        position = int(error.reason.split(":")[0].split()[-1]) if error.reason.startswith("barcode ") else None
        where = (f"{what} {frame[ID_COLUMN].iloc[record_of(position)]!r}: "
                 if position is not None and ID_COLUMN in frame else "")
        reason = error.reason.split(": ", 1)[-1]
        raise BioscanError(where + reason, path=source or None, value=error.value) from None


def _distinct(sequences: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct strings sorted (code point order, as ``np.unique``) and the index of every input into
    them (int64): ``np.unique(..., return_inverse=True)`` without sorting every input string.

    Only the distinct strings are sorted, by Python (one ``memcmp`` per comparison: ~20 ms for 36k
    barcodes), and no copy of them is made (an Arrow array of them would be tens of MB of fresh memory)."""
    distinct = sorted(set(sequences))
    index = {seq: position for position, seq in enumerate(distinct)}
    return distinct, np.fromiter(map(index.__getitem__, sequences), dtype=np.int64, count=len(sequences))


def _rank_codes(values: pd.Series) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted distinct names of one rank column and each record's int32 code into them (-1: missing).

    Names are stripped of whitespace; missing values, blank strings and anything that is not a string
    count as missing. Each distinct value is normalised once, not each record's.
    """
    codes, uniques = pd.factorize(values)  # None / NaN -> -1
    stripped = [v.strip() if isinstance(v, str) else "" for v in np.asarray(uniques, dtype=object)]
    present = np.array([len(v) > 0 for v in stripped], dtype=bool)
    rank_names, inverse = np.unique(np.array([v for v in stripped if v], dtype=str), return_inverse=True)
    lookup = np.full(len(stripped) + 1, -1, dtype=np.int32)  # the last entry serves code -1
    lookup[:-1][present] = inverse
    return tuple(rank_names.tolist()), lookup[codes]


def _bin_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct BINs as written (object array, "" kept) and each record's code into them (-1: none)."""
    codes, uniques = pd.factorize(values)
    as_text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype(str).to_numpy()
    bin_names, inverse = np.unique(np.append(as_text, "").astype(object), return_inverse=True)
    lookup = np.where(bin_names[inverse] == "", -1, inverse)  # the last entry serves code -1
    return bin_names, lookup[codes]


def _majority(groups: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, its most frequent non-negative code (ties: the smallest), -1 if it has none."""
    out = np.full(n_groups, -1, dtype=np.int32)
    present = codes >= 0
    if not present.any():
        return out
    # One int64 key per (group, code) pair sorts as the pair does: a 1-D unique, not a column-wise one.
    width = int(codes.max()) + 1
    keys, counts = np.unique(groups[present].astype(np.int64) * width + codes[present], return_counts=True)
    pair_group, pair_code = np.divmod(keys, width)
    # Sort by group, then count descending, then code ascending: the first row of each group wins.
    order = np.lexsort((pair_code, -counts, pair_group))
    group_sorted = pair_group[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = group_sorted[1:] != group_sorted[:-1]
    out[group_sorted[first]] = pair_code[order][first]
    return out
