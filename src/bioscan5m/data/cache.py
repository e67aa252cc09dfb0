"""Parquet cache of a source's record table, so that every open after the first is fast.

Design:

* **Where.** In the ``records`` folder of the cache root (``cache_dir``, ``$BIOSCAN5M_CACHE_DIR`` or the
  user cache folder; see :mod:`bioscan5m.cachedir`), never beside the source, as
  ``<source name>.<key>.parquet``.
* **Keyed by content.** The key hashes the cache version, the SHA-256 of every byte of the source
  (:func:`bioscan5m.filehash.file_sha256`: streamed once, then remembered per file identity and times, so
  a warm open costs a ``stat``) and the reader options that change the table (e.g. keeping every BOLD
  marker). Any edit of the source, even one keeping its size and modification time, gives another key;
  the footer repeats the key, and an unreadable or damaged file is rebuilt.
* **Layout.** Rows are grouped by split, in the paper's split order (rows without a split last), keeping
  file order within a split; each split fills its own Parquet row groups (at most ``ROW_GROUP_ROWS``
  rows each). The footer maps each split to its row groups, so opening one split reads only those
  groups, and opening a few columns reads only those column chunks. Columns are zstd-compressed and
  pages carry checksums, so damage is detected when read.
* **Label maps.** The sorted distinct names of every target rank over the *whole* source are stored in
  the footer (JSON), so a one-split open gets the same label ↔ index maps as a full open.
* **Safety.** The file is written to a temporary name and renamed into place, so a reader never sees a
  half-written cache. Building streams the source: memory stays near two row groups, whatever its size.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from bioscan5m.cachedir import CACHE_ENV, cache_folder, cache_root, entry_name, mark_used
from bioscan5m.data.schema import RECORD_SCHEMA, SPLIT_COLUMN, SPLITS, TARGET_RANKS
from bioscan5m.errors import BioscanError
from bioscan5m.filehash import file_sha256
from bioscan5m.fileio import atomic_path

__all__ = ["CACHE_ENV", "RecordCache", "cache_location", "default_cache_dir", "json_digest", "source_fingerprint"]

#: Bump when readers change what they produce, so that old caches are rebuilt.
CACHE_VERSION = 2
ROW_GROUP_ROWS = 65_536
#: Row-group key for records without a split (BOLD, FASTA sources).
NO_SPLIT = ""
_KEY = "bioscan5m.cache"
_LABELS = "bioscan5m.label_maps"
#: How the cache file itself is written (scratch files of one split each are plain lz4).
_CACHE_OPTIONS = {"compression": "zstd", "write_page_checksum": True}


def default_cache_dir() -> Path:
    """The cache root (:func:`bioscan5m.cachedir.cache_root`): ``$BIOSCAN5M_CACHE_DIR`` or the user cache folder."""
    return cache_root()


def source_fingerprint(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
                       ) -> dict[str, int | str]:
    """Size (bytes) and SHA-256 of every byte of a file: what caches derived from it are keyed by."""
    path = Path(path)
    return {"size": path.stat().st_size, "sha256": file_sha256(path, cache_dir)}


def cache_location(
    source: str | os.PathLike[str], options: Mapping[str, object] | None = None,
    cache_dir: str | os.PathLike[str] | None = None, *, kind: str = "records",
    fingerprint: Mapping[str, object] | None = None,
) -> Path:
    """Where the ``kind`` cache of ``source`` read with (non-default) ``options`` lives: named after the
    source and keyed by its content (``fingerprint``: its :func:`source_fingerprint`, computed when not given)."""
    source = Path(source)
    fingerprint = fingerprint or source_fingerprint(source, cache_dir)
    key = json_digest({"version": CACHE_VERSION, "source": fingerprint, "options": dict(options or {})})[:24]
    return cache_folder(kind, cache_dir) / entry_name(source.name, key, ".parquet")


class LabelNames:
    """Collects the distinct names of each target rank over batches; ``result()`` sorts them."""

    def __init__(self) -> None:
        self._names: dict[str, set[str]] = {rank: set() for rank in TARGET_RANKS}

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        for rank in TARGET_RANKS:
            column = batch.column(rank)
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            for chunk in chunks:
                # Only the dictionary entries that rows use: filtering can leave unused ones behind.
                used = pc.unique(chunk.indices).drop_null()
                self._names[rank].update(chunk.dictionary.take(used).to_pylist())

    def result(self) -> dict[str, tuple[str, ...]]:
        return {rank: tuple(sorted(names)) for rank, names in self._names.items()}


class RecordCache:
    """The Parquet cache file of one source read with one set of options."""

    def __init__(self, path: Path, source: Path, options: Mapping[str, object] | None = None,
                 fingerprint: Mapping[str, object] | None = None) -> None:
        self.path = Path(path)
        self.source = Path(source)
        fingerprint = dict(fingerprint or source_fingerprint(source))
        self.key = {"version": CACHE_VERSION, "source": fingerprint, "options": dict(options or {})}
        self._file: pq.ParquetFile | None = None
        self._meta: dict | None = None

    @classmethod
    def for_source(
        cls, source: str | os.PathLike[str], options: Mapping[str, object] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> RecordCache:
        fingerprint = source_fingerprint(source, cache_dir)
        return cls(cache_location(source, options, cache_dir, fingerprint=fingerprint), Path(source), options,
                   fingerprint)

    def is_fresh(self) -> bool:
        """True when the file exists, is readable and was built from this source with these options."""
        try:
            handle = pq.ParquetFile(self.path, page_checksum_verification=True)
            stored = handle.metadata.metadata or {}
            meta = json.loads(stored[_KEY.encode()])
        except (OSError, KeyError, ValueError, pa.ArrowException):
            return False
        if meta.get("key") != self.key:
            return False
        self._file, self._meta = handle, meta
        mark_used(self.path)
        return True

    def build(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Write the cache from ``batches`` (``RECORD_SCHEMA``), streaming; replaces any old file atomically."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            building = tempfile.TemporaryDirectory(dir=self.path.parent, prefix=".bioscan5m-build-")
        except OSError as error:
            raise BioscanError(f"cannot write in the cache folder ({error.strerror}); choose another with "
                               f"--cache-dir or ${CACHE_ENV}", path=self.path.parent) from None
        names = LabelNames()
        with building as scratch:
            # Records without a split go last, into a file written as the cache itself is: while no record has
            # a split (BOLD, FASTA sources) that file becomes the cache and the second pass is skipped.
            parts: dict[str, _RowGroupWriter] = {}
            try:
                for batch in batches:
                    names.add(batch)
                    for split, part in _by_split(batch):
                        if split not in parts:
                            path = Path(scratch) / f"{split or 'none'}.parquet"
                            parts[split] = (_RowGroupWriter(path, **_CACHE_OPTIONS) if split == NO_SPLIT
                                            else _RowGroupWriter(path, cut=False, compression="lz4"))
                        parts[split].write(part)
                layout = {split: [0, 0, parts[split].rows] for split in (*SPLITS, NO_SPLIT) if split in parts}
                if set(parts) == {NO_SPLIT}:
                    groups = layout[NO_SPLIT][1] = parts[NO_SPLIT].finish_group()
                    meta = {"key": self.key, "splits": layout, "rows": parts[NO_SPLIT].rows}
                    parts[NO_SPLIT].close(_footer(meta, names))
            finally:
                for part in parts.values():
                    part.close()
            with atomic_path(self.path) as tmp:
                if set(parts) == {NO_SPLIT}:
                    os.replace(parts[NO_SPLIT].path, tmp)
                else:
                    groups, meta = self._merge(parts, layout, names, tmp)
                if pq.ParquetFile(tmp).num_row_groups != groups:
                    raise AssertionError("cache row groups do not match the split layout")
        self._file, self._meta = pq.ParquetFile(self.path, page_checksum_verification=True), meta

    def _merge(self, parts: dict[str, _RowGroupWriter], layout: dict[str, list[int]], names: LabelNames,
               tmp: Path) -> tuple[int, dict]:
        """Write the per-split scratch files into ``tmp`` in the paper's split order; (row groups, footer)."""
        out = _RowGroupWriter(tmp, **_CACHE_OPTIONS)
        with tqdm(total=sum(part.rows for part in parts.values()), unit=" records",
                  desc=f"caching {self.source.name}", disable=None, leave=False) as bar:
            try:
                for split in (*SPLITS, NO_SPLIT):
                    if split not in parts:
                        continue
                    first = out.groups
                    part = pq.ParquetFile(parts[split].path)
                    for batch in part.iter_batches(batch_size=ROW_GROUP_ROWS):
                        out.write(batch)
                        bar.update(batch.num_rows)
                    part.close()
                    layout[split][:2] = [first, out.finish_group() - first]
                meta = {"key": self.key, "splits": layout, "rows": sum(part.rows for part in parts.values())}
                out.close(_footer(meta, names))
            finally:
                out.close()
        return out.groups, meta

    @property
    def splits(self) -> dict[str, int]:
        """Number of records in each split present (``NO_SPLIT`` for records without one)."""
        return {split: layout[2] for split, layout in self._opened()[1]["splits"].items()}

    def read(self, splits: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> pa.Table:
        """The records of ``splits`` (None: every record), with ``columns`` (None: all), in cache order."""
        handle, meta = self._opened()
        columns = list(columns) if columns is not None else list(RECORD_SCHEMA.names)
        schema = pa.schema([RECORD_SCHEMA.field(name) for name in columns])
        if splits is None:
            groups = list(range(handle.num_row_groups))
        else:
            groups = [g for split in splits if split in meta["splits"]
                      for g in range(meta["splits"][split][0], sum(meta["splits"][split][:2]))]
        if not groups:
            return schema.empty_table()
        return handle.read_row_groups(groups, columns=columns).cast(schema)

    def label_names(self) -> dict[str, tuple[str, ...]]:
        """Sorted distinct names of every target rank over the whole source."""
        handle, _ = self._opened()
        stored = json.loads(handle.metadata.metadata[_LABELS.encode()])
        return {rank: tuple(names) for rank, names in stored.items()}

    def _opened(self) -> tuple[pq.ParquetFile, dict]:
        if (self._file is None or self._meta is None) and not self.is_fresh():
            raise BioscanError("the record cache is missing or out of date", path=self.path)
        return self._file, self._meta


def _by_split(batch: pa.RecordBatch) -> Iterable[tuple[str, pa.RecordBatch]]:
    split = batch.column(SPLIT_COLUMN)
    if split.null_count == batch.num_rows:
        yield NO_SPLIT, batch
        return
    values = split.cast(pa.string())
    for name in pc.unique(values).drop_null().to_pylist():
        yield name, batch.filter(pc.equal(values, name))
    if split.null_count:
        yield NO_SPLIT, batch.filter(pc.is_null(values))


class _RowGroupWriter:
    """A Parquet file of ``RECORD_SCHEMA`` batches re-cut into row groups of exactly ``ROW_GROUP_ROWS`` rows
    (``cut=False``: one per batch, for scratch files); ``finish_group`` ends the current one early (a split's
    last). ``groups`` and ``rows`` count what is written."""

    def __init__(self, path: Path, cut: bool = True, **options) -> None:
        self.path = Path(path)
        self.cut = cut
        self.rows = 0
        self.groups = 0
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.path, RECORD_SCHEMA, **options)
        self._pending: list[pa.RecordBatch] = []
        self._count = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        if not self.cut:
            self._writer.write_batch(batch)
            return
        self._pending.append(batch)
        self._count += batch.num_rows
        while self._count >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(self._pending, schema=RECORD_SCHEMA)
            self._write_group(table.slice(0, ROW_GROUP_ROWS))
            rest = table.slice(ROW_GROUP_ROWS)
            self._pending, self._count = rest.to_batches(), rest.num_rows

    def finish_group(self) -> int:
        """Write what is pending as a (shorter) row group; the number of row groups written so far."""
        if self._count:
            self._write_group(pa.Table.from_batches(self._pending, schema=RECORD_SCHEMA))
            self._pending, self._count = [], 0
        return self.groups

    def close(self, metadata: dict[str, str] | None = None) -> None:
        """Finish the file (with ``metadata`` in its footer); closing again does nothing."""
        if self._writer is None:
            return
        try:
            self.finish_group()
            if metadata:
                self._writer.add_key_value_metadata(metadata)
        finally:
            self._writer.close()
            self._writer = None

    def _write_group(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.groups += 1


def _footer(meta: dict, names: LabelNames) -> dict[str, str]:
    return {_KEY: json.dumps(meta), _LABELS: json.dumps(names.result())}


def json_digest(value: object) -> str:
    """SHA-256 (hex) of a JSON-able value, keys sorted: the one way cache keys are made from descriptions."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
