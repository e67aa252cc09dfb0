"""PyTorch datasets over BIOSCAN-5M and any other record source.

:class:`BIOSCAN5M` is a drop-in for the authors' ``bioscan_dataset.BIOSCAN5M``: same arguments and, item
for item, the same samples in the same order with the same types (raw barcode cut to ``max_nucleotides``,
NumPy integer targets of pandas' category-code dtype, NaN for a missing name), checked side by side by
``tests/test_datasets_compat.py``. It reads through :func:`~bioscan5m.data.records.load_records` (a Parquet
cache instead of re-parsing the 5M-row CSV) and :class:`~bioscan5m.data.images.ImageStore` (images straight
from the zips). :class:`RecordsDataset` offers the same over any :class:`~bioscan5m.data.records.Records`
(BOLD TSV, FASTA, ...).

Per-sample data are read from Arrow arrays and NumPy integer arrays, not Python objects, so forked
DataLoader workers share them instead of copying them page by page.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from bioscan5m.data.dedup import DEDUPLICATION_SEED
from bioscan5m.data.images import ImageStore, check_package, image_path
from bioscan5m.data.schema import (
    DNA_COLUMN,
    ID_COLUMN,
    MAX_NUCLEOTIDES,
    SPLIT_COLUMN,
    TARGET_RANKS,
    check_rank,
    parse_splits,
)
from bioscan5m.errors import BioscanError

if TYPE_CHECKING:
    import pandas

    from bioscan5m.data.records import LabelMap, Records

#: Names accepted for the DNA modality (the authors' loader accepts all three).
DNA_MODALITIES = ("dna", "dna_barcode", "barcode")
IMAGE_MODALITY = "image"
TARGET_FORMATS = ("index", "text")
OUTPUT_FORMATS = ("tuple", "dict")


def index_dtype(count: int) -> np.dtype:
    """The dtype pandas gives the codes of a categorical with ``count`` categories (``Series.cat.codes``):
    the smallest of int8, int16, int32 whose maximum exceeds ``count``, else int64. The authors' targets
    are these codes, so e.g. species indices are int16 on BIOSCAN-5M and int8 on a small dataset."""
    for dtype in (np.int8, np.int16, np.int32):
        if count < np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _as_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def image_paths(table: pa.Table) -> pa.ChunkedArray:
    """:func:`~bioscan5m.data.images.image_path` of every record (null where the split is), vectorised."""
    split = table.column(SPLIT_COLUMN).cast(pa.string())
    chunk = table.column("chunk").cast(pa.string())
    file = pc.binary_join_element_wise(table.column(ID_COLUMN), pa.scalar(".jpg"), "")
    has_chunk = pc.fill_null(pc.not_equal(chunk, ""), False)
    return pc.if_else(has_chunk, pc.binary_join_element_wise(split, chunk, file, "/"),
                      pc.binary_join_element_wise(split, file, "/"))


def one_record_per_barcode(barcodes: Sequence[str], seed: int = DEDUPLICATION_SEED) -> np.ndarray:
    """Boolean mask keeping one record per distinct barcode, the one picked after a seeded shuffle.

    ``RecordsDataset(reduce_repeated_barcodes=True)`` uses it for any table: records are shuffled in the
    order given with ``numpy.random.RandomState(seed)`` and the first of each barcode is kept, so the choice
    is not biased by collection order. ``barcodes`` should be cleaned; records without one are all kept.
    (``BIOSCAN5M`` follows the authors' rule on the raw metadata file instead: :mod:`bioscan5m.data.dedup`.)
    """
    from bioscan5m.data.sequences import deduplicate_barcodes

    empty = np.fromiter((not barcode for barcode in barcodes), dtype=bool, count=len(barcodes))
    order = np.random.RandomState(seed).permutation(len(barcodes))
    present = order[~empty[order]]
    keep_in_present, _ = deduplicate_barcodes([barcodes[i] for i in present])
    keep = empty.copy()
    keep[present[keep_in_present]] = True
    return keep


class RecordsDataset(torch.utils.data.Dataset):
    """Samples from any :class:`~bioscan5m.data.records.Records`: image, DNA, other columns and targets.

    Values follow bioscan-dataset's conventions (what a row of its pandas metadata frame holds), except
    that barcodes are cleaned unless ``clean_barcodes=False``.

    Args:
        records: the records, one sample each (e.g. from ``load_records("bold.tsv")``).
        images: where the images are; required when ``modality`` includes ``"image"``.
        modality: what each sample holds, in order: ``"image"`` (the decoded PIL image in the file's own
            mode, as ``PIL.Image.open`` gives it, or ``transform``'s output), ``"dna"`` (the barcode string,
            or ``dna_transform``'s output) and/or any column name (its value: ``str`` for text, NaN where
            missing; ``numpy.float64`` for numbers, NaN where missing; ``int`` for the integer columns
            ``inferred_ranks`` and ``index_bioscan_1M_insect``, -1 where missing). Also ``"<rank>_index"``
            (as the index target) and ``"image_path"``.
        target_type: rank(s) to return as target, from ``TARGET_RANKS`` (``"uri"`` means ``"dna_bin"``);
            empty for no target (then the target is None).
        target_format: ``"index"`` (a NumPy integer of :func:`index_dtype`, -1 where missing; indices from
            the label maps built over the whole source, so identical across splits) or ``"text"`` (the
            name, NaN where missing).
        output_format: ``"tuple"`` (modalities..., target) or ``"dict"`` (modality keys, each target's
            ``<rank>`` name and ``<rank>_index``, and ``"target"``).
        max_nucleotides: barcodes are cut to this many characters; None keeps them whole.
        clean_barcodes: True (default here) cleans each barcode first (gaps and whitespace removed, upper
            case, flanking N stripped: :func:`~bioscan5m.data.sequences.clean_barcode`; ``""`` where there
            is none), as BOLD exports carry aligned sequences. False gives the raw barcode cut to
            ``max_nucleotides`` (NaN where there is none).
        reduce_repeated_barcodes: keep one record per distinct (cleaned) barcode, see
            :func:`one_record_per_barcode`.
        transform, dna_transform, target_transform: applied to the image, the barcode and the target.
    """

    #: Whether barcodes are cleaned unless told otherwise (BIOSCAN5M follows the authors: raw).
    _clean_by_default = True

    def __init__(
        self,
        records: Records,
        images: ImageStore | None = None,
        *,
        modality: str | Iterable[str] = ("image", "dna"),
        target_type: str | Iterable[str] = "species",
        target_format: str = "index",
        output_format: str = "tuple",
        max_nucleotides: int | None = MAX_NUCLEOTIDES,
        reduce_repeated_barcodes: bool = False,
        transform: Callable | None = None,
        dna_transform: Callable | None = None,
        target_transform: Callable | None = None,
        clean_barcodes: bool = True,
    ) -> None:
        self.modality = _as_list(modality)
        self.target_type = [check_rank("dna_bin" if t == "uri" else t) for t in _as_list(target_type)]
        if target_format not in TARGET_FORMATS:
            raise BioscanError(f"unknown target_format {target_format!r}; choose from {', '.join(TARGET_FORMATS)}",
                               value=target_format)
        output_format = "dict" if output_format == "dictionary" else output_format
        if output_format not in OUTPUT_FORMATS:
            raise BioscanError(f"unknown output_format {output_format!r}; choose from {', '.join(OUTPUT_FORMATS)}",
                               value=output_format)
        if target_transform is not None and not self.target_type:
            raise BioscanError("target_transform is given but target_type is empty")
        if max_nucleotides is not None and max_nucleotides < 1:
            raise BioscanError(f"max_nucleotides must be positive or None, got {max_nucleotides}", value=max_nucleotides)
        self.target_format = target_format
        self.output_format = output_format
        self.max_nucleotides = max_nucleotides
        self.clean_barcodes = clean_barcodes
        self.reduce_repeated_barcodes = reduce_repeated_barcodes
        self.transform = transform
        self.dna_transform = dna_transform
        self.target_transform = target_transform
        self.images = images

        columns = set(records.table.column_names)
        derived = {f"{rank}_index" for rank in TARGET_RANKS} | {"image_path"}
        for name in self.modality:
            if name == IMAGE_MODALITY:
                if images is None:
                    raise BioscanError("the 'image' modality needs an image store (images=ImageStore.open(...))")
            elif name in DNA_MODALITIES:
                if DNA_COLUMN not in columns:
                    raise BioscanError(f"the DNA modality needs the {DNA_COLUMN!r} column", path=records.source)
            elif name not in columns and name not in derived:
                raise BioscanError(
                    f"unknown modality {name!r}: use 'image', 'dna' or a column ({', '.join(sorted(columns))})",
                    value=name,
                )
        if reduce_repeated_barcodes:
            records = records.filter(one_record_per_barcode(self._clean_all(records)))
        self.records = records
        self.label_maps: dict[str, LabelMap] = {rank: records.label_map(rank) for rank in self.target_type}
        self._labels = {rank: self._codes(rank) for rank in self.target_type}
        self._table = records.table
        # Row r of the table is row r - starts[k] of chunk k; columns of one table share chunk bounds.
        self._columns: dict[str, tuple[list[pa.Array], np.ndarray]] = {}

    def _clean_all(self, records: Records) -> list[str]:
        return records.barcodes(clean=True, max_length=self.max_nucleotides)

    def _codes(self, rank: str) -> np.ndarray:
        """Every record's index at ``rank``, in pandas' category-code dtype for that rank's label count."""
        dtype = index_dtype(len(self.label_map(rank)))
        return np.ascontiguousarray(self.records.labels(rank), dtype=dtype)

    # --- label lookup ------------------------------------------------------------------------------

    def _rank_for(self, column: str | None) -> str:
        if column is not None:
            return check_rank("dna_bin" if column == "uri" else column)
        if len(self.target_type) != 1:
            raise BioscanError("name the column (rank): the dataset does not have exactly one target_type")
        return self.target_type[0]

    def label_map(self, rank: str) -> LabelMap:
        """The label ↔ index map of ``rank``, built over the whole source (same for every split)."""
        rank = check_rank("dna_bin" if rank == "uri" else rank)
        if rank not in self.label_maps:
            self.label_maps[rank] = self.records.label_map(rank)
        return self.label_maps[rank]

    def index2label(self, index: int | Iterable[int], column: str | None = None) -> str | np.ndarray:
        """Label name(s) of integer index(es) at rank ``column`` (default: the single target_type).

        Negative indices (missing) give ``""``. A scalar gives a str, a sequence a NumPy array of str.
        """
        if isinstance(index, str):
            raise BioscanError(f"index must be an int or ints, not the string {index!r}; did you mean label2index?",
                               value=index)
        names = self.label_map(self._rank_for(column)).decode(np.atleast_1d(np.asarray(index, dtype=np.int64)))
        decoded = np.array(["" if name is None else name for name in names], dtype=object)
        return decoded[0] if np.ndim(index) == 0 else decoded

    def label2index(self, label: str | Iterable[str], column: str | None = None) -> int | np.ndarray:
        """Integer index(es) of label name(s) at rank ``column`` (default: the single target_type).

        ``""`` and None give -1; a name the source never uses raises a BioscanError naming it.
        """
        if isinstance(label, (int, np.integer)):
            raise BioscanError(f"label must be a name or names, not the int {label}; did you mean index2label?",
                               value=label)
        rank = self._rank_for(column)
        scalar = label is None or isinstance(label, str) or (isinstance(label, float) and math.isnan(label))
        labels = [label] if scalar else list(label)
        present = [not (x is None or x == "" or (isinstance(x, float) and math.isnan(x))) for x in labels]
        codes = self.label_map(rank).encode([x if ok else None for x, ok in zip(labels, present)])
        codes = np.asarray(codes, dtype=np.int64)
        unknown = [x for x, ok, code in zip(labels, present, codes) if ok and code < 0]
        if unknown:
            raise BioscanError(f"label {unknown[0]!r} not found at rank {rank!r}", value=unknown[0])
        return int(codes[0]) if scalar else codes

    # --- metadata ----------------------------------------------------------------------------------

    @cached_property
    def metadata(self) -> pandas.DataFrame:
        """The samples' records as a DataFrame, plus ``<rank>_index`` columns and ``image_path``.

        As in the authors' frame, each rank (and ``taxon``, ``country``, ``province_state``) is a categorical
        whose categories are the sorted names over the whole source (so a rank's ``cat.codes`` are its index
        targets, in :func:`index_dtype`) and ``dna_barcode`` is cut to ``max_nucleotides``.
        """
        import pandas

        frame = self.records.to_pandas()
        for rank in TARGET_RANKS:
            if rank in frame.columns:
                codes = self._codes(rank)
                frame[rank] = pandas.Categorical.from_codes(codes, categories=list(self.label_map(rank).names))
                frame[f"{rank}_index"] = codes
        for name in frame.columns:
            if name not in TARGET_RANKS and name != SPLIT_COLUMN and isinstance(frame[name].dtype, pandas.CategoricalDtype):
                frame[name] = pandas.Categorical(frame[name], categories=self._names_in_source(name))
        if DNA_COLUMN in frame.columns and self.max_nucleotides is not None:
            frame[DNA_COLUMN] = frame[DNA_COLUMN].str[: self.max_nucleotides]
        names = self._table.column_names
        if SPLIT_COLUMN in names and "chunk" in names:
            frame["image_path"] = image_paths(self._table).to_pandas()
        return frame

    def _names_in_source(self, column: str) -> list[str]:
        """Sorted distinct values of a text column over the whole source (read from the record cache)."""
        import pyarrow.parquet as pq

        path = self.records.cache_path
        values = pq.read_table(path, columns=[column]).column(column) if path else self._table.column(column)
        return sorted(pc.unique(values.cast(pa.string())).drop_null().to_pylist())

    # --- samples -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._table.num_rows

    def _scalar(self, name: str, row: int) -> pa.Scalar:
        """The Arrow scalar at ``row`` of column ``name``, without combining chunks (no copy of the table)."""
        found = self._columns.get(name)
        if found is None:
            chunks = self._table.column(name).chunks
            starts = np.cumsum([0] + [len(chunk) for chunk in chunks[:-1]], dtype=np.int64)
            found = self._columns[name] = (chunks, starts)
        chunks, starts = found
        k = int(np.searchsorted(starts, row, side="right")) - 1
        return chunks[k][row - int(starts[k])]

    def _raw(self, name: str, row: int) -> Any:
        """A column's value in Python, None where missing."""
        return self._scalar(name, row).as_py()

    def _value(self, name: str, row: int) -> Any:
        """A column's value as a row of the authors' pandas frame holds it: str (NaN where missing),
        numpy.float64; integer columns (not in the authors' frame) as int, -1 where missing."""
        if name.endswith("_index") and name[: -len("_index")] in TARGET_RANKS:
            rank = name[: -len("_index")]
            labels = self._labels.get(rank)
            if labels is None:
                labels = self._labels[rank] = self._codes(rank)
            return labels[row]
        if name == "image_path":
            split = self._raw(SPLIT_COLUMN, row)
            return image_path(split, self._raw("chunk", row), self._raw(ID_COLUMN, row)) if split else ""
        scalar = self._scalar(name, row)
        value = scalar.as_py()
        value_type = scalar.type.value_type if pa.types.is_dictionary(scalar.type) else scalar.type
        if pa.types.is_floating(value_type):
            return np.float64(math.nan if value is None else value)
        if value is not None:
            return value
        return -1 if pa.types.is_integer(value_type) else math.nan

    def barcode(self, row: int) -> str | float:
        """The DNA barcode of sample ``row`` before ``dna_transform``: cut to ``max_nucleotides`` (NaN if it
        has none), or cleaned and cut with ``clean_barcodes=True`` ("" if it has none)."""
        from bioscan5m.data.sequences import clean_barcode

        raw = self._scalar(DNA_COLUMN, row).as_py()
        if not self.clean_barcodes:
            return math.nan if raw is None else raw[: self.max_nucleotides]
        if not raw:
            return ""
        try:
            return clean_barcode(raw, max_length=self.max_nucleotides)
        except BioscanError as error:
            raise BioscanError(f"record {self._value(ID_COLUMN, row)}: {error}", path=self.records.source,
                               value=error.value) from None

    def image(self, row: int):
        """The PIL image of sample ``row`` in its file's own mode (before ``transform``)."""
        processid = self._raw(ID_COLUMN, row)
        split = self._raw(SPLIT_COLUMN, row) if SPLIT_COLUMN in self._table.column_names else None
        chunk = self._raw("chunk", row) if "chunk" in self._table.column_names else None
        # Without a split (non-BIOSCAN sources) the store finds the image by processid alone.
        return self.images.load(processid, split or None, chunk, rgb=False)

    def _target(self, row: int) -> Any:
        if self.target_format == "index":
            target = [self._labels[rank][row] for rank in self.target_type]
        else:
            target = [self._text_label(rank, row) for rank in self.target_type]
        if not target:
            return None
        target = tuple(target) if len(target) > 1 else target[0]
        return self.target_transform(target) if self.target_transform is not None else target

    def _text_label(self, rank: str, row: int) -> str | float:
        code = int(self._labels[rank][row])
        return self.label_maps[rank].names[code] if code >= 0 else math.nan

    def __getitem__(self, index: int) -> tuple | dict[str, Any]:
        """One sample: ``(modality values..., target)``, or a dict (see the class docstring)."""
        row = int(index)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        values: list[tuple[str, Any]] = []
        for name in self.modality:
            if name == IMAGE_MODALITY:
                value = self.image(row)
                if self.transform is not None:
                    value = self.transform(value)
            elif name in DNA_MODALITIES:
                value = self.barcode(row)
                if self.dna_transform is not None:
                    value = self.dna_transform(value)
            else:
                value = self._value(name, row)
            values.append((name, value))
        if self.output_format == "tuple":
            return tuple(value for _, value in values) + (self._target(row),)
        for rank in self.target_type:
            values.append((rank, self._text_label(rank, row)))
            values.append((f"{rank}_index", self._labels[rank][row]))
        values.append(("target", self._target(row)))
        return dict(values)

    # --- description -------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """Settings that differ between datasets, one per line."""
        lines = []
        if self.images is not None:
            lines.append(f"images: {self.images!r}")
        lines += self._settings_repr()
        return "\n".join(lines)

    def _settings_repr(self) -> list[str]:
        lines = [f"modality: {self.modality!r}"]
        if self.reduce_repeated_barcodes:
            lines.append(f"reduce_repeated_barcodes: {self.reduce_repeated_barcodes!r}")
        if any(m in DNA_MODALITIES for m in self.modality) and self.max_nucleotides != MAX_NUCLEOTIDES:
            lines.append(f"max_nucleotides: {self.max_nucleotides!r}")
        if any(m in DNA_MODALITIES for m in self.modality) and self.clean_barcodes != self._clean_by_default:
            lines.append(f"clean_barcodes: {self.clean_barcodes!r}")
        lines.append(f"target_type: {self.target_type!r}")
        if self.target_type:
            lines.append(f"target_format: {self.target_format!r}")
        lines.append(f"output_format: {self.output_format!r}")
        for name in ("transform", "dna_transform", "target_transform"):
            if getattr(self, name) is not None:
                lines.append(f"{name}: {getattr(self, name)!r}")
        return lines

    def _location_repr(self) -> str:
        return f"Source: {self.records.source}"

    def __repr__(self) -> str:
        body = [f"Number of datapoints: {len(self)}", self._location_repr()] + self.extra_repr().splitlines()
        return "\n".join([f"Dataset {type(self).__name__}"] + ["    " + line for line in body])


class BIOSCAN5M(RecordsDataset):
    """The BIOSCAN-5M dataset: a drop-in for the authors' ``bioscan_dataset.BIOSCAN5M`` (1.3.0).

    Same arguments, and item for item the same samples: same records in the same order (the metadata
    file's, also across a ``+`` combination of splits), the raw barcode cut to ``max_nucleotides``, index
    targets as NumPy integers of pandas' category-code dtype (:func:`index_dtype`), NaN for a missing name
    or text value, ``numpy.float64`` numbers, the image in its file's own mode.

    Args:
        root: dataset root holding ``bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv`` and
            the images: extracted (``bioscan5m/images/<package>/``) or as downloaded zips
            (``BIOSCAN_5M_<package>*.zip``, read without extracting).
        split: a split (``"train"``, ...), a group (``"seen"``, ``"unseen"``, ``"all"``) or a ``+``
            combination (``"pretrain+train"``), or a list of any of these; ``"validation"`` means ``"val"``,
            None means ``"all"``.
        image_package: ``"original_full"``, ``"cropped"``, ``"original_256"`` or ``"cropped_256"``.
        reduce_repeated_barcodes: one record per barcode, chosen over the whole metadata file before the split
            is taken, exactly as the authors' loader does (:mod:`bioscan5m.data.dedup`; computed once per file
            and kept in the cache folder), so the same records survive in every split combination.
        download: fetch what is missing first (metadata, and images if ``"image"`` is a modality) through
            :func:`bioscan5m.data.download.download_dataset`.
        cache_dir: the cache folder (default ``$BIOSCAN5M_CACHE_DIR`` or the user cache folder; see
            :mod:`bioscan5m.cachedir`) for the Parquet record table, the de-duplication answer and zip indexes.
        clean_barcodes: False (default, as the authors) gives the raw barcode cut to ``max_nucleotides``,
            leading and trailing ``N`` kept; True cleans it first (this toolkit's rule, a deviation:
            :func:`~bioscan5m.data.sequences.clean_barcode`), as its own training and retrieval do.

    The other arguments are those of :class:`RecordsDataset`. ``metadata`` is a pandas DataFrame of the
    selected records with ``<rank>_index`` and ``image_path`` columns.
    """

    _clean_by_default = False

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | Iterable[str] = "train",
        modality: str | Iterable[str] = ("image", "dna"),
        image_package: str = "cropped_256",
        reduce_repeated_barcodes: bool = False,
        max_nucleotides: int | None = MAX_NUCLEOTIDES,
        target_type: str | Iterable[str] = "species",
        target_format: str = "index",
        output_format: str = "tuple",
        transform: Callable | None = None,
        dna_transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        clean_barcodes: bool = False,
    ) -> None:
        from bioscan5m.data.records import load_records

        self.root = Path(root).expanduser()
        split = "all" if split is None else split
        parts = split.split("+") if isinstance(split, str) else [p for s in split for p in s.split("+")]
        self.split = "+".join("val" if part.strip() == "validation" else part.strip() for part in parts)
        self.splits = parse_splits(self.split)
        self.image_package = check_package(image_package)
        wants_images = IMAGE_MODALITY in _as_list(modality)
        if download:
            from bioscan5m.data.download import download_dataset

            what = ("metadata", "images") if wants_images else ("metadata",)
            download_dataset(self.root, what=what, image_package=image_package, splits=self.splits)
        self._check_metadata()
        split_spec = "+".join(self.splits)
        records = load_records(self.root, split=split_spec, cache_dir=cache_dir)
        if len(self.splits) > 1:
            records = self._in_file_order(records, cache_dir)
        if reduce_repeated_barcodes:
            records = records.filter(self._kept_by_deduplication(records, max_nucleotides, cache_dir))
        images = ImageStore.open(self.root, image_package, cache_dir=cache_dir) if wants_images else None
        super().__init__(
            records, images, modality=modality, target_type=target_type, target_format=target_format,
            output_format=output_format, max_nucleotides=max_nucleotides, reduce_repeated_barcodes=False,
            transform=transform, dna_transform=dna_transform, target_transform=target_transform,
            clean_barcodes=clean_barcodes,
        )
        self.reduce_repeated_barcodes = reduce_repeated_barcodes

    def _check_metadata(self) -> None:
        from bioscan5m.data.records import resolve_source

        try:
            resolve_source(self.root)
        except BioscanError as error:
            raise BioscanError(
                f"BIOSCAN-5M metadata not found ({error.reason}); pass download=True or run "
                f"'bioscan5m download --root {self.root} metadata'",
                path=self.root,
            ) from None

    def _in_file_order(self, records: Records, cache_dir: str | os.PathLike[str] | None) -> Records:
        """``records`` of several splits (grouped by split in the cache) in the metadata file's row order."""
        from bioscan5m.data.dedup import file_order
        from bioscan5m.data.records import resolve_source

        return records.take(file_order(self.splits, records.table.column(SPLIT_COLUMN), resolve_source(self.root),
                                       cache_dir))

    def _kept_by_deduplication(self, records: Records, max_nucleotides: int | None,
                               cache_dir: str | os.PathLike[str] | None) -> np.ndarray:
        """Mask over ``records`` of those the authors' loader keeps when deduplicating the whole file."""
        from bioscan5m.data.dedup import kept_record_ids
        from bioscan5m.data.records import resolve_source

        kept_ids = kept_record_ids(resolve_source(self.root), max_nucleotides, cache_dir)
        mask = pc.is_in(records.table.column(ID_COLUMN), value_set=kept_ids)
        return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)

    def extra_repr(self) -> str:
        lines = [f"split: {self.split!r}"]
        if IMAGE_MODALITY in self.modality:
            lines.append(f"image_package: {self.image_package!r}")
        return "\n".join(lines + self._settings_repr())

    def _location_repr(self) -> str:
        return f"Root location: {self.root}"
