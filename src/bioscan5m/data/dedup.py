"""The authors' view of a whole BIOSCAN-5M metadata file: which rows ``reduce_repeated_barcodes`` keeps, and
the file's own row order across splits.

bioscan-dataset's ``load_bioscan5m_metadata`` reads the whole file with pandas, so its frame is in file row
order. The record cache groups rows by split instead (file order within each split), which is all one split
needs; two things need the whole file once more, and both answers are kept in the ``dedup`` cache folder
(keyed like the record cache, by the file's content), so later datasets of any split get them in a second:

* :func:`kept_record_ids`: with ``reduce_repeated_barcodes=True`` the authors cut every barcode to
  ``max_nucleotides``, shuffle the rows with ``pandas.DataFrame.sample(frac=1, random_state=0)``
  (``numpy.random.RandomState(0)``'s permutation of the file's rows), keep the first row of each barcode
  with trailing ``N`` removed, and only then take the split.
* :func:`file_order`: a selection of several splits (``"pretrain+train"``, ``"all"``) comes back in file
  order, splits interleaved as in the file; :func:`file_split_codes` records the split of every row.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bioscan5m.cachedir import mark_used
from bioscan5m.data.cache import cache_location, source_fingerprint
from bioscan5m.data.schema import DNA_COLUMN, ID_COLUMN, SPLIT_COLUMN, SPLITS
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_path

#: The authors' shuffle seed (``random_state=0``).
DEDUPLICATION_SEED = 0
#: Bump when the rule changes, so saved answers are recomputed.
DEDUP_VERSION = 1
#: Split code of a row without a split in :func:`file_split_codes`.
NO_SPLIT_CODE = 255
_KEY = b"bioscan5m.dedup"


def barcode_key(barcode: str | None, max_nucleotides: int | None) -> bytes:
    """16-byte digest of the authors' deduplication key: the barcode cut to ``max_nucleotides``, trailing
    ``N`` removed (no other cleaning). Missing barcodes share one key, as pandas treats them as equal."""
    if barcode is None:
        return b"\0" * 16
    return hashlib.blake2b(barcode[:max_nucleotides].rstrip("N").encode(), digest_size=16).digest()


def saved_answer(source: Path, options: dict, compute: Callable[[], pa.Array],
                  cache_dir: str | os.PathLike[str] | None) -> pa.Array:
    """``compute()``'s one-column answer for ``source``, kept in the ``dedup`` cache folder as a Parquet file
    whose footer holds the key (``options`` + the file's content); recomputed when the key differs."""
    fingerprint = source_fingerprint(source, cache_dir)
    key = json.dumps({"version": DEDUP_VERSION, "source": fingerprint, **options}, sort_keys=True).encode()
    saved = cache_location(source, {**options, "version": DEDUP_VERSION}, cache_dir, kind="dedup",
                           fingerprint=fingerprint)
    if saved.is_file():
        try:
            file = pq.ParquetFile(saved)
            if (file.schema_arrow.metadata or {}).get(_KEY) == key:
                answer = file.read().column(0).combine_chunks()
                mark_used(saved)
                return answer
        except (OSError, pa.ArrowException):
            pass  # unreadable or damaged: compute again
    answer = compute()
    table = pa.table({"answer": answer}).replace_schema_metadata({_KEY: key})
    try:
        saved.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(saved) as tmp:
            pq.write_table(table, tmp, write_page_checksum=True)
    except OSError:
        pass  # a read-only place: the answer is still right, only not kept
    return answer


def kept_record_ids(source: str | os.PathLike[str], max_nucleotides: int | None,
                    cache_dir: str | os.PathLike[str] | None = None) -> pa.Array:
    """Record ids (``processid``) that the authors' loader keeps with ``reduce_repeated_barcodes=True``."""
    from bioscan5m.data.readers import read_batches

    source = Path(source)

    def compute() -> pa.Array:
        ids, digests = [], []
        for batch in read_batches(source):  # the file's own row order, as pandas reads it
            ids.append(batch.column(ID_COLUMN))
            keys = b"".join(barcode_key(b, max_nucleotides) for b in batch.column(DNA_COLUMN).to_pylist())
            digests.append(np.frombuffer(keys, dtype="V16"))
        if not ids:
            return pa.array([], pa.string())
        order = np.random.RandomState(DEDUPLICATION_SEED).permutation(sum(len(d) for d in digests))
        _, first = np.unique(np.concatenate(digests)[order], return_index=True)
        return pa.concat_arrays(ids).take(pa.array(np.sort(order[first])))

    return saved_answer(source, {"deduplicated": max_nucleotides}, compute, cache_dir)


def file_split_codes(source: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """uint8 ``(rows,)``: the split of every row of the metadata file in file order, as its index in
    ``SPLITS`` (``NO_SPLIT_CODE`` for a row without one). Read once per file, one byte per row."""
    from bioscan5m.data.readers import read_batches

    source = Path(source)
    lookup = pa.array(SPLITS)

    def compute() -> pa.Array:
        codes = [pc.fill_null(pc.index_in(batch.column(SPLIT_COLUMN).cast(pa.string()), value_set=lookup),
                              NO_SPLIT_CODE).cast(pa.uint8()) for batch in read_batches(source)]
        return pa.concat_arrays(codes) if codes else pa.array([], pa.uint8())

    return np.asarray(saved_answer(source, {"split_order": 1}, compute, cache_dir), dtype=np.uint8)


def file_order(splits: Sequence[str], table_splits: pa.ChunkedArray | pa.Array, source: str | os.PathLike[str],
               cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Permutation putting a table read from the record cache (the records of ``splits``, grouped by split
    in ``SPLITS`` order, file order within each; ``table_splits`` is its split column) into file order:
    ``table.take(file_order(...))`` lists the records as the file does."""
    codes = file_split_codes(source, cache_dir)
    selected = codes[np.isin(codes, [SPLITS.index(s) for s in splits])]
    if isinstance(table_splits, pa.Array):
        table_splits = pa.chunked_array([table_splits])
    in_table = pc.index_in(table_splits.cast(pa.string()), value_set=pa.array(SPLITS))
    table_codes = np.asarray(pc.fill_null(in_table, NO_SPLIT_CODE).to_numpy(), dtype=np.int64)
    counts = np.bincount(selected, minlength=NO_SPLIT_CODE + 1)
    if np.any(np.diff(table_codes) < 0) or not np.array_equal(
            counts, np.bincount(table_codes, minlength=NO_SPLIT_CODE + 1)):
        raise BioscanError("the record cache and the metadata file disagree on the splits' sizes; clear those "
                           "caches with 'bioscan5m cache prune --kind records --kind dedup --all' and try again",
                           path=source)
    # The k-th row of the table in split order is the k-th of the stable sort of the file-order codes.
    by_split = np.argsort(selected, kind="stable")
    order = np.empty_like(by_split)
    order[by_split] = np.arange(len(by_split))
    return order
