"""Readers: every supported source file becomes Arrow record batches in ``RECORD_SCHEMA``.

Formats (``format=`` names; detected from the content when not given):

``bioscan5m-csv``
    The BIOSCAN-5M metadata CSV (23 columns). Parsed by pyarrow's streaming CSV reader; the header must
    name all 23 columns (extra columns are ignored). When pyarrow reports a problem, a slower line-by-line
    pass finds the line at fault so the error names it (ragged line, bytes that are not UTF-8, a value
    that is not a number).
``bioscan5m-jsonld``
    The JSON-LD variant: a JSON document whose ``@graph`` (or a top-level list) holds one object per
    record with the same 23 keys. Keys may carry a prefix (``schema:species``) or be IRIs
    (``http://schema.org/species``); ``-``/``_`` and case are ignored when matching key names; values may
    be plain or ``{"@value": ...}`` objects. Every record needs ``processid``; other absent keys are null.
``bold-tsv``
    Tab-separated BOLD downloads: the v3 "combined" TSV (``phylum_name``…, ``nucleotides``,
    ``markercode``, ``lat``/``lon``), the v5 public data package (``phylum``…, ``nuc``/``nucraw``,
    ``marker_code``, ``coord`` as ``[lat, lon]``, ``country/ocean``, ``province/state``) and BOLD-like
    tables such as BarcodeBERT's (``*_name`` columns and ``nucleotides``, no marker column). Each file is
    decoded as UTF-8, or as cp1252 when it is not valid UTF-8 (BOLD ships both); stray ``\\r`` are
    removed; fields are trimmed and empty or ``None`` fields become null. Only rows whose marker is
    ``COI-5P`` are kept (``marker=None`` keeps every row; a file without a marker column keeps all).
``fasta``
    FASTA: the record id is the first word of the header line; sequence lines are joined. A letter that
    is not an IUPAC nucleotide code, or a record without sequence, is an error naming the line.
    ``taxonomy=`` adds columns from a TSV keyed by sequence id (column ``processid``, ``id`` or the
    first column) whose other columns use BIOSCAN-5M or BOLD names (``species``, ``genus_name``,
    ``bin_uri``, ``split``...), or a QIIME2 taxonomy TSV (``Feature ID``, ``Taxon`` as
    ``k__...; p__...; c__...; o__...; f__...; g__...; s__...``). SINTAX-style headers
    (``>id;tax=k:...,p:...,c:...,o:...,f:...,g:...,s:...;``) carry the taxonomy themselves.
``fastq``
    FASTQ (four lines per record: ``@id``, sequence, ``+``, qualities); qualities are not kept.

Gzip input is recognised by its magic bytes. Columns a source lacks are null; for sources without a
``taxon`` column it is the most specific rank that is filled.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from tqdm.auto import tqdm

from bioscan5m.data.schema import (
    BIN,
    COLUMN_NAMES,
    COLUMNS,
    DNA_COLUMN,
    ID_COLUMN,
    RECORD_SCHEMA,
    SPLIT_COLUMN,
    SPLITS,
    TAXONOMIC_RANKS,
)
from bioscan5m.data.sequences import IUPAC_NUCLEOTIDES, first_non_dna_letter
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import GZIP_MAGIC, CheckedGzipFile, open_binary

BIOSCAN_CSV = "bioscan5m-csv"
BIOSCAN_JSONLD = "bioscan5m-jsonld"
BOLD_TSV = "bold-tsv"
FASTA = "fasta"
FASTQ = "fastq"
#: Every ``format=`` name a reader exists for.
FORMATS: tuple[str, ...] = (BIOSCAN_CSV, BIOSCAN_JSONLD, BOLD_TSV, FASTA, FASTQ)
#: The marker BIOSCAN-5M barcodes are (the 5' region of cytochrome c oxidase I).
DEFAULT_MARKER = "COI-5P"
BAD_LINE_CHOICES = ("error", "skip")

#: Source column names for each record column, most preferred first (BIOSCAN-5M, then BOLD v3, v5).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in COLUMN_NAMES},
    **{rank: (rank, f"{rank}_name") for rank in TAXONOMIC_RANKS},
    BIN: (BIN, "bin_uri", "uri"),
    DNA_COLUMN: (DNA_COLUMN, "nucleotides", "nuc", "nucraw"),
    "country": ("country", "country/ocean"),
    "province_state": ("province_state", "province", "province/state"),
    "coord-lat": ("coord-lat", "lat"),
    "coord-lon": ("coord-lon", "lon"),
}
MARKER_ALIASES = ("markercode", "marker_code")
#: BOLD v5 stores coordinates in one column, as "[lat, lon]" (or "(lat,lon)" in older packages).
COORD_COLUMN = "coord"
_COORD_PATTERN = r"^[\[(]\s*(?P<lat>[-+0-9.eE]+)\s*,\s*(?P<lon>[-+0-9.eE]+)\s*[\])]$"
_NULL_WORDS = ("", "None")
_BLOCK_SIZE = 16 << 20  # bytes of text per Arrow batch (~20k BIOSCAN records)
#: A BOLD table is read in smaller blocks (~1,500 records; ~1 ms of overhead each): the reader's buffers
#: and copies stay small and reuse freed memory, instead of growing by tens of MB of fresh memory.
_TSV_BLOCK_SIZE = 1 << 20
_CHUNK = 4 << 20
_DECODE_PIECE = 64 << 10


#: File name endings that name a format when the first line does not (``.gz`` is looked through).
_FORMAT_SUFFIXES = {".fasta": FASTA, ".fa": FASTA, ".fas": FASTA, ".fna": FASTA, ".jsonld": BIOSCAN_JSONLD,
                    ".tsv": BOLD_TSV, ".csv": BIOSCAN_CSV, ".fastq": FASTQ, ".fq": FASTQ}


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name the format of a source file from its first line, else from its name (see the module docstring)."""
    path = Path(path)
    line = _first_line(path)
    stripped = line.lstrip()
    if stripped.startswith(">"):
        return FASTA
    if stripped.startswith("@"):
        return FASTQ
    if stripped.startswith(("{", "[")):
        return BIOSCAN_JSONLD
    if "\t" in line:
        return BOLD_TSV
    names = next(csv.reader([line]), [])
    if ID_COLUMN in names or DNA_COLUMN in names:
        return BIOSCAN_CSV
    suffixes = [suffix.lower() for suffix in path.suffixes if suffix.lower() != ".gz"]
    if suffixes and suffixes[-1] in _FORMAT_SUFFIXES:
        return _FORMAT_SUFFIXES[suffixes[-1]]
    raise BioscanError(
        "cannot tell the format (expected a BIOSCAN-5M metadata CSV or JSON-LD, a BOLD TSV or FASTA); "
        f"pass format= one of {', '.join(FORMATS)}",
        path=path,
    )


def read_batches(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    marker: str | None = DEFAULT_MARKER,
    taxonomy: str | os.PathLike[str] | None = None,
    bad_lines: str = "error",
) -> Iterator[pa.RecordBatch]:
    """Read a source as record batches with exactly ``RECORD_SCHEMA``, streaming where the format allows.

    ``marker`` filters BOLD rows by marker code (``None`` keeps all); ``taxonomy`` is a TSV joined onto
    FASTA records by id; ``bad_lines="skip"`` drops lines with the wrong number of fields (with a
    warning that counts them) instead of raising.
    """
    path = Path(path)
    if not path.is_file():
        raise BioscanError("no such file", path=path)
    format = format or detect_format(path)
    if format not in FORMATS:
        raise BioscanError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}", value=format)
    if bad_lines not in BAD_LINE_CHOICES:
        raise BioscanError(f"bad_lines must be one of {', '.join(BAD_LINE_CHOICES)}", value=bad_lines)
    if taxonomy is not None and format != FASTA:
        raise BioscanError("taxonomy= is only used with FASTA sources", path=path, value=taxonomy)
    if format == BIOSCAN_CSV:
        yield from _read_bioscan_csv(path, bad_lines)
    elif format == BOLD_TSV:
        yield from _read_tsv(path, marker, bad_lines)
    elif format == BIOSCAN_JSONLD:
        yield _read_jsonld(path)
    elif format == FASTQ:
        yield _read_fastq(path)
    else:
        yield _read_fasta(path, None if taxonomy is None else Path(taxonomy))


def read_table(path: str | os.PathLike[str], format: str | None = None, **options) -> pa.Table:
    """The whole source as one table in ``RECORD_SCHEMA`` (options as for :func:`read_batches`)."""
    return pa.Table.from_batches(list(read_batches(path, format, **options)), schema=RECORD_SCHEMA)


# --- BIOSCAN-5M metadata CSV -------------------------------------------------------------------------


def _read_bioscan_csv(path: Path, bad_lines: str) -> Iterator[pa.RecordBatch]:
    header = next(csv.reader([_first_line(path)]))
    for name in COLUMN_NAMES:
        if name not in header:
            raise BioscanError(f"missing column {name!r} in the header", path=path, line=1, value=name)
    skipped = _SkippedLines()
    parse = pa_csv.ParseOptions(invalid_row_handler=skipped if bad_lines == "skip" else None)
    convert = pa_csv.ConvertOptions(
        column_types=COLUMNS,
        include_columns=list(COLUMN_NAMES),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    with _ProgressStream(path) as stream:
        try:
            reader = pa_csv.open_csv(
                pa.input_stream(stream, compression="gzip" if stream.gzip else None),
                read_options=_read_options(bad_lines),
                parse_options=parse,
                convert_options=convert,
            )
            with reader:  # joins pyarrow's read-ahead thread even when the consumer stops early
                for batch in reader:
                    _check_ids(batch, path)
                    _check_split_values(batch, path)
                    yield pa.RecordBatch.from_arrays(batch.columns, schema=RECORD_SCHEMA)
        except pa.ArrowInvalid as error:
            numbers = {i: name for i, name in enumerate(header) if name in COLUMNS and _is_number(COLUMNS[name])}
            raise _locate_bad_line(path, ",", True, len(header), numbers, "utf-8", str(error)) from None
        except OSError as error:  # pyarrow's gzip reader: "Truncated compressed stream" and the like
            raise BioscanError(f"damaged or truncated data ({error}); download or copy it again",
                               path=path) from None
    skipped.warn(path)


def _is_number(dtype: pa.DataType) -> bool:
    return pa.types.is_floating(dtype) or pa.types.is_integer(dtype)


def _check_ids(batch: pa.RecordBatch, path: Path) -> None:
    """Record ids are single tokens: a line break or tab (from a quoted CSV field) would shift tables of ids."""
    ids = batch.column(ID_COLUMN)
    broken = pc.match_substring_regex(ids, r"[\r\n\t]")
    if pc.any(broken).as_py():
        row = pc.index(broken, True).as_py()
        raise BioscanError(f"record id {ids[row].as_py()!r} holds a line break or tab; ids must be one word",
                           path=path, value=ids[row].as_py())


def _check_split_values(batch: pa.RecordBatch, path: Path) -> None:
    split = batch.column(SPLIT_COLUMN)
    unknown = set(split.dictionary.to_pylist()) - set(SPLITS)
    if unknown:
        name = min(unknown)
        row = pc.index(split.cast(pa.string()), name).as_py()
        raise BioscanError(
            f"record {batch.column(ID_COLUMN)[row].as_py()}: unknown split {name!r} "
            f"(BIOSCAN-5M splits: {', '.join(SPLITS)})",
            path=path,
            value=name,
        )


# --- BOLD and other tab-separated tables -------------------------------------------------------------


def _read_tsv(path: Path, marker: str | None, bad_lines: str) -> Iterator[pa.RecordBatch]:
    encoding, has_cr = _scan_text(path)
    header = _unique_names(_first_line(path).split("\t"))
    sources = _map_columns(header)
    if ID_COLUMN not in sources:
        raise BioscanError("missing column 'processid' in the header", path=path, line=1, value=ID_COLUMN)
    _warn_without_species(sources, path)
    marker_column = next((name for name in MARKER_ALIASES if name in header), None)
    wanted = sorted(set(sources.values()) | ({COORD_COLUMN} & set(header)) | {marker_column} - {None})
    skipped = _SkippedLines()
    with _ProgressStream(path) as stream:
        text = stream.decompressed()
        if encoding != "utf-8" or has_cr:
            text = _CleanText(text, encoding)
        try:
            reader = pa_csv.open_csv(
                text,
                read_options=_read_options(bad_lines, _TSV_BLOCK_SIZE, column_names=header, skip_rows=1),
                parse_options=pa_csv.ParseOptions(
                    delimiter="\t",
                    quote_char=False,
                    invalid_row_handler=skipped if bad_lines == "skip" else None,
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in wanted},
                    include_columns=wanted,
                    strings_can_be_null=False,
                ),
            )
            with reader:
                for batch in reader:
                    if marker is not None and marker_column is not None:
                        keep = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(batch.column(marker_column)), marker), False)
                        batch = batch.filter(keep)
                    columns = {target: batch.column(source) for target, source in sources.items()}
                    if COORD_COLUMN in batch.schema.names and "coord-lat" not in sources:
                        columns.update(_split_coord(_null_blanks(batch.column(COORD_COLUMN))))
                    yield records_from_strings(columns, batch.num_rows, path)
        except pa.ArrowInvalid as error:
            raise _locate_bad_line(path, "\t", False, len(header), {}, encoding, str(error)) from None
    skipped.warn(path)


def _warn_without_species(sources: dict[str, str], path: Path) -> None:
    """A table with taxonomy columns but none for species is legal (identified to genus, say), but it is
    more often a mangled export; say so instead of leaving every species silently empty."""
    if "species" not in sources and any(rank in sources for rank in TAXONOMIC_RANKS):
        warnings.warn(f"{path}: no species column (species or species_name): no record is named to species",
                      stacklevel=3)


def _map_columns(header: list[str]) -> dict[str, str]:
    """Record column → source column, for each record column the header provides."""
    present = set(header)
    mapping = {}
    for target, aliases in COLUMN_ALIASES.items():
        source = next((name for name in aliases if name in present), None)
        if source is not None:
            mapping[target] = source
    return mapping


def _split_coord(coord: pa.Array) -> dict[str, pa.Array]:
    parts = pc.extract_regex(coord, _COORD_PATTERN)
    return {"coord-lat": pc.struct_field(parts, "lat"), "coord-lon": pc.struct_field(parts, "lon")}


def records_from_strings(columns: dict[str, pa.Array], length: int, path: Path) -> pa.RecordBatch:
    """Build a ``RECORD_SCHEMA`` batch from string columns named as record columns.

    Strings are trimmed, empty and ``None`` become null, numbers are parsed (an unparsable one is an
    error naming the column, the value and the record), and ``taxon`` is derived from the ranks when absent.
    """
    # "None" means null in BOLD fields, but an id is taken literally (a FASTA record may be called None).
    strings = {name: _null_blanks(arr, ("",) if name == ID_COLUMN else _NULL_WORDS) for name, arr in columns.items()}
    if "taxon" not in strings and any(rank in strings for rank in TAXONOMIC_RANKS):
        filled = [strings[rank] for rank in reversed(TAXONOMIC_RANKS) if rank in strings]
        strings["taxon"] = pc.coalesce(*filled) if len(filled) > 1 else filled[0]
    arrays = []
    for name, dtype in COLUMNS.items():
        arr = strings.get(name)
        if arr is None:
            arrays.append(pa.nulls(length, dtype))
        elif pa.types.is_dictionary(dtype):
            arrays.append(arr.dictionary_encode())
        elif pa.types.is_string(dtype):
            arrays.append(arr)
        else:
            arrays.append(_parse_numbers(arr, name, dtype, strings.get(ID_COLUMN), path))
    batch = pa.RecordBatch.from_arrays(arrays, schema=RECORD_SCHEMA)
    _check_ids(batch, path)
    _check_split_values(batch, path)
    return batch


def _null_blanks(arr: pa.Array, words: tuple[str, ...] = _NULL_WORDS) -> pa.Array:
    """``arr`` as strings, trimmed, with ``words`` (compared after trimming) made null.

    A column with nothing to trim and no blanks (barcodes, ids: nearly always) comes back without a
    copy of its text, and blanks are nulled in the validity bitmap alone: every copy of a reference's
    barcodes is tens of MB of fresh memory, which costs up to ~10 ms per MB on some virtual machines.
    """
    arr = arr.cast(pa.string())
    if _may_have_edge_space(arr):
        arr = pc.utf8_trim_whitespace(arr)
    blank = pc.is_in(arr, pa.array(words))
    return _with_nulls(arr, blank) if pc.any(blank).as_py() else arr


def _may_have_edge_space(arr: pa.Array) -> bool:
    """False only when no string of ``arr`` starts or ends with a space, a control character or a non-ASCII
    byte (which may begin or end Unicode whitespace): then ``utf8_trim_whitespace`` would change nothing.
    Reads one byte at each end of every string, instead of writing a trimmed copy of all of them."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    if not filled.any():
        return False
    text = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    edges = np.concatenate([text[starts[filled]], text[ends[filled] - 1]])
    return bool(((edges <= 0x20) | (edges >= 0x7F)).any())


def _with_nulls(arr: pa.Array, null: pa.Array) -> pa.Array:
    """``arr`` (strings) with the values where ``null`` is true made null, sharing ``arr``'s text."""
    valid = pc.and_(pc.is_valid(arr), pc.invert(null))
    offsets = arr.buffers()[1].slice(arr.offset * 4, (len(arr) + 1) * 4)
    return pa.Array.from_buffers(pa.string(), len(arr), [valid.buffers()[1], offsets, arr.buffers()[2]])


def _parse_numbers(arr: pa.Array, name: str, dtype: pa.DataType, ids: pa.Array | None, path: Path) -> pa.Array:
    try:
        return pc.cast(arr, dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for row, value in enumerate(arr.to_pylist()):
        try:
            pc.cast(pa.array([value], pa.string()), dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            record = "" if ids is None else f"record {ids[row].as_py()}: "
            kind = "a number" if pa.types.is_floating(dtype) else f"a whole number that fits {dtype}"
            raise BioscanError(f"{record}column {name!r}: {value!r} is not {kind}", path=path, value=value) from None
    raise AssertionError("unreachable: the column failed to convert but every value converts")


# --- JSON-LD ---------------------------------------------------------------------------------------------

_KEY_FOR = {name.lower().replace("_", "-"): name for name in COLUMN_NAMES}


def _read_jsonld(path: Path) -> pa.RecordBatch:
    try:
        with open_binary(path) as handle:
            document = json.load(handle)
    except UnicodeDecodeError as error:
        raise BioscanError(f"not UTF-8 JSON ({error.reason})", path=path) from None
    except json.JSONDecodeError as error:
        raise BioscanError(f"not valid JSON: {error.msg}", path=path, line=error.lineno) from None
    records = _jsonld_records(document, path)
    values: dict[str, list[str | None]] = {name: [None] * len(records) for name in COLUMN_NAMES}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise BioscanError(f"record {index + 1} is a {type(record).__name__}, not an object", path=path)
        for key, value in record.items():
            name = _KEY_FOR.get(_local_name(key))
            if name is not None:
                values[name][index] = _jsonld_value(value, name, index, path)
        if values[ID_COLUMN][index] is None:
            raise BioscanError(f"record {index + 1} has no 'processid'", path=path, value=index + 1)
    columns = {name: pa.array(column, pa.string()) for name, column in values.items()}
    return records_from_strings(columns, len(records), path)


def _jsonld_records(document: object, path: Path) -> list:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key, value in document.items():
            if _local_name(key) in ("@graph", "graph") and isinstance(value, list):
                return value
        if any(_KEY_FOR.get(_local_name(key)) == ID_COLUMN for key in document):
            return [document]
    raise BioscanError("no records found: expected an '@graph' list or a top-level list of objects", path=path)


def _local_name(key: str) -> str:
    """``schema:coord_lat`` / ``http://x.org/ns#coord-lat`` / ``coord-lat`` → ``coord-lat``."""
    if key.startswith("@"):
        return key
    for separator in ("#", "/", ":"):
        key = key.rsplit(separator, 1)[-1]
    return key.lower().replace("_", "-")


def _jsonld_value(value: object, name: str, index: int, path: Path) -> str | None:
    if isinstance(value, dict):
        value = value.get("@value", value.get("@id"))
    if isinstance(value, list):
        if len(value) > 1:
            raise BioscanError(f"record {index + 1}: {name!r} has several values", path=path, value=value)
        value = value[0] if value else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BioscanError(f"record {index + 1}: {name!r} is not a string or number", path=path, value=value)
    return repr(value)


# --- FASTA --------------------------------------------------------------------------------------------------


def _read_fasta(path: Path, taxonomy: Path | None) -> pa.RecordBatch:
    parsed = _parse_plain_fasta(path)
    ids, sintax, sequences = parsed if parsed is not None else _parse_fasta_lines(path)
    columns = {ID_COLUMN: pa.array(ids, pa.string()), DNA_COLUMN: sequences}
    if any(sintax):
        columns.update(_lineage_columns(sintax, SINTAX_RANKS, ":", ","))
    if taxonomy is not None:
        columns.update(_taxonomy_columns(taxonomy, columns[ID_COLUMN]))
    return records_from_strings(columns, len(ids), path)


def _parse_fasta_lines(path: Path) -> tuple[list[str], list[str], pa.Array]:
    """Ids, the ``tax=`` part of SINTAX-style headers ("" when absent) and sequences, line by line: any
    FASTA, and the error for a bad one names its line."""
    ids: list[str] = []
    sintax: list[str] = []
    sequences: list[str] = []
    parts: list[str] = []
    header_line = 0
    with open_binary(path) as handle:
        for number, raw in enumerate(handle, 1):
            line = _decode_line(raw, path, number).strip()
            if line.startswith(">"):
                if ids and not parts:
                    raise BioscanError(f"record {ids[-1]!r} has no sequence", path=path, line=header_line)
                if ids:
                    sequences.append("".join(parts))
                header = _fasta_header(line[1:])
                if header is None:
                    raise BioscanError("header without an id", path=path, line=number)
                ids.append(header[0])
                sintax.append(header[1])
                parts, header_line = [], number
            elif line:
                if not ids:
                    raise BioscanError("sequence before the first '>' header", path=path, line=number)
                letter = first_non_dna_letter(line)
                if letter is not None:
                    raise BioscanError(
                        f"{letter!r} is not a DNA letter (IUPAC nucleotide code) in record {ids[-1]!r}",
                        path=path,
                        line=number,
                        value=letter,
                    )
                parts.append("".join(line.split()))
    if not ids:
        raise BioscanError("no FASTA records (a record starts with a '>' header line)", path=path)
    if not parts:
        raise BioscanError(f"record {ids[-1]!r} has no sequence", path=path, line=header_line)
    sequences.append("".join(parts))
    return ids, sintax, pa.array(sequences, pa.string())


def _fasta_header(text: str) -> tuple[str, str] | None:
    """The record id and the SINTAX ``tax=`` part ("" when absent) of a header line without its ``>``;
    None when it holds no id."""
    words = text.split()
    if not words:
        return None
    record_id, _, tax = words[0].partition(";tax=")
    return record_id.rstrip(";"), tax


#: The bytes a plain FASTA's sequence lines hold: IUPAC letters in either case, U, gaps, spaces, line ends.
_PLAIN_SEQUENCE_BYTES = (IUPAC_NUCLEOTIDES + IUPAC_NUCLEOTIDES.lower() + "uU-. \t\r\n").encode()


def _parse_plain_fasta(path: Path) -> tuple[list[str], list[str], pa.Array] | None:
    """What :func:`_parse_fasta_lines` gives, a record at a time rather than a line at a time, for a plain
    FASTA: it starts with ``>``, sequence lines hold only :data:`_PLAIN_SEQUENCE_BYTES` and every record has
    a sequence and an id. Anything else returns None, and the line-by-line parser reads the file (and names
    the line at fault). Sequences become one Arrow array without a Python string each."""
    ids: list[str] = []
    sintax: list[str] = []
    sequences: list[bytes] = []
    try:
        with open_binary(path) as handle:
            for piece in _fasta_pieces(handle):
                for record in piece.split(b"\n>"):
                    header, _, body = record.partition(b"\n")
                    sequence = body.translate(None, b" \t\r\n")
                    parsed = _fasta_header(header.decode("utf-8")) if sequence else None
                    if parsed is None:
                        return None
                    ids.append(parsed[0])
                    sintax.append(parsed[1])
                    sequences.append(sequence)
    except (UnicodeDecodeError, BioscanError):  # (damaged gzip: the line parser may meet a bad line first)
        return None
    text = b"".join(sequences)
    if not ids or text.translate(None, _PLAIN_SEQUENCE_BYTES) or len(text) >= 1 << 31:
        return None  # (beyond 2 GiB, an Arrow string array's 32-bit offsets: the line parser builds a chunked one)
    offsets = np.cumsum([0, *map(len, sequences)], dtype=np.int64).astype(np.int32)
    return ids, sintax, pa.StringArray.from_buffers(len(sequences), pa.py_buffer(offsets), pa.py_buffer(text))


def _fasta_pieces(handle: IO[bytes]) -> Iterator[bytes]:
    """The file's bytes in pieces of whole records (a few MB each), each without the ``>`` of its first
    header; the first piece must start with ``>``, or nothing is yielded."""
    rest = handle.read(_CHUNK)
    if not rest.startswith(b">"):
        return
    rest = rest[1:]
    while chunk := handle.read(_CHUNK):
        rest += chunk
        cut = rest.rfind(b"\n>")
        if cut >= 0:
            yield rest[:cut]
            rest = rest[cut + 2:]
    yield rest


def _read_fastq(path: Path) -> pa.RecordBatch:
    ids: list[str] = []
    sequences: list[str] = []
    with open_binary(path) as handle:
        lines = ((number, _decode_line(raw, path, number).strip()) for number, raw in enumerate(handle, 1))
        for position, (number, line) in enumerate((n, text) for n, text in lines if text):
            part = position % 4
            if part == 0:
                if not line.startswith("@") or not line[1:].split():
                    raise BioscanError("expected a FASTQ header line '@id'", path=path, line=number)
                ids.append(line[1:].split()[0])
            elif part == 1:
                letter = first_non_dna_letter(line)
                if letter is not None:
                    raise BioscanError(f"{letter!r} is not a DNA letter (IUPAC nucleotide code) in record "
                                       f"{ids[-1]!r}", path=path, line=number, value=letter)
                sequences.append(line)
            elif part == 2 and not line.startswith("+"):
                raise BioscanError("expected the FASTQ separator line '+'", path=path, line=number)
    if not ids:
        raise BioscanError("no FASTQ records (a record starts with an '@' header line)", path=path)
    if len(sequences) != len(ids):
        raise BioscanError(f"record {ids[-1]!r} has no sequence", path=path)
    columns = {ID_COLUMN: pa.array(ids, pa.string()), DNA_COLUMN: pa.array(sequences, pa.string())}
    return records_from_strings(columns, len(ids), path)


#: Rank letters of SINTAX headers (``tax=k:...,p:...``) and prefixes of QIIME2 taxa (``k__...; p__...``).
SINTAX_RANKS = {"k": "kingdom", "d": "kingdom", "p": "phylum", "c": "class", "o": "order", "f": "family",
                "g": "genus", "s": "species"}
#: Columns a taxonomy TSV is searched for (besides its id column), for the error when none is there.
QIIME_TAXON = "Taxon"


def _lineage_columns(lineages: list[str], ranks: dict[str, str], separator: str, delimiter: str
                     ) -> dict[str, pa.Array]:
    """Rank columns parsed from one lineage string per record (``o:Diptera,g:Chironomus`` or
    ``o__Diptera; g__Chironomus``). Underscores in names become spaces; a species given as its epithet
    alone (QIIME2 ``s__riparius``) is joined to its genus."""
    values: dict[str, list[str | None]] = {rank: [None] * len(lineages) for rank in set(ranks.values())}
    for row, lineage in enumerate(lineages):
        for part in lineage.strip().strip(";").split(delimiter):
            letter, found, name = part.strip().partition(separator)
            rank = ranks.get(letter.strip().lower()) if found else None
            name = name.strip().replace("_", " ")
            if rank is not None and name:
                values[rank][row] = name
        genus, species = values["genus"][row], values["species"][row]
        if genus and species and " " not in species:
            values["species"][row] = f"{genus} {species}"
    return {rank: pa.array(column, pa.string()) for rank, column in values.items()
            if rank in TAXONOMIC_RANKS}


def _taxonomy_columns(path: Path, ids: pa.Array) -> dict[str, pa.Array]:
    """Columns of a taxonomy TSV, aligned to ``ids`` (null where an id is not in the TSV)."""
    encoding = _scan_text(path)[0]
    with _ProgressStream(path, progress=False) as stream:
        lines = _CleanText(stream.decompressed(), encoding).read().decode("utf-8").split("\n")
    rows = [line.split("\t") for line in lines if line.strip()]
    if not rows:
        raise BioscanError("empty taxonomy file", path=path)
    header = _unique_names([name.strip() for name in rows[0]])
    key = next((name for name in (ID_COLUMN, "id", "sequence_id", "seqid", "Feature ID") if name in header),
               header[0])
    for number, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise BioscanError(f"expected {len(header)} fields, found {len(row)}", path=path, line=number)
    table = pa.table({name: pa.array([row[i].strip() for row in rows[1:]], pa.string())
                      for i, name in enumerate(header)})
    keys = table.column(key)
    if pc.count_distinct(keys).as_py() != len(keys):
        counts = pc.value_counts(keys)
        repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))[0].as_py()
        raise BioscanError(f"sequence id {repeated!r} appears more than once", path=path, value=repeated)
    positions = pc.index_in(ids, value_set=keys)
    mapping = {target: source for target, source in _map_columns(header).items()
               if source != key and target not in (ID_COLUMN, DNA_COLUMN)}
    columns = {target: table.column(source).combine_chunks().take(positions) for target, source in mapping.items()}
    if QIIME_TAXON in header:
        qiime = _lineage_columns(table.column(QIIME_TAXON).to_pylist(), SINTAX_RANKS, "__", ";")
        columns.update({rank: column.take(positions) for rank, column in qiime.items()})
    else:
        _warn_without_species(mapping, path)
    if not columns:
        looked_for = ", ".join([*TAXONOMIC_RANKS, BIN, QIIME_TAXON])
        raise BioscanError(f"no taxonomy column: looked for {looked_for} (or BOLD's *_name), found "
                           f"{', '.join(header)}", path=path)
    return columns


# --- shared plumbing -------------------------------------------------------------------------------------


class _ProgressStream(io.RawIOBase):
    """The file's raw bytes, counted on a tqdm bar (stderr) as they are read; knows if it is gzip."""

    def __init__(self, path: Path, progress: bool = True) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close(); this object is the context manager)
        self.gzip = self._file.read(2) == GZIP_MAGIC
        self._file.seek(0)
        self._bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"reading {path.name}",
                         disable=None if progress else True, leave=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer)
        self._bar.update(count)
        return count

    def read(self, size: int = -1) -> bytes:
        # pyarrow reads its blocks through read(): one new bytes object each, not RawIOBase's two copies.
        data = self._file.read(size)
        self._bar.update(len(data))
        return data

    def decompressed(self) -> IO[bytes]:
        """The file's bytes, gunzipped when it is gzip (pyarrow and ``_CleanText`` read large blocks: no buffer)."""
        return CheckedGzipFile(self.path, fileobj=self) if self.gzip else self

    def close(self) -> None:
        if not self.closed:
            self._bar.close()
            self._file.close()
        super().close()


class _CleanText(io.RawIOBase):
    """UTF-8 bytes of a text stream decoded as ``encoding``, with every ``\\r`` removed.

    BOLD files end lines with CRLF and also hold stray carriage returns inside fields, which pyarrow
    would take for line ends. The source is read into one reused buffer: a new multi-megabyte object per
    read would cost its page faults every time.
    """

    def __init__(self, source: IO[bytes], encoding: str) -> None:
        self._source = source
        self._utf8 = codecs.lookup(encoding).name == "utf-8"
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._chunk = bytearray(_CHUNK)
        self._pending = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and not self._done:
            self._pending = self._next_chunk()
        count = min(len(buffer), len(self._pending))
        memoryview(buffer).cast("B")[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _next_chunk(self) -> memoryview:
        size = self._source.readinto(self._chunk)
        self._done = not size
        raw = memoryview(self._chunk)[:size]
        if not self._utf8:
            return memoryview(self._decoder.decode(raw, final=self._done).replace("\r", "").encode("utf-8"))
        return raw if self._chunk.find(b"\r", 0, size) < 0 else memoryview(raw.tobytes().replace(b"\r", b""))


class _SkippedLines:
    """pyarrow ``invalid_row_handler`` that skips ragged lines and remembers how many and where."""

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None

    def __call__(self, row) -> str:
        self.count += 1
        if self.first is None:
            self.first = row.number
        return "skip"

    def warn(self, path: Path) -> None:
        if self.count:
            where = "" if self.first is None else f" (the first at line {self.first})"
            warnings.warn(f"{path}: skipped {self.count} lines with the wrong number of fields{where}", stacklevel=3)


def _read_options(bad_lines: str, block_size: int = _BLOCK_SIZE, **options) -> pa_csv.ReadOptions:
    # Skipped lines only get their line number when pyarrow parses on one thread.
    return pa_csv.ReadOptions(block_size=block_size, use_threads=bad_lines != "skip", **options)


def _first_line(path: Path) -> str:
    with open_binary(path) as handle:
        raw = handle.readline(1 << 20)
    try:
        line = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        line = raw.decode("cp1252", errors="replace")
    return line.rstrip("\n").replace("\r", "")


def _scan_text(path: Path) -> tuple[str, bool]:
    """The file's encoding, ``"utf-8"`` if the whole file decodes as UTF-8, else ``"cp1252"`` (the other
    encoding BOLD uses), and whether a UTF-8 file holds any ``\r`` (if neither, pyarrow can read it as is)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    chunk = bytearray(_CHUNK)  # reused, and decoded in small pieces: no large object per read (page faults)
    has_cr = False
    with open_binary(path) as handle:
        try:
            while size := handle.readinto(chunk):
                has_cr = has_cr or chunk.find(b"\r", 0, size) >= 0
                if not decoder.getstate()[0] and (chunk if size == len(chunk) else chunk[:size]).isascii():
                    continue  # ASCII is UTF-8: no decoding needed (most BOLD files are ASCII)
                view = memoryview(chunk)[:size]
                for start in range(0, size, _DECODE_PIECE):
                    decoder.decode(view[start:start + _DECODE_PIECE])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252", has_cr
    return "utf-8", has_cr


def _unique_names(names: list[str]) -> list[str]:
    """Header names with repeats suffixed (``recordid``, ``recordid.1``): BOLD v5 repeats some."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        name = name.strip()
        if name in seen:
            seen[name] += 1
            unique.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            unique.append(name)
    return unique


def _decode_line(raw: bytes, path: Path, number: int, encoding: str = "utf-8") -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        raise BioscanError(f"byte 0x{byte:02x} is not valid UTF-8", path=path, line=number, value=byte) from None


def _locate_bad_line(
    path: Path, delimiter: str, quoted: bool, n_fields: int, numbers: dict[int, str], encoding: str, detail: str
) -> BioscanError:
    """Re-read a file line by line to name the line that pyarrow could not parse.

    Only runs after pyarrow has failed, so the common path stays fast. Returns the error to raise.
    """
    def lines() -> Iterator[str]:
        with open_binary(path) as handle:
            for number, raw in enumerate(handle, 1):
                text = _decode_line(raw, path, number, "utf-8" if encoding == "utf-8" else encoding)
                yield text if quoted else text.replace("\r", "").rstrip("\n")

    reader = csv.reader(lines(), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    start = 1  # the line a record starts on: a quoted field may hold line breaks, so line_num is its last line
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if line == 1 or not row:
                continue
            if len(row) != n_fields:
                return BioscanError(f"expected {n_fields} fields, found {len(row)}", path=path, line=line)
            for index, name in numbers.items():
                value = row[index]
                parse: Callable[[str], object] = float if pa.types.is_floating(COLUMNS[name]) else int
                try:
                    if value:
                        parse(value)
                except ValueError:
                    return BioscanError(f"column {name!r}: {value!r} is not a number", path=path,
                                        line=line, value=value)
    except csv.Error as error:
        return BioscanError(f"unreadable line ({error})", path=path, line=start)
    return BioscanError(f"could not be read: {detail}", path=path)
