"""Barcode cleaning and de-duplication, on handmade cases and on real BOLD barcodes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bioscan5m.data.schema import MAX_NUCLEOTIDES
from bioscan5m.data.sequences import (
    IUPAC_NUCLEOTIDES,
    clean_barcode,
    clean_barcodes,
    deduplicate_barcodes,
    first_non_dna_letter,
)
from bioscan5m.errors import BioscanError

DEGOBBI = "insect_bold_degobbi/insect_bold_records.tsv.gz"
UNSEEN = "barcodebert_unseen/unseen_every10th.tsv.gz"  # vendored in tests/fixtures


@pytest.fixture(scope="module")
def coi_barcodes(shared_data) -> list[str]:
    """Raw COI-5P sequences of the real BOLD v3 table, read independently with pandas."""
    frame = pd.read_csv(shared_data / DEGOBBI, sep="\t", dtype=str, usecols=["markercode", "nucleotides"],
                        keep_default_na=False, quoting=3)
    return frame.loc[frame["markercode"].str.strip() == "COI-5P", "nucleotides"].str.strip().tolist()


@pytest.mark.parametrize(
    ("raw", "options", "expected"),
    [
        ("acgt", {}, "ACGT"),  # upper-cased
        ("AC-G-T..A\nC G", {}, "ACGTACG"),  # gaps, dots and whitespace removed
        ("NNNACGTNN", {}, "ACGT"),  # leading/trailing N stripped
        ("ACNNGT", {}, "ACNNGT"),  # inner N kept
        ("ACGU", {}, "ACGT"),  # RNA U written as T
        ("RACGTY", {}, "RACGTY"),  # ambiguity codes kept by default
        ("RACGTYN", {"iupac": "mask"}, "ACGT"),  # masked to N, then stripped at the ends
        ("ACRYGT", {"iupac": "mask"}, "ACNNGT"),
        ("A" * 700, {}, "A" * MAX_NUCLEOTIDES),  # truncated to 660 by default
        ("ACGTNNAC", {"max_length": 6}, "ACGT"),  # N left at the end by the cut is stripped
        ("A" * 700, {"max_length": None}, "A" * 700),
        ("NNNN", {}, ""),
    ],
)
def test_clean_barcode_rules(raw, options, expected):
    assert clean_barcode(raw, **options) == expected
    assert clean_barcodes([raw], **options) == [expected]


def test_clean_barcodes_keeps_order_and_maps_missing_to_empty():
    assert clean_barcodes(["ac", None, "-g-"]) == ["AC", "", "G"]


@pytest.mark.parametrize(("raw", "letter"), [("ACGTZ", "Z"), ("AC*GT", "*"), ("AC?T", "?"), ("ACÉ", "É"), ("AC1", "1")])
def test_non_dna_letter_is_an_error_naming_it(raw, letter):
    with pytest.raises(BioscanError) as info:
        clean_barcodes(["ACGT", raw])
    assert info.value.value == letter
    assert str(info.value).startswith(f"barcode 1: {letter!r} is not a DNA letter")
    assert first_non_dna_letter(raw) == letter


def test_bad_options_are_errors():
    with pytest.raises(BioscanError, match="iupac must be one of keep, mask"):
        clean_barcode("ACGT", iupac="drop")
    with pytest.raises(BioscanError, match="max_length must be a positive"):
        clean_barcode("ACGT", max_length=0)
    with pytest.raises(BioscanError, match="single string"):
        clean_barcodes("ACGT")


def test_cleaning_real_gapped_and_padded_barcodes(coi_barcodes):
    gapped = sum("-" in seq for seq in coi_barcodes)
    padded = sum(seq.startswith("N") or seq.endswith("N") for seq in coi_barcodes)
    longer = sum(len(seq.replace("-", "")) > MAX_NUCLEOTIDES for seq in coi_barcodes)
    # The file really holds the cases the rules are for (SOURCES.md: a third of COI-5P rows are aligned).
    assert gapped > 10_000 and padded > 0 and longer > 0

    cleaned = clean_barcodes(coi_barcodes)
    assert len(cleaned) == len(coi_barcodes)
    assert not any("-" in seq for seq in cleaned)
    assert max(map(len, cleaned)) == MAX_NUCLEOTIDES
    assert not any(seq.startswith("N") or seq.endswith("N") for seq in cleaned)
    assert all(re.fullmatch(f"[{IUPAC_NUCLEOTIDES}]*", seq) for seq in cleaned)
    # Cleaning only removes: an ungapped, unpadded, short barcode comes back unchanged.
    for raw, seq in zip(coi_barcodes[:2000], cleaned[:2000], strict=True):
        ungapped = raw.replace("-", "").upper().strip("N")
        assert seq == ungapped[:MAX_NUCLEOTIDES].rstrip("N")

    masked = clean_barcodes(coi_barcodes, iupac="mask")
    ambiguous = sum(bool(re.search("[^ACGTN]", seq)) for seq in cleaned)
    assert ambiguous > 0
    assert not any(re.search("[^ACGTN]", seq) for seq in masked)


def test_clean_barcode_agrees_with_batch(coi_barcodes):
    sample = coi_barcodes[::997]
    assert [clean_barcode(seq, iupac="mask") for seq in sample] == clean_barcodes(sample, iupac="mask")


def test_deduplicate_real_barcodes(coi_barcodes):
    cleaned = clean_barcodes(coi_barcodes)
    keep, removed = deduplicate_barcodes(cleaned)
    distinct = pd.Series(cleaned).drop_duplicates(keep="first")
    assert removed == len(cleaned) - distinct.size
    assert removed > 10_000  # SOURCES.md: most species share haplotypes
    np.testing.assert_array_equal(keep, distinct.index.to_numpy())
    assert keep.dtype == np.int64


def test_deduplicate_file_without_duplicates(vendored_data):
    frame = pd.read_csv(vendored_data / UNSEEN, sep="\t", dtype=str)
    keep, removed = deduplicate_barcodes(frame["nucleotides"].tolist())
    assert removed == 0 and len(keep) == len(frame) == 428


def test_deduplicate_small_cases():
    keep, removed = deduplicate_barcodes(["AC", "GT", "AC", "", "", "TT"])
    assert keep.tolist() == [0, 1, 3, 5] and removed == 2
    keep, removed = deduplicate_barcodes([])
    assert keep.tolist() == [] and removed == 0
