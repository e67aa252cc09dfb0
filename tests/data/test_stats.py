"""Dataset statistics and plots, checked against independent pandas computations."""

from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bioscan5m.cli import main
from bioscan5m.data.records import load_records
from bioscan5m.data.schema import COLUMN_NAMES, MAX_NUCLEOTIDES, SPLITS, TARGET_RANKS
from bioscan5m.data.stats import (
    NO_SPLIT,
    STATS_COLUMNS,
    TOTAL,
    collection_sites,
    order_counts,
    rank_counts,
    split_summary,
    stats_table,
)
from bioscan5m.errors import BioscanError
from bioscan5m.report.plots import (
    plot_collection_sites,
    plot_order_counts,
    plot_split_sizes,
    write_stats_report,
)

BOLD_SAMPLE = "bold_v5/BOLD_Public.18-Dec-2023.sample999.tsv.gz"  # vendored in tests/fixtures

# processid, split, order, species, genus, dna_bin, dna_barcode, lat, lon
HANDMADE = [
    ("P1", "train", "Diptera", "Aedes bb", "Aedes", "BOLD:B1", "NNACGTACGT", "10.5", "20.25"),
    ("P2", "train", "Diptera", "Aedes bb", "Aedes", "BOLD:B1", "acgt-acgt", "10.5", "20.25"),
    ("P3", "train", "Hymenoptera", "Cotesia dd", "Cotesia", "BOLD:B2", "ACGTTTTTNN", "", ""),
    ("P4", "val", "Diptera", "Aedes bb", "Aedes", "BOLD:B1", "ACGTACGT", "10.5", "20.25"),
    ("P5", "val", "Lepidoptera", "", "", "BOLD:B3", "GGGG", "-33.9", "151.2"),
    ("P6", "pretrain", "Diptera", "", "", "BOLD:B4", "NNNN", "", ""),
    ("P7", "pretrain", "Coleoptera", "", "", "", "ACGTACGT", "-33.9", "151.2"),
    ("P8", "test_unseen", "Diptera", "Culex ff", "Culex", "BOLD:B6", "TTTT", "95.0", "20.0"),
    ("P9", "", "", "", "", "", "CCCC", "0", "0"),
    ("P10", "other_heldout", "Hymenoptera", "Cotesia sp1", "Cotesia", "BOLD:B7", "CCCC", "45", "-75"),
]


def write_bioscan_csv(path, rows) -> None:
    """A metadata CSV with the 23 BIOSCAN-5M columns; columns not given are left empty."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMN_NAMES)
        writer.writeheader()
        for processid, split, order, species, genus, bin_uri, barcode, lat, lon in rows:
            writer.writerow({
                "processid": processid, "sampleid": processid + "-s", "phylum": "Arthropoda",
                "class": "Insecta" if order else "", "order": order, "genus": genus, "species": species,
                "dna_bin": bin_uri, "dna_barcode": barcode, "coord-lat": lat, "coord-lon": lon,
                "inferred_ranks": "7", "split": split,
            })


@pytest.fixture
def handmade(tmp_path):
    path = tmp_path / "handmade.csv"
    write_bioscan_csv(path, HANDMADE)
    return path


def clean_with_pandas(barcodes: pd.Series) -> pd.Series:
    """Barcode cleaning re-done independently: no gaps, upper case, no N at the ends, 660 nt."""
    cleaned = barcodes.fillna("").str.replace(r"[-.\s]", "", regex=True).str.upper().str.strip("N")
    return cleaned.str[:MAX_NUCLEOTIDES].str.rstrip("N").replace("", None)


def expected_table(frame: pd.DataFrame, ranks=TARGET_RANKS) -> pd.DataFrame:
    """The stats table computed with plain pandas from a frame with split/dna_barcode/rank columns."""
    frame = frame.assign(split=frame["split"].fillna(NO_SPLIT), barcode=clean_with_pandas(frame["dna_barcode"]))
    grouped = frame.groupby("split", sort=False)
    table = pd.DataFrame({"records": grouped.size(), "unique_barcodes": grouped["barcode"].nunique()})
    table = table.join(grouped[list(ranks)].nunique())
    total = pd.DataFrame({"records": len(frame), "unique_barcodes": frame["barcode"].nunique(),
                          **frame[list(ranks)].nunique().to_dict()}, index=[TOTAL])
    order = [s for s in SPLITS if s in table.index] + ([NO_SPLIT] if NO_SPLIT in table.index else [])
    return pd.concat([table.loc[order], total]).astype("int64")


def test_split_summary_on_a_handmade_table(handmade):
    summary = split_summary(load_records(handmade))
    assert summary.index.tolist() == ["pretrain", "train", "val", "test_unseen", "other_heldout", NO_SPLIT, TOTAL]
    assert summary.to_dict("list") == {
        "records": [2, 3, 2, 1, 1, 1, 10],
        # pretrain: NNNN cleans to nothing; train: NNACGTACGT = acgt-acgt; total: ACGTACGT ACGTTTTT GGGG TTTT CCCC
        "unique_barcodes": [1, 2, 2, 1, 1, 1, 5],
        "species": [0, 2, 1, 1, 1, 0, 4],
    }


def test_stats_table_matches_pandas_on_handmade_table(handmade):
    table = stats_table(load_records(handmade))
    frame = pd.read_csv(handmade, dtype=str, keep_default_na=False).replace("", None)
    expected = expected_table(frame)
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_names=False)
    assert list(table.columns) == ["records", "unique_barcodes", "species", *[r for r in TARGET_RANKS if r != "species"]]
    assert table.loc[TOTAL, "order"] == 4 and table.loc["train", "genus"] == 2 and table.loc[TOTAL, "dna_bin"] == 6


def test_rank_counts_for_a_split_subset(handmade):
    counts = rank_counts(load_records(handmade, split="train+val"), ranks=("order", "species"))
    assert counts.to_dict("index") == {
        "train": {"order": 2, "species": 2},
        "val": {"order": 2, "species": 1},
        TOTAL: {"order": 3, "species": 2},
    }


def test_order_counts_and_collection_sites(handmade):
    records = load_records(handmade)
    orders = order_counts(records)
    assert orders.to_dict() == {"Diptera": 5, "Hymenoptera": 2, "Coleoptera": 1, "Lepidoptera": 1}
    assert list(orders.index) == ["Diptera", "Hymenoptera", "Coleoptera", "Lepidoptera"]  # ties by name
    sites = collection_sites(records)
    # P8's latitude 95 is impossible and left out; P3 and P6 have no coordinates.
    assert sites.values.tolist() == [[10.5, 20.25, 3], [-33.9, 151.2, 2], [0.0, 0.0, 1], [45.0, -75.0, 1]]
    assert list(sites.columns) == ["coord-lat", "coord-lon", "records"]


def test_bold_datapackage_counts_match_pandas(vendored_data):
    path = vendored_data / BOLD_SAMPLE
    records = load_records(path)
    table = stats_table(records)
    assert table.index.tolist() == [NO_SPLIT, TOTAL]  # BOLD records carry no split
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False).replace(["", "None"], None)
    frame = frame.rename(columns={"bin_uri": "dna_bin", "nucraw": "dna_barcode"}).assign(split=None)
    expected = expected_table(frame)
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_names=False)
    # The figures SOURCES.md gives for this file.
    assert table.loc[TOTAL, ["records", "class", "order", "family", "genus", "species", "dna_bin"]].tolist() == [
        999, 3, 14, 93, 116, 59, 389]
    sites = collection_sites(records)
    coords = frame["coord"].str.extract(r"\(([-\d.]+),([-\d.]+)\)").astype(float).value_counts()
    assert sorted(sites["records"].tolist()) == sorted(coords.tolist()) == [2, 4, 18, 20, 955]


def test_missing_columns_are_named(handmade):
    records = load_records(handmade, columns=["processid", "split"])
    with pytest.raises(BioscanError, match="lack column.*dna_barcode"):
        split_summary(records)


def test_non_dna_letter_names_the_record(tmp_path):
    path = tmp_path / "bad.csv"
    write_bioscan_csv(path, [*HANDMADE[:3], ("BAD1", "train", "Diptera", "", "", "", "ACGTZACGT", "", "")])
    with pytest.raises(BioscanError, match=r"record BAD1: 'Z' is not a DNA letter"):
        split_summary(load_records(path))


def test_plots_are_pngs_of_the_requested_size(tmp_path):
    counts = pd.Series([500, 20, 1], index=["Diptera", "Hymenoptera", "Odonata"], name="records")
    summary = pd.DataFrame({"records": [4000, 300, 10], "unique_barcodes": [2000, 100, 10], "species": [0, 5, 2]},
                           index=["pretrain", "train", TOTAL])
    sites = pd.DataFrame({"coord-lat": [10.0, -30.0], "coord-lon": [20.0, 150.0], "records": [300, 1]})
    outputs = [
        plot_order_counts(counts, tmp_path / "a" / "orders.png", size=(8, 4), dpi=50),
        plot_split_sizes(summary, tmp_path / "splits.png", size=(6, 3), dpi=100),
        plot_collection_sites(sites, tmp_path / "sites.png"),
        plot_collection_sites(sites.iloc[:0], tmp_path / "empty.png"),  # no sites: a labelled empty frame
    ]
    sizes = []
    for path in outputs:
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG"
            sizes.append(image.size)
    assert sizes == [(400, 200), (600, 300), (1200, 600), (1200, 600)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "empty.png", "sites.png", "splits.png"]


def test_failed_plot_leaves_no_file(tmp_path):
    with pytest.raises(KeyError):
        plot_split_sizes(pd.DataFrame({"species": [1]}, index=["train"]), tmp_path / "splits.png")
    assert list(tmp_path.iterdir()) == []


def test_write_stats_report(handmade, tmp_path):
    records = load_records(handmade)
    paths = write_stats_report(records, tmp_path / "out")
    assert [p.name for p in paths] == [
        "split_stats.tsv", "records_per_order.tsv", "records_per_split.png", "records_per_order.png",
        "collection_sites.png",
    ]
    written = pd.read_csv(paths[0], sep="\t", index_col="split")
    pd.testing.assert_frame_equal(written, stats_table(records), check_names=False)
    orders = pd.read_csv(paths[1], sep="\t")
    assert orders.values.tolist() == [["Diptera", 5], ["Hymenoptera", 2], ["Coleoptera", 1], ["Lepidoptera", 1]]
    for png in paths[2:]:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] >= 1000


def test_cli_prints_the_split_table_and_writes_outputs(handmade, tmp_path, capsys):
    assert main(["stats", str(handmade), "--out", str(tmp_path / "stats")]) == 0
    out = capsys.readouterr().out
    split_table = out.split("distinct names per rank")[0]
    rows = {line.split()[0]: line.split()[1:] for line in split_table.splitlines() if line.split()}
    assert rows["train"][:3] == ["3", "2", "2"]
    assert rows["total"][:3] == ["10", "5", "4"]
    assert "distinct names per rank" in out
    # second table: phylum class order family subfamily genus dna_bin
    header = next(line.split() for line in out.splitlines() if line.split()[:2] == ["species", "phylum"])
    assert header == ["species", *[r for r in TARGET_RANKS if r != "species"]]
    assert re.search(r"wrote .*collection_sites\.png", out)
    assert sorted(p.name for p in (tmp_path / "stats").iterdir()) == [
        "collection_sites.png", "records_per_order.png", "records_per_order.tsv", "records_per_split.png",
        "split_stats.tsv",
    ]


def test_cli_thousands_separators_and_bad_split(tmp_path, capsys):
    path = tmp_path / "many.csv"
    rows = [(f"Q{i}", "train", "Diptera", "", "", "", "ACGT" * (1 + i % 7), "", "") for i in range(1234)]
    write_bioscan_csv(path, rows)
    assert main(["stats", str(path)]) == 0
    assert re.search(r"^train\s+1,234\s+7\s+0", capsys.readouterr().out, re.MULTILINE)
    assert main(["stats", str(path), "--split", "training"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown split 'training'" in err[0]


def test_stats_columns_cover_what_is_read():
    assert set(STATS_COLUMNS) <= set(COLUMN_NAMES)
    assert np.isin(list(TARGET_RANKS), STATS_COLUMNS).all()


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from bioscan5m.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), records=3000, images=False, seed=3)


def test_stats_match_pandas_on_a_synthetic_dataset_root(synthetic_root, capsys):
    records = load_records(synthetic_root, columns=list(STATS_COLUMNS))
    table = stats_table(records)
    csv_path = synthetic_root / "bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv"
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False).replace("", None)
    expected = expected_table(frame)
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_names=False)
    assert set(table.index) == {*SPLITS, TOTAL}  # every split of the paper is present
    assert table.loc["pretrain", "species"] == 0
    assert main(["stats", str(synthetic_root), "--split", "unseen"]) == 0
    out = capsys.readouterr().out.split("distinct names per rank")[0]
    printed = [line.split()[0] for line in out.splitlines()[3:] if line.split()]
    assert printed == ["key_unseen", "val_unseen", "test_unseen", TOTAL]
