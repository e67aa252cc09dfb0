"""``load_records``: any supported source as one typed record table, with stable label maps.

>>> records = load_records("BIOSCAN_5M", split="train", columns=["species", "dna_barcode"])  # doctest: +SKIP
>>> records.labels("species")[:3], records.label_map("species").names[:2]                 # doctest: +SKIP

The first open of a source writes a Parquet cache (see :mod:`bioscan5m.data.cache`); later opens read only
the splits and columns asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bioscan5m.data.cache import NO_SPLIT, LabelNames, RecordCache, source_fingerprint
from bioscan5m.data.readers import DEFAULT_MARKER, detect_format, read_batches
from bioscan5m.data.schema import (
    COLUMN_NAMES,
    DNA_COLUMN,
    ID_COLUMN,
    RECORD_SCHEMA,
    SPLIT_COLUMN,
    SPLITS,
    check_rank,
    parse_splits,
)
from bioscan5m.data.sequences import clean_barcodes, first_non_dna_letter
from bioscan5m.errors import BioscanError

#: Where the metadata lives inside a BIOSCAN-5M dataset root, most preferred first.
METADATA_PATHS: tuple[str, ...] = (
    "bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv",
    "bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv.gz",
    "bioscan5m/metadata/jsonld/BIOSCAN_5M_Insect_Dataset_metadata.jsonld",
)


class LabelMap:
    """Names of one rank ↔ integer class indices; index ``i`` is ``names[i]``, ``-1`` means missing.

    Built from the sorted distinct names over a whole source, so indices agree across its splits.
    """

    def __init__(self, rank: str, names: Iterable[str]) -> None:
        self.rank = rank
        self.names: tuple[str, ...] = tuple(names)
        self._values = pa.array(self.names, pa.string())

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMap) and (self.rank, self.names) == (other.rank, other.names)

    def __hash__(self) -> int:
        return hash((self.rank, self.names))

    def __repr__(self) -> str:
        return f"LabelMap({self.rank!r}, {len(self)} names)"

    def encode(self, names: Iterable[str | None] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """int64 index of each name; ``-1`` for missing (None) or names not in the map. Shape ``(n,)``."""
        if isinstance(names, pa.ChunkedArray):
            parts = [self.encode(chunk) for chunk in names.chunks]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if isinstance(names, pa.DictionaryArray):
            # Look up each distinct name once, then spread by the indices.
            codes = self.encode(names.dictionary)
            indices = pc.fill_null(names.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            if not len(codes):
                return np.full(len(indices), -1, dtype=np.int64)
            encoded = codes[np.maximum(indices, 0)]
            encoded[indices < 0] = -1
            return encoded
        if not isinstance(names, pa.Array):
            names = pa.array(list(names), pa.string())
        found = pc.index_in(names.cast(pa.string()), value_set=self._values)
        return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)

    def decode(self, indices: Iterable[int] | np.ndarray) -> list[str | None]:
        """Name of each index; ``-1`` gives None. An index outside ``[-1, len)`` is a BioscanError."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = (indices < -1) | (indices >= len(self.names))
        if bad.any():
            value = int(indices[bad][0])
            raise BioscanError(f"{self.rank} index {value} is outside 0..{len(self.names) - 1}", value=value)
        lookup = np.array((*self.names, None), dtype=object)
        return lookup[indices].tolist()


class Records:
    """A typed record table (``RECORD_SCHEMA`` columns) from one source, with label maps over the whole source.

    Attributes: ``table`` (pyarrow.Table), ``source`` (Path of the file read), ``cache_path`` (Path of its
    Parquet cache, or None).
    """

    def __init__(
        self,
        table: pa.Table,
        source: Path,
        label_names: Callable[[], dict[str, tuple[str, ...]]],
        cache_path: Path | None = None,
    ) -> None:
        self.table = table
        self.source = Path(source)
        self.cache_path = cache_path
        self._label_names = label_names
        self._label_maps: dict[str, LabelMap] = {}

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return f"Records({len(self):,} records, {self.table.num_columns} columns, from {self.source.name})"

    def to_pandas(self):
        """A pandas DataFrame (dictionary columns become categoricals)."""
        return self.table.to_pandas()

    def to_polars(self):
        """A polars DataFrame (needs the ``polars`` package)."""
        try:
            import polars
        except ImportError as error:
            raise ImportError("Records.to_polars needs polars: pip install polars") from error
        return polars.from_arrow(self.table)

    def column(self, name: str) -> np.ndarray:
        """One column as a NumPy array: text as object (None where missing), numbers as float/int (NaN where missing)."""
        data = self.table.column(self._loaded(name))
        if pa.types.is_dictionary(data.type) or pa.types.is_string(data.type):
            return pc.cast(data, pa.string()).to_numpy(zero_copy_only=False)
        return data.to_numpy()

    @property
    def ids(self) -> np.ndarray:
        """The ``processid`` of every record (object array of str), shape ``(n,)``."""
        return self.column(ID_COLUMN)

    def barcodes(self, clean: bool = True, **clean_options) -> list[str]:
        """DNA barcodes, cleaned by :func:`~bioscan5m.data.sequences.clean_barcodes` unless ``clean=False``
        (then raw, None where missing). ``clean_options``: ``iupac``, ``max_length``."""
        raw = self.table.column(self._loaded(DNA_COLUMN))
        if not clean:
            return raw.to_pylist()
        try:
            return clean_barcodes(raw, **clean_options)
        except BioscanError as error:
            # Name the record rather than its position: find the first barcode with a bad letter.
            seqs = raw.to_pylist()
            bad = next((i for i, seq in enumerate(seqs) if seq and first_non_dna_letter(seq)), None)
            if bad is None:
                raise
            letter = first_non_dna_letter(seqs[bad])
            raise BioscanError(
                f"record {self.ids[bad]}: {letter!r} in its barcode is not a DNA letter (IUPAC nucleotide code)",
                path=self.source,
                value=letter,
            ) from error

    def label_map(self, rank: str) -> LabelMap:
        """The label map of ``rank`` (a target rank, e.g. ``species`` or ``dna_bin``) over the whole source."""
        check_rank(rank)
        if rank not in self._label_maps:
            self._label_maps[rank] = LabelMap(rank, self._label_names()[rank])
        return self._label_maps[rank]

    def labels(self, rank: str) -> np.ndarray:
        """int64 class index of every record at ``rank`` (``-1`` where missing), shape ``(n,)``."""
        label_map = self.label_map(rank)
        return label_map.encode(self.table.column(self._loaded(rank)))

    def filter(self, mask: np.ndarray | pa.Array | Sequence[bool]) -> Records:
        """The records where ``mask`` (bool, one per record) is true; label maps are kept."""
        mask = pa.array(np.asarray(mask, dtype=bool)) if not isinstance(mask, pa.Array | pa.ChunkedArray) else mask
        if len(mask) != len(self):
            raise BioscanError(f"the mask has {len(mask)} values for {len(self)} records", value=len(mask))
        return Records(self.table.filter(mask), self.source, self._label_names, self.cache_path)

    def take(self, indices: np.ndarray | pa.Array | Sequence[int]) -> Records:
        """The records at ``indices``, in that order; label maps are kept."""
        return Records(self.table.take(pa.array(np.asarray(indices, dtype=np.int64))), self.source,
                       self._label_names, self.cache_path)

    def _loaded(self, name: str) -> str:
        if name not in self.table.column_names:
            raise BioscanError(
                f"column {name!r} was not loaded; add it to columns= (loaded: {', '.join(self.table.column_names)})",
                path=self.source,
                value=name,
            )
        return name


def load_records(
    source: str | os.PathLike[str],
    split: str | Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
    *,
    format: str | None = None,
    taxonomy: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    marker: str | None = DEFAULT_MARKER,
    bad_lines: str = "error",
) -> Records:
    """Load records from a metadata file or a BIOSCAN-5M dataset root.

    ``source``: a BIOSCAN-5M metadata CSV or JSON-LD, a BOLD TSV (v3 combined or v5 data package), a FASTA
    file (plain or gzip; the format is detected, or forced with ``format=``), or a dataset root holding
    ``bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv``.
    ``split``: a split, a group (``seen``, ``unseen``, ``all``) or a ``+`` combination (``"train+val"``);
    None keeps every record. ``columns``: record columns to load (``processid`` is always included).
    ``taxonomy``: TSV of taxonomy keyed by FASTA sequence id. ``cache_dir``: the cache root that keeps the
    Parquet cache, keyed by the source's content (default ``$BIOSCAN5M_CACHE_DIR`` or the user cache folder;
    see :mod:`bioscan5m.data.cache`); ``use_cache=False`` reads the source every time. ``marker``: BOLD marker code to keep
    (None keeps all). ``bad_lines``: ``"error"`` (default) or ``"skip"`` lines with the wrong number of fields.
    """
    path = resolve_source(source)
    splits = parse_splits(split) if split is not None else None
    wanted = _check_columns(columns)
    format = format or detect_format(path)
    reader_options = {"format": format, "marker": marker, "bad_lines": bad_lines, "taxonomy": taxonomy}
    if not use_cache:
        table = pa.Table.from_batches(list(read_batches(path, **reader_options)), schema=RECORD_SCHEMA)
        names = LabelNames()
        names.add(table)
        label_names = names.result()
        present = set(pc.unique(table.column(SPLIT_COLUMN).cast(pa.string())).to_pylist())
        _check_has_splits(path, splits, bool(present - {None}))
        split_names = table.column(SPLIT_COLUMN).cast(pa.string())
        if splits is not None:
            table = table.filter(pc.is_in(split_names, pa.array(splits)))
            split_names = table.column(SPLIT_COLUMN).cast(pa.string())
        # The order a cached open gives: by split in the paper's order, file order within a split.
        rank = pc.fill_null(pc.index_in(split_names, value_set=pa.array(SPLITS)), len(SPLITS))
        if not _ascending(rank):  # already in that order (e.g. no splits): no copy of the whole table
            table = table.take(pc.sort_indices(rank))  # Arrow's sort is stable
        return Records(table.select(wanted), path, lambda: label_names)
    cache = RecordCache.for_source(path, _cache_options(path, reader_options, cache_dir), cache_dir)
    if not cache.is_fresh():
        cache.build(read_batches(path, **reader_options))
    _check_has_splits(path, splits, any(name != NO_SPLIT for name in cache.splits))
    try:
        table = cache.read(splits, wanted)
    except (OSError, pa.ArrowException):  # damaged after its footer was read: build it again
        cache.build(read_batches(path, **reader_options))
        table = cache.read(splits, wanted)
    return Records(table, path, cache.label_names, cache.path)


def resolve_source(source: str | os.PathLike[str]) -> Path:
    """The metadata file of ``source``: itself if a file, the metadata inside it if a dataset root."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for relative in METADATA_PATHS:
            if (path / relative).is_file():
                return path / relative
        raise BioscanError(
            f"no BIOSCAN-5M metadata in this directory (looked for {', '.join(METADATA_PATHS)})", path=path
        )
    raise BioscanError("no such file or directory", path=path)


def _check_columns(columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return list(COLUMN_NAMES)
    if isinstance(columns, str):
        columns = [columns]
    for name in columns:
        if name not in COLUMN_NAMES:
            raise BioscanError(f"unknown column {name!r}; choose from {', '.join(COLUMN_NAMES)}", value=name)
    wanted = list(dict.fromkeys(columns))
    return wanted if ID_COLUMN in wanted else [ID_COLUMN, *wanted]


def _ascending(values: pa.ChunkedArray | pa.Array) -> bool:
    values = values.to_numpy()
    return bool((values[1:] >= values[:-1]).all())


def _check_has_splits(path: Path, splits: Sequence[str] | None, has_splits: bool) -> None:
    if splits is not None and not has_splits:
        raise BioscanError(
            "these records have no BIOSCAN-5M split assignments, so split= cannot select any; leave it out",
            path=path,
            value=",".join(splits),
        )


def _cache_options(path: Path, options: dict, cache_dir: str | os.PathLike[str] | None) -> dict:
    """The reader options that differ from the defaults (they name the cache variant and enter its key)."""
    differing = {}
    try:
        detected = detect_format(path)
    except BioscanError:
        detected = None
    if options["format"] != detected:
        differing["format"] = options["format"]
    if options["marker"] != DEFAULT_MARKER:
        differing["marker"] = options["marker"]
    if options["bad_lines"] != "error":
        differing["bad_lines"] = options["bad_lines"]
    if options["taxonomy"] is not None:
        taxonomy = Path(options["taxonomy"])
        if not taxonomy.is_file():
            raise BioscanError("no such taxonomy file", path=taxonomy)
        differing["taxonomy"] = {"path": str(taxonomy.resolve()), **source_fingerprint(taxonomy, cache_dir)}
    return differing
