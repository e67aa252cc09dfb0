"""Readers: real BOLD v3/v5 and BarcodeBERT tables, BIOSCAN-5M CSV and JSON-LD, FASTA, and bad input."""

from __future__ import annotations

import csv
import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bioscan5m.data.readers import (
    BIOSCAN_CSV,
    BIOSCAN_JSONLD,
    BOLD_TSV,
    FASTA,
    detect_format,
    read_table,
)
from bioscan5m.data.schema import COLUMN_NAMES, RECORD_SCHEMA, SPLITS
from bioscan5m.errors import BioscanError

DEGOBBI = "insect_bold_degobbi/insect_bold_records.tsv.gz"
# Vendored in tests/fixtures (see its README.md): the two BOLD v5 samples whole, BarcodeBERT's unseen set every 10th row.
V5_SAMPLE = "bold_v5/BOLD_Public.18-Dec-2023.sample999.tsv.gz"
V5_CURATED = "bold_v5/BOLD_Public.21-Jun-2024.curated.NL_873b975.tsv.gz"
UNSEEN = "barcodebert_unseen/unseen_every10th.tsv.gz"


def write_bioscan_csv(vendored_data: Path, dest: Path) -> Path:
    """A BIOSCAN-5M metadata CSV (23 columns) made from the real BOLD v5 sample of 999 AACTA/AAASF records.

    Splits cycle through the eight splits; the image columns are filled the way the real file fills them.
    """
    rows = read_table(vendored_data / V5_SAMPLE).to_pylist()
    with open(dest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMN_NAMES)
        for i, row in enumerate(rows):
            row.update(split=SPLITS[i % len(SPLITS)], chunk=str(i % 3) if i % 2 else None, inferred_ranks=i % 4,
                       index_bioscan_1M_insect=i if i % 5 else None, image_measurement_value=100.0 + i,
                       area_fraction=0.25, scale_factor=1.5)
            writer.writerow(["" if row[name] is None else row[name] for name in COLUMN_NAMES])
    return dest


def read_bold_with_pandas(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The independent reference: pandas, no quoting, every field a trimmed string."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, usecols=columns)
    return frame.apply(lambda column: column.str.strip())


def or_none(column: pd.Series) -> list[str | None]:
    """Column values with empty strings as None (what the readers produce)."""
    return [value or None for value in column]


@pytest.fixture(scope="module")
def bioscan_csv(vendored_data, tmp_path_factory) -> Path:
    return write_bioscan_csv(vendored_data, tmp_path_factory.mktemp("bioscan") / "metadata.csv")


# --- real BOLD tables ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def degobbi(shared_data) -> tuple[pa.Table, pd.DataFrame]:
    columns = ["processid", "markercode", "nucleotides", "species_name", "bin_uri", "province", "lat"]
    return read_table(shared_data / DEGOBBI), read_bold_with_pandas(shared_data / DEGOBBI, columns)


@pytest.mark.slow
def test_bold_v3_keeps_only_coi5p_rows(degobbi, shared_data):
    table, expected = degobbi
    coi = expected[expected["markercode"] == "COI-5P"]
    assert table.schema == RECORD_SCHEMA
    assert table.num_rows == len(coi) == 90_815
    assert table.column("processid").to_pylist() == coi["processid"].tolist()
    assert table.column("dna_barcode").to_pylist() == coi["nucleotides"].tolist()
    everything = read_table(shared_data / DEGOBBI, marker=None)
    assert everything.num_rows == len(expected) == 96_585


@pytest.mark.slow
def test_bold_v3_columns_are_mapped(degobbi):
    table, expected = degobbi
    coi = expected[expected["markercode"] == "COI-5P"]
    assert table.column("species").to_pylist() == or_none(coi["species_name"])
    assert table.column("dna_bin").to_pylist() == or_none(coi["bin_uri"])
    assert table.column("province_state").to_pylist() == or_none(coi["province"])
    lat = pd.to_numeric(coi["lat"]).to_numpy(dtype=float)
    np.testing.assert_array_equal(table.column("coord-lat").to_numpy(), lat)
    assert set(table.column("order").to_pylist()) == {"Diptera", "Lepidoptera", "Coleoptera", "Hymenoptera"}
    assert set(table.column("phylum").to_pylist()) == {"Arthropoda"}
    first = table.slice(0, 1).to_pylist()[0]
    assert first["processid"] == "EUCAR1303-15"
    assert (first["species"], first["genus"], first["family"], first["subfamily"]) == (
        "Amara convexior", "Amara", "Carabidae", "Harpalinae")
    assert (first["coord-lat"], first["coord-lon"], first["country"]) == (51.33, 7.19, "Germany")
    assert first["taxon"] == "Amara convexior" and first["split"] is None
    species = pd.Series(table.column("species").to_pylist()).value_counts()
    assert species.index[0] == "Aedes albopictus"  # SOURCES.md: the most sampled species


def test_bold_v5_sample(vendored_data):
    table = read_table(vendored_data / V5_SAMPLE)
    expected = read_bold_with_pandas(vendored_data / V5_SAMPLE)
    assert len(expected) == 999
    assert table.num_rows == (expected["marker_code"] == "COI-5P").sum()
    assert table.column("dna_barcode").to_pylist() == expected.loc[expected["marker_code"] == "COI-5P", "nucraw"].tolist()
    row = table.slice(0, 1).to_pylist()[0]
    assert row["processid"] == "AAASF001-17" and row["species"] == "Lutzomyia cruciata"
    assert (row["coord-lat"], row["coord-lon"]) == (19.3786, -88.1892)  # from "(19.3786,-88.1892)"
    assert row["province_state"] == "Quintana Roo" and row["dna_bin"] == "BOLD:ADP3520"
    # "None" is BOLD v5's missing value: species is filled for 169 rows only (SOURCES.md).
    assert table.column("species").null_count == table.num_rows - 169


def test_bold_v5_curated_schema(vendored_data):
    expected = read_bold_with_pandas(vendored_data / V5_CURATED)
    assert len(expected) == 662
    table = read_table(vendored_data / V5_CURATED, marker=None)
    assert table.num_rows == 662
    coi = read_table(vendored_data / V5_CURATED)
    assert coi.num_rows == (expected["marker_code"] == "COI-5P").sum()
    row = table.slice(0, 1).to_pylist()[0]
    assert (row["processid"], row["species"], row["country"]) == ("AACTA051-20", "Apis mellifera", "Australia")
    assert row["province_state"] == "Australian Capital Territory"  # from province/state
    assert (row["coord-lat"], row["coord-lon"]) == (-35.261, 149.059)  # from "[-35.261, 149.059]"
    assert table.column("dna_barcode").to_pylist() == or_none(expected["nuc"])
    assert set(table.column("phylum").to_pylist()) == {"Arthropoda", "Chordata"}


def test_barcodebert_table_without_marker_column(vendored_data):
    table = read_table(vendored_data / UNSEEN)
    assert detect_format(vendored_data / UNSEEN) == BOLD_TSV
    assert table.num_rows == 428
    assert len(set(table.column("species").to_pylist())) == 371
    assert len(set(table.column("genus").to_pylist())) == 298
    assert table.column("subfamily").null_count == 428
    assert table.slice(0, 1).to_pylist()[0]["dna_bin"] == "BOLD:AAI9020"


def test_cp1252_file_with_stray_carriage_returns(shared_data, tmp_path):
    lines = gzip.decompress((shared_data / DEGOBBI).read_bytes()).decode("utf-8").split("\n")[:300]
    utf8 = tmp_path / "utf8.tsv"
    utf8.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # BOLD v3 as downloaded: cp1252, CRLF line ends and a carriage return before a header field.
    damaged = "\r\n".join(line.replace("\timage_ids", "\t\rimage_ids") for line in lines) + "\r\n"
    cp1252 = tmp_path / "cp1252.tsv"
    cp1252.write_bytes(damaged.replace("Koehler", "Köhler").encode("cp1252"))
    clean, decoded = read_table(utf8), read_table(cp1252)
    assert decoded.num_rows == clean.num_rows > 200
    assert decoded.column("dna_barcode").to_pylist() == clean.column("dna_barcode").to_pylist()
    assert decoded.column("species").to_pylist() == clean.column("species").to_pylist()


def test_gzip_is_transparent(vendored_data, tmp_path):
    plain = tmp_path / "sample.tsv"
    plain.write_bytes(gzip.decompress((vendored_data / V5_SAMPLE).read_bytes()))
    assert read_table(vendored_data / V5_SAMPLE).equals(read_table(plain))


# --- BIOSCAN-5M CSV and JSON-LD ---------------------------------------------------------------------------


def test_bioscan_csv_types_and_values(bioscan_csv):
    assert detect_format(bioscan_csv) == BIOSCAN_CSV
    table = read_table(bioscan_csv)
    expected = pd.read_csv(bioscan_csv, dtype=str, keep_default_na=False)
    assert table.schema == RECORD_SCHEMA and table.num_rows == 999
    assert table.column("processid").to_pylist() == expected["processid"].tolist()
    assert table.column("split").to_pylist() == expected["split"].tolist()
    assert table.column("chunk").to_pylist() == or_none(expected["chunk"])
    assert table.column("inferred_ranks").to_pylist()[:5] == [0, 1, 2, 3, 0]
    assert table.column("index_bioscan_1M_insect").to_pylist()[:6] == [None, 1, 2, 3, 4, None]
    assert table.column("species").null_count == (expected["species"] == "").sum()


def write_jsonld(csv_path: Path, dest: Path) -> Path:
    """The JSON-LD variant of a metadata CSV: an @graph of objects with prefixed keys and typed values."""
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    graph = []
    for i, row in enumerate(frame.to_dict("records")):
        record = {"@id": f"bioscan5m:{row['processid']}", "@type": "schema:Thing"}
        for key, value in row.items():
            if value == "":
                continue  # JSON-LD leaves out missing values
            if key in ("coord-lat", "coord-lon", "area_fraction"):
                record[f"schema:{key}"] = float(value)
            elif key == "inferred_ranks" and i % 2:
                record[f"schema:{key}"] = {"@value": int(value), "@type": "xsd:integer"}
            elif key == "index_bioscan_1M_insect":
                record[f"http://bioscan.example/terms#{key}"] = int(value)
            else:
                record[f"schema:{key}"] = value
        graph.append(record)
    dest.write_text(json.dumps({"@context": {"schema": "http://schema.org/"}, "@graph": graph}), encoding="utf-8")
    return dest


def test_jsonld_matches_csv(bioscan_csv, tmp_path):
    jsonld = write_jsonld(bioscan_csv, tmp_path / "metadata.jsonld")
    assert detect_format(jsonld) == BIOSCAN_JSONLD
    from_json, from_csv = read_table(jsonld), read_table(bioscan_csv)
    assert from_json.schema == RECORD_SCHEMA
    for name in COLUMN_NAMES:
        assert from_json.column(name).to_pylist() == from_csv.column(name).to_pylist(), name


def test_jsonld_top_level_list_and_missing_processid(tmp_path):
    path = tmp_path / "list.jsonld"
    path.write_text(json.dumps([{"processid": "P1", "Species": "Aus bus", "split": "val"}]))
    row = read_table(path).to_pylist()[0]
    assert (row["processid"], row["species"], row["split"]) == ("P1", "Aus bus", "val")
    path.write_text(json.dumps({"@graph": [{"processid": "P1"}, {"species": "Aus bus"}]}))
    with pytest.raises(BioscanError, match="record 2 has no 'processid'"):
        read_table(path)


def header_and_row() -> tuple[str, str]:
    row = ("AACTA1-20,BIOUG1-A01,Diptera,Arthropoda,Insecta,Diptera,,,,,BOLD:AAA0001,ACGT,Australia,"
           '"Queensland, North",-12.5,130.9,1.5,0.3,1.0,2,train,,0')
    return ",".join(COLUMN_NAMES), row


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (lambda h, r: f"{h.replace(',dna_bin', '')}\n{r}\n", "missing column 'dna_bin' in the header", 1),
        (lambda h, r: f"{h}\n{r}\n{r}\n{r.rsplit(',', 1)[0]}\n", "expected 23 fields, found 22", 4),
        (lambda h, r: f"{h}\n{r}\n{r.replace('-12.5', 'north')}\n", "column 'coord-lat': 'north' is not a number", 3),
    ],
)
def test_bioscan_csv_errors_name_file_and_line(tmp_path, content, message, line):
    path = tmp_path / "metadata.csv"
    path.write_text(content(*header_and_row()), encoding="utf-8")
    with pytest.raises(BioscanError) as info:
        read_table(path)
    assert str(info.value) == f"{path}:{line}: {message}"
    assert info.value.line == line


def test_bioscan_csv_non_utf8_byte(tmp_path):
    header, row = header_and_row()
    path = tmp_path / "metadata.csv"
    path.write_bytes(f"{header}\n{row}\n".encode() + row.replace("Australia", "Austrália").encode("latin-1") + b"\n")
    with pytest.raises(BioscanError) as info:
        read_table(path)
    assert str(info.value) == f"{path}:3: byte 0xe1 is not valid UTF-8"


def test_bioscan_csv_unknown_split(tmp_path):
    header, row = header_and_row()
    path = tmp_path / "metadata.csv"
    path.write_text(f"{header}\n{row.replace(',train,', ',training,')}\n")
    with pytest.raises(BioscanError, match="record AACTA1-20: unknown split 'training'") as info:
        read_table(path)
    assert info.value.value == "training"


def test_skipping_bad_lines_warns_with_count_and_line(tmp_path):
    header, row = header_and_row()
    path = tmp_path / "metadata.csv.gz"
    path.write_bytes(gzip.compress(f"{header}\n{row}\n{row.rsplit(',', 2)[0]}\n{row}\n".encode()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_table(path, bad_lines="skip")
    assert table.num_rows == 2
    assert [str(w.message) for w in caught] == [f"{path}: skipped 1 lines with the wrong number of fields (the first at line 3)"]


# --- FASTA ----------------------------------------------------------------------------------------------------


def test_fasta_with_taxonomy(vendored_data, tmp_path):
    expected = read_table(vendored_data / UNSEEN).slice(0, 50)
    fasta, taxonomy = tmp_path / "unseen.fasta", tmp_path / "taxonomy.tsv"
    with open(fasta, "w") as handle:
        for pid, seq in zip(expected.column("processid").to_pylist(), expected.column("dna_barcode").to_pylist(), strict=True):
            wrapped = "\n".join(seq[i:i + 60].lower() for i in range(0, len(seq), 60))
            handle.write(f">{pid} COI-5P barcode\n{wrapped}\n\n")
    ranks = ["order", "family", "genus", "species"]
    rows = expected.select(["processid", *ranks, "dna_bin"]).to_pylist()[::-1]  # any order
    lines = ["processid\torder\tfamily\tgenus_name\tspecies\tbin_uri"]
    # The first record (last here) gets no taxonomy line.
    lines += ["\t".join(row[name] or "" for name in ["processid", *ranks, "dna_bin"]) for row in rows[:-1]]
    taxonomy.write_text("\n".join(lines) + "\n")
    assert detect_format(fasta) == FASTA
    table = read_table(fasta, taxonomy=taxonomy)
    assert table.column("processid").to_pylist() == expected.column("processid").to_pylist()
    assert table.column("dna_barcode").to_pylist() == [s.lower() for s in expected.column("dna_barcode").to_pylist()]
    for rank in [*ranks, "dna_bin"]:
        assert table.column(rank).to_pylist()[1:] == expected.column(rank).to_pylist()[1:]
        assert table.column(rank)[0].as_py() is None
    assert table.column("taxon").to_pylist()[1:] == expected.column("species").to_pylist()[1:]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (">a desc\nACGT\nACJT\n>b\nAC\n", ":3: 'J' is not a DNA letter (IUPAC nucleotide code) in record 'a'"),
        (">a\nACGT\n>b\n>c\nAAA\n", ":3: record 'b' has no sequence"),
        (">a\nACGT\n>b\n", ":3: record 'b' has no sequence"),
        ("ACGT\n>a\nAC\n", ":1: sequence before the first '>' header"),
    ],
)
def test_fasta_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.fasta"
    path.write_text(text)
    with pytest.raises(BioscanError) as info:
        read_table(path)
    assert str(info.value) == f"{path}{message}"


def test_taxonomy_only_for_fasta(vendored_data, tmp_path):
    with pytest.raises(BioscanError, match="taxonomy= is only used with FASTA"):
        read_table(vendored_data / UNSEEN, taxonomy=tmp_path / "t.tsv")


def test_unknown_format_is_an_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just some words\n")
    with pytest.raises(BioscanError, match="cannot tell the format"):
        read_table(path)
    with pytest.raises(BioscanError, match="unknown format 'excel'"):
        read_table(path, format="excel")
