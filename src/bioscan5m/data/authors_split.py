"""The BarcodeBERT authors' split of BIOSCAN-5M (``data/data_split.py`` of bioscan-ml/BarcodeBERT, branch
``BIOSCAN-5M``): one record per barcode over the WHOLE metadata file, before any split is taken.

They read every row of the file, strip trailing ``N`` from each barcode (``str.rstrip("N")``, nothing else),
drop repeated barcodes keeping the first row in file order (``drop_duplicates(subset=["nucleotides"])``) and
only then select ``pretrain+other_heldout`` (pretraining), ``train``, ``test`` and ``test_unseen``. A barcode
first seen in one split is therefore absent from every later one. (bioscan-dataset's
``reduce_repeated_barcodes``, in :mod:`bioscan5m.data.dedup`, shuffles the rows first and cuts barcodes;
this is the other rule, the one behind the paper's Task I.)
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bioscan5m.data.dedup import saved_answer
from bioscan5m.data.schema import DNA_COLUMN, ID_COLUMN


def authors_deduplicated_ids(source: str | os.PathLike[str],
                             cache_dir: str | os.PathLike[str] | None = None) -> pa.Array:
    """Record ids (``processid``) kept by the BarcodeBERT authors' ``data_split.py``: over every row of the
    metadata file, in file order, the first row of each barcode with trailing ``N`` stripped. Rows without a
    barcode share one key, as pandas compares missing values as equal. The answer is kept in the ``dedup``
    cache folder beside bioscan-dataset's rule (:func:`~bioscan5m.data.dedup.saved_answer`), so the whole
    file is read once per file version, not once per run."""
    from bioscan5m.data.records import resolve_source

    path = resolve_source(source)
    return saved_answer(path, {"first_row_per_barcode": 1}, lambda: _first_row_per_barcode(path), cache_dir)


def _first_row_per_barcode(path) -> pa.Array:
    from bioscan5m.data.readers import read_batches

    ids, keys = [], []
    for batch in read_batches(path):  # the file's own row order, as pandas reads it
        ids.append(batch.column(ID_COLUMN))
        keys.append(pc.utf8_rtrim(batch.column(DNA_COLUMN).cast(pa.large_string()), characters="N"))
    if not ids:
        return pa.array([], pa.string())
    table = pa.table({"key": pa.concat_arrays(keys),
                      "position": pa.array(np.arange(sum(len(k) for k in keys), dtype=np.int64))})
    # group_by drops no row: missing barcodes form one group of their own (null key).
    first = table.group_by("key", use_threads=False).aggregate([("position", "min")])
    kept = np.sort(first.column("position_min").to_numpy())
    return pa.concat_arrays(ids).take(pa.array(kept))


def keep_deduplicated(records, kept_ids: pa.Array):
    """The records whose id is among ``kept_ids`` (see :func:`authors_deduplicated_ids`)."""
    mask = pc.is_in(records.table.column(ID_COLUMN), value_set=kept_ids)
    return records.filter(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
