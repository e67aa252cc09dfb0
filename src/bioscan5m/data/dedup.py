"""The authors' ``reduce_repeated_barcodes``: one record per barcode over a whole BIOSCAN-5M metadata file.

bioscan-dataset's ``load_bioscan5m_metadata`` cuts every barcode to ``max_nucleotides``, shuffles the rows of
the metadata file with ``pandas.DataFrame.sample(frac=1, random_state=0)`` (``numpy.random.RandomState(0)``'s
permutation of the file's rows), keeps the first row of each barcode with trailing ``N`` removed, and only
then takes the split. :func:`kept_record_ids` reproduces that exactly, reading the file once in its own row
order, and keeps the answer in the ``dedup`` cache folder (keyed like the record cache, by the file's
content), so later datasets of any split get it in a second.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bioscan5m.cachedir import mark_used
from bioscan5m.data.cache import cache_location, source_fingerprint
from bioscan5m.data.schema import DNA_COLUMN, ID_COLUMN
from bioscan5m.fileio import atomic_path

#: The authors' shuffle seed (``random_state=0``).
DEDUPLICATION_SEED = 0
#: Bump when the rule changes, so saved answers are recomputed.
DEDUP_VERSION = 1
_KEY = b"bioscan5m.dedup"


def barcode_key(barcode: str | None, max_nucleotides: int | None) -> bytes:
    """16-byte digest of the authors' deduplication key: the barcode cut to ``max_nucleotides``, trailing
    ``N`` removed (no other cleaning). Missing barcodes share one key, as pandas treats them as equal."""
    if barcode is None:
        return b"\0" * 16
    return hashlib.blake2b(barcode[:max_nucleotides].rstrip("N").encode(), digest_size=16).digest()


def kept_record_ids(source: str | os.PathLike[str], max_nucleotides: int | None,
                    cache_dir: str | os.PathLike[str] | None = None) -> pa.Array:
    """Record ids (``processid``) that the authors' loader keeps with ``reduce_repeated_barcodes=True``."""
    from bioscan5m.data.readers import read_batches

    source = Path(source)
    fingerprint = source_fingerprint(source, cache_dir)
    key = json.dumps({"version": DEDUP_VERSION, "source": fingerprint, "max_nucleotides": max_nucleotides},
                     sort_keys=True).encode()
    saved = cache_location(source, {"deduplicated": max_nucleotides, "version": DEDUP_VERSION}, cache_dir,
                           kind="dedup", fingerprint=fingerprint)
    if saved.is_file():
        try:
            file = pq.ParquetFile(saved, page_checksum_verification=True)
            if (file.schema_arrow.metadata or {}).get(_KEY) == key:
                kept = file.read().column(ID_COLUMN).combine_chunks()
                mark_used(saved)
                return kept
        except (OSError, pa.ArrowException):
            pass  # unreadable or damaged: compute again
    ids, digests = [], []
    for batch in read_batches(source):  # the file's own row order, as pandas reads it
        ids.append(batch.column(ID_COLUMN))
        keys = b"".join(barcode_key(b, max_nucleotides) for b in batch.column(DNA_COLUMN).to_pylist())
        digests.append(np.frombuffer(keys, dtype="V16"))
    if not ids:
        return pa.array([], pa.string())
    order = np.random.RandomState(DEDUPLICATION_SEED).permutation(sum(len(d) for d in digests))
    _, first = np.unique(np.concatenate(digests)[order], return_index=True)
    kept = pa.concat_arrays(ids).take(pa.array(np.sort(order[first])))
    table = pa.table({ID_COLUMN: kept}).replace_schema_metadata({_KEY: key})
    try:
        saved.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(saved) as tmp:
            pq.write_table(table, tmp, write_page_checksum=True)
    except OSError:
        pass  # a read-only place: the answer is still right, only not kept
    return kept
