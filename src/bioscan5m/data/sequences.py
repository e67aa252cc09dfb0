"""Cleaning and de-duplicating DNA barcodes.

Every barcode that reaches a model, an aligner or a duplicate count goes through :func:`clean_barcode`
(or its batch form :func:`clean_barcodes`), so all of them agree on what a barcode is. The rules, in
the order they are applied:

1. Alignment gaps (``-``, ``.``) and whitespace are removed: BOLD stores many barcodes aligned.
2. Letters are upper-cased.
3. ``U`` (uracil, RNA notation) is written as ``T``.
4. Every remaining letter must be an IUPAC nucleotide code (``ACGT`` and the ambiguity codes
   ``RYSWKMBDHVN``); anything else (digits, ``*``, ``?``, protein letters such as ``E`` or ``Z``) raises
   a :class:`~bioscan5m.errors.BioscanError` naming the offending value.
5. With ``iupac="mask"``, ambiguity codes other than ``N`` become ``N``; ``"keep"`` leaves them.
6. Leading and trailing ``N`` are stripped (they are unread positions, not sequence).
7. The barcode is cut to its first ``max_length`` nucleotides (default 660, a 658 bp COI-5P barcode
   plus two for the primer), and any ``N`` the cut leaves at the end is stripped as well.

A barcode can end up empty (for example one made only of ``N``); missing values (``None``) become ``""``.

The ``"barcodebert"`` cleaning mode is the BarcodeBERT authors' (``data/data_split.py`` of their BIOSCAN-5M
branch: ``str.rstrip("N")``): rule 4 still rejects non-DNA letters, but nothing else changes except that
trailing ``N`` are stripped. Leading ``N`` and gaps stay, so the k-mer frame is theirs (a barcode starting
with ``NN`` keeps its first k-mer as ``[UNK]`` rather than shifting every k-mer by two); the tokenizer cuts
to its ``max_length`` afterwards, as theirs does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from bioscan5m.data.schema import MAX_NUCLEOTIDES
from bioscan5m.errors import BioscanError

#: Nucleotide letters of the IUPAC code accepted in a DNA barcode (after upper-casing, U → T).
IUPAC_NUCLEOTIDES = "ACGTRYSWKMBDHVN"
#: The unambiguous bases; with ``iupac="mask"`` every other IUPAC code becomes ``N``.
BASES = "ACGT"
#: Characters removed from a barcode: alignment gaps and whitespace.
GAP_CHARACTERS = "-. \t\r\n\v\f"
IUPAC_CHOICES = ("keep", "mask")
#: Cleaning modes: ``standard`` (every rule above) or ``barcodebert`` (the authors': trailing N only).
CLEANING_MODES = ("standard", "barcodebert")

# Byte-level translation tables: bytes.translate runs in C, ~3 µs for a 700 bp barcode.
_LOWER = IUPAC_NUCLEOTIDES.lower() + "uU"
_UPPER_TABLE = bytes.maketrans(_LOWER.encode(), (IUPAC_NUCLEOTIDES + "TT").encode())
_MASK_TABLE = bytes.maketrans(b"RYSWKMBDHV", b"N" * 10)
_GAPS = GAP_CHARACTERS.encode()
_VALID = IUPAC_NUCLEOTIDES.encode()
#: Joins a block of barcodes for one ``translate`` call; never a DNA letter or gap, so it survives cleaning.
_SEPARATOR = "\x00"
_VALID_OR_SEPARATOR = _VALID + _SEPARATOR.encode()
_BLOCK = 256  # barcodes per joined block (~180 kB: temporaries this small reuse freed memory, no page faults)

BarcodeInput = Iterable[str | None] | pa.Array | pa.ChunkedArray


def clean_barcode(seq: str, *, iupac: str = "keep", max_length: int | None = MAX_NUCLEOTIDES,
                  mode: str = "standard") -> str:
    """Clean one DNA barcode by the rules in this module's docstring (``mode``: see :data:`CLEANING_MODES`).

    >>> clean_barcode("nn-ACGT-RA.CN  ")
    'ACGTRAC'
    >>> clean_barcode("NNACGTRACN", iupac="mask", max_length=4)
    'ACGT'
    >>> clean_barcode("NNACGT-ACNN", mode="barcodebert")
    'NNACGT-AC'
    """
    _check_options(iupac, max_length, mode)
    return _clean_mode(seq, iupac == "mask", max_length, mode)


def clean_barcodes(
    seqs: BarcodeInput, *, iupac: str = "keep", max_length: int | None = MAX_NUCLEOTIDES, mode: str = "standard"
) -> list[str]:
    """Clean many barcodes (about 4 s per million 700 bp barcodes on one core).

    ``seqs`` may be any iterable of strings (``None`` allowed, it becomes ``""``) or an Arrow string
    array. Returns the cleaned strings, one per input, in the same order. The error for a non-IUPAC
    letter names the 0-based position of the barcode and the letter (``value``). ``mode``: ``standard``
    or ``barcodebert`` (only trailing N stripped; ``iupac`` and ``max_length`` are then not applied).
    """
    _check_options(iupac, max_length, mode)
    mask = iupac == "mask"
    cleaned: list[str] = []
    if mode == "standard":
        for block in barcode_blocks(seqs):
            done = _clean_block(block, mask, max_length)
            if done is None:  # a bad barcode in this block: the one-by-one path below names it
                break
            cleaned.extend(done)
        else:
            return cleaned
    for index, seq in enumerate(_as_list(seqs)[len(cleaned):], len(cleaned)):
        try:
            cleaned.append(_clean_mode(seq, mask, max_length, mode))
        except BioscanError as error:
            raise BioscanError(f"barcode {index}: {error.reason}", value=error.value) from None
    return cleaned


def deduplicate_barcodes(seqs: BarcodeInput) -> tuple[np.ndarray, int]:
    """Find the first occurrence of every distinct barcode.

    Compares the strings exactly as given, so clean them first (the paper de-duplicates cleaned,
    truncated barcodes). Returns ``(keep_indices, n_removed)``: ``keep_indices`` is an int64 array of
    positions into ``seqs``, ascending, of the barcodes to keep; ``n_removed`` is how many repeats were
    dropped (``len(seqs) - len(keep_indices)``).
    """
    arr = pa.array(_as_list(seqs), type=pa.large_string())
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64), 0
    table = pa.table({"barcode": arr, "position": pa.array(np.arange(len(arr), dtype=np.int64))})
    firsts = table.group_by("barcode", use_threads=False).aggregate([("position", "min")])
    keep = np.sort(firsts.column("position_min").to_numpy())
    return keep, len(arr) - len(keep)


def first_non_dna_letter(text: str) -> str | None:
    """The first character of ``text`` that is neither an IUPAC nucleotide code (any case) nor a gap or
    whitespace, or ``None`` when every character is allowed (readers use this to name a bad letter)."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as error:
        return text[error.start]
    rest = raw.translate(_UPPER_TABLE, _GAPS).translate(None, _VALID)
    return chr(rest[0]) if rest else None


def _clean_mode(seq: str | None, mask: bool, max_length: int | None, mode: str) -> str:
    if mode == "standard":
        return _clean(seq, mask, max_length)
    if seq is None:
        return ""
    if not isinstance(seq, str):
        raise BioscanError(f"a barcode must be a string, not {type(seq).__name__}", value=seq)
    if first_non_dna_letter(seq) is not None:
        raise _not_dna(first_non_dna_letter(seq))
    return seq.rstrip("N")


def barcode_blocks(seqs: BarcodeInput) -> Iterator[list]:
    """``seqs`` as lists of at most 256 barcodes (Python strings, None where missing); an Arrow array
    becomes Python strings one block at a time, so no copy of every barcode is made at once."""
    if isinstance(seqs, pa.Array | pa.ChunkedArray):
        for chunk in seqs.chunks if isinstance(seqs, pa.ChunkedArray) else [seqs]:
            for start in range(0, len(chunk), _BLOCK):
                yield chunk.slice(start, _BLOCK).to_pylist()
        return
    seqs = _as_list(seqs)
    for start in range(0, len(seqs), _BLOCK):
        yield seqs[start:start + _BLOCK]


def _clean_block(seqs: list, mask: bool, max_length: int | None) -> list[str] | None:
    """``_clean`` of every barcode of ``seqs`` with one ``translate`` over them joined (the per-barcode
    calls dominate otherwise); None when any barcode is not a string of DNA letters and gaps."""
    try:
        joined = _SEPARATOR.join(seqs)
    except TypeError:  # None (missing: "") or not a string (reported one by one)
        try:
            joined = _SEPARATOR.join(["" if seq is None else seq for seq in seqs])
        except TypeError:
            return None
    try:
        bases = joined.encode("ascii").translate(_UPPER_TABLE, _GAPS)
    except UnicodeEncodeError:
        return None
    if bases.translate(None, _VALID_OR_SEPARATOR):
        return None
    if mask:
        bases = bases.translate(_MASK_TABLE)
    parts = [part.strip(b"N") for part in bases.split(_SEPARATOR.encode())]
    if len(parts) != len(seqs):  # empty input, or a barcode holding the separator itself
        return None
    if max_length is not None:
        parts = [part if len(part) <= max_length else part[:max_length].rstrip(b"N") for part in parts]
    return _SEPARATOR.encode().join(parts).decode("ascii").split(_SEPARATOR)


def _clean(seq: str | None, mask: bool, max_length: int | None) -> str:
    if seq is None:
        return ""
    if not isinstance(seq, str):
        raise BioscanError(f"a barcode must be a string, not {type(seq).__name__}", value=seq)
    try:
        bases = seq.encode("ascii").translate(_UPPER_TABLE, _GAPS)
    except UnicodeEncodeError:
        bases = b"?"  # reported below by first_non_dna_letter
    if bases.translate(None, _VALID):
        raise _not_dna(first_non_dna_letter(seq))
    if mask:
        bases = bases.translate(_MASK_TABLE)
    bases = bases.strip(b"N")
    if max_length is not None and len(bases) > max_length:
        bases = bases[:max_length].rstrip(b"N")
    return bases.decode("ascii")


def _not_dna(letter: str) -> BioscanError:
    return BioscanError(
        f"{letter!r} is not a DNA letter (IUPAC nucleotide codes: {IUPAC_NUCLEOTIDES}; "
        "gaps '-' and '.' are removed)",
        value=letter,
    )


def _check_options(iupac: str, max_length: int | None, mode: str = "standard") -> None:
    if mode not in CLEANING_MODES:
        raise BioscanError(f"cleaning mode must be one of {', '.join(CLEANING_MODES)}, not {mode!r}", value=mode)
    if iupac not in IUPAC_CHOICES:
        raise BioscanError(f"iupac must be one of {', '.join(IUPAC_CHOICES)}, not {iupac!r}", value=iupac)
    if max_length is not None and max_length < 1:
        raise BioscanError(f"max_length must be a positive number of nucleotides, not {max_length}",
                           value=max_length)


def _as_list(seqs: BarcodeInput) -> list:
    """The barcodes as a Python list (Arrow arrays, dictionary-encoded or not, are converted)."""
    if isinstance(seqs, str):
        raise BioscanError("expected a list of barcodes, got a single string; use clean_barcode", value=seqs)
    if isinstance(seqs, pa.Array | pa.ChunkedArray):
        return seqs.to_pylist()
    return list(seqs)
