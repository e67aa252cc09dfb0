"""read_reference / read_queries: what a reference becomes (haplotypes, rank names, majorities, BINs),
checked against the plain per-record algorithm, and what reading the inputs leaves in the cache folder."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from bioscan5m.data.schema import BIN, DNA_COLUMN, ID_COLUMN
from bioscan5m.data.sequences import clean_barcodes
from bioscan5m.tasks.identify.consensus import RANKS
from bioscan5m.tasks.identify.reference import CLEAN_OPTIONS, read_queries, read_reference


def _plain_reference(frame: pd.DataFrame) -> dict:
    """The reference built record by record: what read_reference must give."""
    sequences = clean_barcodes(frame[DNA_COLUMN].astype(object).where(frame[DNA_COLUMN].notna(), None).tolist(),
                               **CLEAN_OPTIONS)
    keep = [i for i, seq in enumerate(sequences) if seq]
    haplotypes = sorted({sequences[i] for i in keep})
    index = {seq: h for h, seq in enumerate(haplotypes)}
    record_haplotype = [index[sequences[i]] for i in keep]
    first = {}
    for i in keep:
        first.setdefault(sequences[i], frame[ID_COLUMN].iloc[i])

    def name(value):
        return value.strip() if isinstance(value, str) and value.strip() else None

    def majority(values):  # per haplotype: most frequent name, ties to the alphabetically first
        best = [None] * len(haplotypes)
        for h in range(len(haplotypes)):
            counts = pd.Series([v for v, g in zip(values, record_haplotype) if g == h and v]).value_counts()
            if len(counts):
                best[h] = min(counts.index[counts == counts.max()])
        return best

    ranks = {}
    for rank in RANKS:
        values = [name(frame[rank].iloc[i]) if rank in frame else None for i in keep]
        ranks[rank] = (sorted({v for v in values if v is not None}), majority(values))
    bins = [None if pd.isna(frame[BIN].iloc[i]) else str(frame[BIN].iloc[i]) for i in keep]
    return {"sequences": haplotypes, "first": [first[seq] for seq in haplotypes], "ranks": ranks,
            "bins": [b or "" for b in majority(bins)], "n_records": np.bincount(record_haplotype).tolist()}


def _messy_reference(size: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    barcodes = ["ACGTACGTAA", "acgt-acgtaa", "NNACGTACGTAA", "TTGGCCAATT", "ttggccaatt", "GGGGCCCCAA",
                "NNNN", "", None, "ACGTRYACGT"]
    names = ["Aus bus", "  Aus bus", "Aus bus ", "Cus dus", "\tCus dus", "", "   ", None, np.nan, 3.5,
             "Éus üs", "Aus  bus"]
    frame = pd.DataFrame({ID_COLUMN: [f"R{i}" for i in range(size)],
                          DNA_COLUMN: rng.choice(np.array(barcodes, dtype=object), size)})
    for rank in RANKS[:-2]:
        frame[rank] = rng.choice(np.array(["Fam", " Fam", "Gam", None], dtype=object), size)
    frame["genus"] = pd.Categorical(rng.choice(["Aus", " Aus ", "Cus", ""], size))
    frame["species"] = rng.choice(np.array(names, dtype=object), size)
    frame[BIN] = rng.choice(np.array(["BOLD:AA1", "BOLD:AB2", None, ""], dtype=object), size)
    return frame


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_matches_the_record_by_record_algorithm(seed):
    frame = _messy_reference(400, seed)
    ref = read_reference(frame)
    plain = _plain_reference(frame)
    assert ref.sequences == plain["sequences"] and "ACGTNNACGT" in ref.sequences  # R, Y masked to N
    assert ref.record_ids.tolist() == plain["first"]
    assert ref.n_records.tolist() == plain["n_records"] and ref.n_records.dtype == np.int64
    for column, rank in enumerate(RANKS):
        names, majority = plain["ranks"][rank]
        assert list(ref.names[rank]) == names, rank
        got = [ref.names[rank][code] if code >= 0 else None for code in ref.labels[:, column]]
        assert got == majority, rank
    assert ref.bins.tolist() == plain["bins"]
    # Whitespace is stripped; blank strings, NaN, None and non-strings are missing.
    assert ref.names["species"] == ("Aus  bus", "Aus bus", "Cus dus", "Éus üs")
    assert ref.names["genus"] == ("Aus", "Cus")
    kept = ref.record_haplotype.shape[0]
    assert ref.record_labels.shape == (kept, len(RANKS)) and ref.record_labels.dtype == np.int32


def test_a_rank_without_any_name_is_all_missing():
    frame = _messy_reference(50, 3)
    frame["species"] = ["  ", "", None, np.nan, 1.0] * 10
    ref = read_reference(frame)
    assert ref.names["species"] == ()
    assert (ref.labels[:, RANKS.index("species")] == -1).all()


def test_reading_queries_leaves_no_records_cache(tmp_path, monkeypatch):
    """Queries are read once per run: they are not cached; ``read_reference`` caches a file's records
    unless told not to (identify tells it not to for a reference file: see below)."""
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "cache"))
    queries = tmp_path / "queries.fasta"
    queries.write_text(">q1 first\nacgt-ACGTAA\n>q2\nNNTTGGCC\nAATT\n")
    ids, sequences = read_queries(queries)
    assert ids.tolist() == ["q1", "q2"] and sequences == ["ACGTACGTAA", "TTGGCCAATT"]
    assert not list((tmp_path / "cache").glob("records/*.parquet"))
    reference = tmp_path / "reference.tsv"
    reference.write_text("processid\tgenus_name\tspecies_name\tnucleotides\nR1\tAus\tAus bus\tACGTACGTAA\n")
    assert read_reference(reference).names["species"] == ("Aus bus",)
    assert len(list((tmp_path / "cache").glob("records/reference.tsv.*.parquet"))) == 1


def test_a_bad_barcode_names_its_first_record():
    frame = pd.DataFrame({ID_COLUMN: ["R0", "R1", "R2", "R3", "R4"],
                          DNA_COLUMN: ["ACGT", "ACGT", "ACXT", "ACQT", "ACXT"], "species": ["Aus bus"] * 5})
    with pytest.raises(Exception, match=r"reference record 'R2': 'X' is not a DNA letter") as caught:
        read_reference(frame)
    assert type(caught.value).__name__ == "BioscanError" and caught.value.value == "X"
    frame[DNA_COLUMN] = ["ACGT", None, "ACGT", 5, "ACGT"]
    with pytest.raises(Exception, match=r"reference record 'R3': a barcode must be a string, not int"):
        read_reference(frame)


def test_identify_keeps_its_caches_in_its_cache_folder(tmp_path, monkeypatch):
    """`identify --cache-dir X` keeps the reference's index under X (not in the user cache), and the records
    of a dataset folder too; a reference file gets no records cache (its index is found without reading it
    again), and `use_cache=False` leaves nothing anywhere."""
    from bioscan5m.data.records import METADATA_PATHS
    from bioscan5m.data.schema import COLUMN_NAMES
    from bioscan5m.tasks.identify import BarcodeIdentifier

    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "user-cache"))
    rows = [(f"R{i}", "Diptera", "Aus", f"Aus b{i % 3}", f"{'ACGT' * 40}{'ACGT'[i % 4] * 8}{'TTGCA' * 30}")
            for i in range(30)]
    reference = tmp_path / "reference.tsv"
    reference.write_text("processid\torder_name\tgenus_name\tspecies_name\tnucleotides\n"
                         + "".join("\t".join(row) + "\n" for row in rows))
    dataset = tmp_path / "dataset"
    (dataset / METADATA_PATHS[0]).parent.mkdir(parents=True)
    with open(dataset / METADATA_PATHS[0], "w", newline="") as handle:  # the 23 BIOSCAN-5M columns
        writer = csv.DictWriter(handle, fieldnames=COLUMN_NAMES)
        writer.writeheader()
        writer.writerows({"processid": processid, "sampleid": processid, "order": order, "genus": genus,
                          "species": species, "dna_barcode": barcode, "split": "train"}
                         for processid, order, genus, species, barcode in rows)
    model = BarcodeIdentifier(n_simulated=20, threads=1, cache_dir=tmp_path / "chosen", progress=False)
    model.fit(reference)
    assert model.cache_path_.parent == tmp_path / "chosen" / "identify"
    assert not (tmp_path / "chosen" / "records").exists()
    model.fit(dataset)
    assert model.cache_path_.parent == tmp_path / "chosen" / "identify"
    assert len(list((tmp_path / "chosen").glob("records/*.parquet"))) == 1
    assert not (tmp_path / "user-cache").exists()
    for source in (reference, dataset):
        BarcodeIdentifier(n_simulated=20, threads=1, use_cache=False, cache_dir=tmp_path / "unused",
                          progress=False).fit(source)
    assert not (tmp_path / "unused").exists() and not (tmp_path / "user-cache").exists()


def test_distinct_strings_are_what_numpy_unique_gives():
    """The haplotypes' order and every record's index are ``np.unique``'s (code point order), for barcodes and
    for any strings (non-ASCII ones sort by code point too)."""
    from bioscan5m.tasks.identify.reference import _distinct

    rng = np.random.default_rng(5)
    for pool in (["ACGT", "ACG", "ACGTN", "TTT", "A", "ACGTA"], ["b", "\u00e9", "B", "\u4e2d", "a\U0001f600", "", "e"]):
        strings = rng.choice(np.array(pool, dtype=object), 200).tolist()
        distinct, inverse = _distinct(strings)
        want, want_inverse = np.unique(np.array(strings, dtype=object), return_inverse=True)
        assert distinct == want.tolist() and inverse.tolist() == want_inverse.tolist() and inverse.dtype == np.int64
    empty, inverse = _distinct([])
    assert empty == [] and inverse.shape == (0,) and inverse.dtype == np.int64


def _plain_queries(barcodes: list) -> list[str] | str:
    """Every query cleaned one by one, or the error naming the first bad one (first a barcode that cannot be
    cleaned, then one with nothing left): what read_queries must give."""
    cleaned = []
    for number, barcode in enumerate(barcodes, 1):
        try:
            cleaned.append(clean_barcodes([barcode], **CLEAN_OPTIONS)[0])
        except Exception as error:  # noqa: BLE001 (the message is compared)
            return f"query 'query{number}': {error.reason.split(': ', 1)[-1]}"
    for number, sequence in enumerate(cleaned, 1):
        if not sequence:
            return f"query 'query{number}' has no DNA left after cleaning (empty or only N)"
    return cleaned


@pytest.mark.parametrize("bad", [None, "NNNN", "", "ACXT", 5, ["ACGT"]])
def test_queries_are_cleaned_as_one_by_one(bad):
    """Each distinct query is cleaned once, yet every query gets its cleaned barcode, and the error names the
    first query that is bad (a non-DNA letter, not a string, unhashable, or nothing left after cleaning)."""
    rng = np.random.default_rng(7)
    good = ["ACGTACGTAA", "acgt-acgtaa", "NNACGTACGTAA", "TTGGCCAATT", "GGRYCCAA"]
    barcodes = rng.choice(np.array(good, dtype=object), 40).tolist()
    if bad is not None:
        barcodes[17], barcodes[30] = bad, "NNN-N" if bad in ("NNNN", "") else "ACXT"
    expected = _plain_queries(barcodes)
    try:
        ids, sequences = read_queries(barcodes)
    except Exception as error:  # noqa: BLE001
        assert type(error).__name__ == "BioscanError" and error.reason == expected
        assert "query18" in expected
    else:
        assert bad is None and sequences == expected and ids.tolist() == [f"query{i + 1}" for i in range(40)]
