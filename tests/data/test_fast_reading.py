"""The fast paths of reading and cleaning give exactly what the plain ones give: block-wise barcode
cleaning, the records cache written straight for sources without splits, the reused read buffers, blank
fields nulled without copies, UTF-8 tables read as they are, and plain FASTA read a record at a time."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bioscan5m.data import cache as cache_module
from bioscan5m.data import readers
from bioscan5m.data import sequences as sequences_module
from bioscan5m.data.records import load_records
from bioscan5m.data.sequences import clean_barcode, clean_barcodes
from bioscan5m.errors import BioscanError


def _messy_barcodes(count: int, seed: int = 0) -> list[str | None]:
    """Gapped, lower-case, RNA, ambiguous, N-padded, over-long, empty and missing barcodes."""
    rng = np.random.default_rng(seed)
    pieces = ["ACGT", "acgt", "-", ".", " ", "\t", "N", "n", "U", "u", "RYKM", "swbdhv"]
    out: list[str | None] = []
    for _ in range(count):
        kind = rng.integers(10)
        if kind == 0:
            out.append(None)
        elif kind == 1:
            out.append("NNN-nn")
        elif kind == 2:
            out.append("")
        else:
            length = int(rng.integers(1, 260 if kind < 9 else 800))
            out.append("".join(rng.choice(pieces, length)))
    return out


@pytest.mark.parametrize("options", [{}, {"iupac": "mask"}, {"iupac": "mask", "max_length": 100},
                                     {"max_length": None}])
def test_block_cleaning_matches_one_by_one(options, monkeypatch):
    monkeypatch.setattr(sequences_module, "_BLOCK", 7)  # many blocks, some ending mid-list
    raw = _messy_barcodes(300)
    expected = [clean_barcode(seq, **options) if seq is not None else "" for seq in raw]
    assert clean_barcodes(raw, **options) == expected
    assert clean_barcodes(pa.array(raw, pa.string()), **options) == expected
    chunked = pa.chunked_array([pa.array(raw[:95], pa.large_string()), pa.array(raw[95:], pa.large_string())])
    assert clean_barcodes(chunked, **options) == expected
    assert clean_barcodes(iter(raw), **options) == expected
    assert sum(len(seq) > 660 for seq in raw if seq) > 5  # the length cut is exercised


def test_block_cleaning_names_a_bad_barcode_in_a_later_block(monkeypatch):
    monkeypatch.setattr(sequences_module, "_BLOCK", 4)
    raw = ["ACGT"] * 10 + ["ACXT"] + ["ACGT"] * 3
    with pytest.raises(BioscanError, match=r"barcode 10: 'X' is not a DNA letter") as caught:
        clean_barcodes(raw)
    assert caught.value.value == "X"
    with pytest.raises(BioscanError, match=r"barcode 5: .*not a DNA letter"):
        clean_barcodes(["ACGT"] * 5 + ["AC\x00GT"])  # the block separator itself is no DNA letter
    with pytest.raises(BioscanError, match=r"barcode 2: a barcode must be a string, not int"):
        clean_barcodes(["ACGT", None, 7])
    with pytest.raises(BioscanError, match=r"barcode 1: .*'é'"):
        clean_barcodes(["ACGT", "ACéT"])
    assert clean_barcodes([]) == [] and clean_barcodes(pa.array([], pa.string())) == []


def _bold_tsv(path, rows: int, splits: list[str] | None = None):
    rng = np.random.default_rng(1)
    header = ["processid", "species_name", "genus_name", "bin_uri", "nucleotides", *(["split"] if splits else [])]
    lines = ["\t".join(header)]
    for i in range(rows):
        fields = [f"P{i}", f"Aus s{i % 7}", "Aus", f"BOLD:A{i % 5}", "".join(rng.choice(list("ACGT"), 40))]
        lines.append("\t".join(fields + ([splits[i % len(splits)]] if splits else [])))
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


@pytest.mark.parametrize("splits", [None, ["train", "", "val", "", "pretrain"]], ids=["no-splits", "splits"])
def test_cache_layout_with_and_without_splits(tmp_path, monkeypatch, splits):
    """Without splits the cache is written in one pass; either way each split fills its own row groups of
    exactly ROW_GROUP_ROWS rows (the last shorter) and opens give the table an uncached read gives."""
    monkeypatch.setattr(cache_module, "ROW_GROUP_ROWS", 40)
    monkeypatch.setattr(readers, "_TSV_BLOCK_SIZE", 1500)  # many Arrow batches: row groups are cut across them
    source = _bold_tsv(tmp_path / "bold.tsv", 237, splits)
    records = load_records(source, cache_dir=tmp_path / "cache")
    uncached = load_records(source, use_cache=False)
    assert records.table.to_pylist() == uncached.table.to_pylist()
    handle = pq.ParquetFile(records.cache_path)
    sizes = [handle.metadata.row_group(g).num_rows for g in range(handle.num_row_groups)]
    layout = cache_module.RecordCache.for_source(source, cache_dir=tmp_path / "cache")
    assert layout.is_fresh()
    if splits is None:
        assert sizes == [40] * 5 + [37]
        assert layout.splits == {"": 237}
    else:
        assert list(layout.splits) == ["pretrain", "train", "val", ""]  # the paper's order, no split last
        assert sum(sizes) == 237 and all(size <= 40 for size in sizes)
        for group in range(handle.num_row_groups):
            assert len(set(handle.read_row_group(group, columns=["split"]).column("split").to_pylist())) == 1
        assert load_records(source, split="train", cache_dir=tmp_path / "cache").table.num_rows == 48
    assert not list((tmp_path / "cache" / "records").glob(".bioscan5m-build-*"))  # no scratch left behind


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_tsv_text_read_through_a_small_reused_buffer(tmp_path, monkeypatch, encoding):
    """Carriage returns (line ends and stray ones inside fields) are dropped and cp1252 decoded, also when
    they straddle the boundaries of the reused read buffer."""
    text = ("processid\tspecies_name\tnucleotides\r\n"
            + "".join(f"P{i}\tAus b\u00e9{i}\r\tACGT\r\n" for i in range(60)))
    path = tmp_path / "bold.tsv"
    path.write_bytes(text.encode(encoding))
    expected = load_records(path, use_cache=False).table.to_pylist()
    assert expected[3]["species"] == "Aus b\u00e93" and expected[3]["dna_barcode"] == "ACGT"
    for chunk in (40, 41, 97):  # the first piece pyarrow gets must hold the header line
        monkeypatch.setattr(readers, "_CHUNK", chunk)
        monkeypatch.setattr(readers, "_DECODE_PIECE", 3)
        assert readers._scan_text(path) == (encoding, True)
        assert load_records(path, use_cache=False).table.to_pylist() == expected


def _plain_null_blanks(arr: pa.Array, words: tuple[str, ...]) -> pa.Array:
    """Every value trimmed, then ``words`` made null, with a copy each: what ``_null_blanks`` must give."""
    trimmed = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    return pc.if_else(pc.is_in(trimmed, pa.array(words)), pa.scalar(None, pa.string()), trimmed)


@pytest.mark.parametrize("seed", range(4))
def test_blank_fields_are_nulled_as_the_plain_trim_and_replace_does(seed):
    """Fields needing no trim are not copied and blanks are nulled in the validity bitmap only; the result is
    what trimming and replacing every value gives, for any whitespace (ASCII, control, Unicode) at either end,
    in sliced arrays too."""
    rng = np.random.default_rng(seed)
    pool = np.array(["", "None", " None ", "ACGT", " ACGT", "ACGT\t", "\x1cx", "x\x85", "\u00a0y", "\u00e9",
                     None, "N one", "  ", "\r", "a\u3000"], dtype=object)
    for _ in range(60):
        arr = pa.array(rng.choice(pool, int(rng.integers(0, 14))).tolist(), pa.string())
        start = int(rng.integers(0, 3))
        for values in (arr, arr.slice(start, max(len(arr) - 2 * start, 0))):
            for words in (readers._NULL_WORDS, ("",)):
                got = readers._null_blanks(values, words)
                got.validate(full=True)
                assert got.equals(_plain_null_blanks(values, words)), (values, words)
    clean = pa.array(["ACGT", "TTGA"])
    assert readers._null_blanks(clean).buffers()[2].address == clean.buffers()[2].address  # no copy


def test_a_tsv_read_as_is_matches_one_read_through_the_cleaning_stream(tmp_path, monkeypatch):
    """A UTF-8 table without carriage returns goes to pyarrow unchanged, in small blocks; the records equal
    those of the same table with CRLF line ends (which is read through ``_CleanText``) and of one big block."""
    lines = ["processid\tspecies_name\tgenus_name\tnucleotides"] + [
        f"P{i}\t Aus b\u00e9{i % 4} \t{'' if i % 5 == 0 else 'Aus'}\t{'ACGT' * (i % 9)}" for i in range(300)]
    plain, crlf = tmp_path / "plain.tsv", tmp_path / "crlf.tsv"
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    crlf.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert readers._scan_text(plain) == ("utf-8", False) and readers._scan_text(crlf) == ("utf-8", True)
    monkeypatch.setattr(readers, "_TSV_BLOCK_SIZE", 700)
    expected = load_records(crlf, use_cache=False).table
    assert expected.column("species")[3].as_py() == "Aus b\u00e93" and expected.column("genus")[0].as_py() is None
    assert load_records(plain, use_cache=False).table.to_pylist() == expected.to_pylist()
    monkeypatch.setattr(readers, "_TSV_BLOCK_SIZE", 1 << 20)
    assert load_records(plain, use_cache=False).table.to_pylist() == expected.to_pylist()


_GOOD_HEADERS = [">r{} some description", ">r{};tax=o:Diptera,g:Aus;", ">r{}\t\u00e9t\u00e9", ">r{};", ">r{}"]
_GOOD_LINES = ["ACGTN", "acgtn-..ryk", "ACGT ACGT", "  ACGU\t", ""]
_BAD_HEADERS = ["> ", "  >r{}"]
_BAD_LINES = ["ACXT", "AC\x0bGT", "\u00e9CGT", "AC\x1cGT", ">"]


def _random_fasta(rng: np.random.Generator) -> bytes:
    """A FASTA text, plain (half) or not: CRLF, blank and indented lines, lower case, gaps, SINTAX headers,
    bad letters, headers without an id, records without sequence, text before the first header, non-UTF-8."""
    messy = rng.random() < 0.5
    headers, sequence_lines = (_GOOD_HEADERS + _BAD_HEADERS, _GOOD_LINES + _BAD_LINES) if messy else (
        _GOOD_HEADERS, _GOOD_LINES)
    lines = []
    for number in range(int(rng.integers(1, 7))):
        lines.append(str(rng.choice(headers)).format(number))
        for _ in range(int(rng.integers(0 if messy and rng.random() < 0.2 else 1, 4))):
            lines.append(str(rng.choice(sequence_lines[:1] if not messy and len(lines) < 2 else sequence_lines)))
    ending = str(rng.choice(["\n", "\r\n"]))
    text = ending.join(lines) + (ending if rng.random() < 0.8 else "")
    prefix = str(rng.choice(["", "\n", "ACGT\n", "\ufeff"])) if messy and rng.random() < 0.3 else ""
    data = (prefix + text).encode("utf-8")
    return data.replace(b"\xc3\xa9", b"\xe9") if messy and rng.random() < 0.1 else data


def _fasta_outcome(path, monkeypatch, plain: bool):
    with monkeypatch.context() as patch:
        if not plain:
            patch.setattr(readers, "_parse_plain_fasta", lambda path: None)
        try:
            return readers._read_fasta(path, None).to_pydict()
        except BioscanError as error:
            return str(error), error.value


def test_plain_fasta_reading_matches_the_line_by_line_parser(tmp_path, monkeypatch):
    """Record by record, in pieces of whole records, a plain FASTA gives the records, and any other FASTA the
    error (with its line), that the line-by-line parser gives."""
    rng = np.random.default_rng(11)
    path = tmp_path / "queries.fasta"
    plain = 0
    for _ in range(300):
        path.write_bytes(_random_fasta(rng))
        monkeypatch.setattr(readers, "_CHUNK", int(rng.choice([7, 64, 1 << 20])))
        plain += readers._parse_plain_fasta(path) is not None
        assert _fasta_outcome(path, monkeypatch, True) == _fasta_outcome(path, monkeypatch, False)
    assert 30 < plain < 270  # both paths were taken
