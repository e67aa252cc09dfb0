"""The synthetic BIOSCAN-5M generator: layout, columns, determinism, split rules, barcodes, images, CLI."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from PIL import Image

from bioscan5m.cli import main
from bioscan5m.data.images import ImageStore
from bioscan5m.data.records import load_records
from bioscan5m.data.schema import COLUMN_NAMES, COLUMNS, SEEN_SPLITS, SPLITS, TAXONOMIC_RANKS, UNSEEN_SPLITS
from bioscan5m.data.synthetic import METADATA_CSV, write_synthetic_dataset
from bioscan5m.data.synthetic import render as render_module
from bioscan5m.data.synthetic import writer as writer_module
from bioscan5m.data.synthetic.appearance import Appearance
from bioscan5m.data.synthetic.render import render_specimen
from bioscan5m.data.synthetic.specimens import PAPER_SPLIT_RECORDS, sample_specimens
from bioscan5m.errors import BioscanError


def _read(root: Path) -> pd.DataFrame:
    """The metadata CSV with empty fields as "" (so string tests need no NaN handling)."""
    return pd.read_csv(root / METADATA_CSV, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """5,000 records without images (the size the toolkit's own tests use)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), 5000, images=False, seed=0)


@pytest.fixture(scope="module")
def table(dataset) -> pd.DataFrame:
    return _read(dataset)


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("images"), 300, images=True, seed=1)


def test_all_23_columns_parse_with_the_schema_types(dataset):
    path = dataset / METADATA_CSV
    assert path.is_file()
    with open(path, encoding="utf-8") as handle:
        assert handle.readline().rstrip("\n").split(",") == list(COLUMN_NAMES)
    typed = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(column_types=COLUMNS, strings_can_be_null=True),
    )
    assert typed.num_rows == 5000
    assert typed.schema.names == list(COLUMN_NAMES)
    for name, dtype in COLUMNS.items():
        assert typed.schema.field(name).type == dtype, name
    assert typed.column("processid").null_count == 0
    assert typed.column("dna_barcode").null_count == 0
    assert pa.compute.min(typed.column("inferred_ranks")).as_py() == 0
    assert pa.compute.max(typed.column("inferred_ranks")).as_py() <= len(TAXONOMIC_RANKS) - 1


def test_value_formats_match_the_real_file(table):
    assert table.processid.is_unique and table.sampleid.is_unique
    assert table.processid.str.fullmatch(r"[A-Z]{4,5}\d+-\d{2}").all()
    assert table.sampleid.str.fullmatch(r"BIOUG\d{5}-[A-H](0[1-9]|1[0-2])").all()
    bins = table.dna_bin[table.dna_bin != ""]
    assert bins.str.fullmatch(r"BOLD:A[A-F][A-Z]\d{4}").all()
    assert 0.99 < len(bins) / len(table) < 1.0  # a few records lack a BIN, as in BIOSCAN-5M (99.7 %)
    assert (table.phylum == "Arthropoda").all()
    assert table.split.isin(SPLITS).all()
    lat = pd.to_numeric(table["coord-lat"].replace("", np.nan))
    lon = pd.to_numeric(table["coord-lon"].replace("", np.nan))
    assert lat.dropna().between(-90, 90).all() and lon.dropna().between(-180, 180).all()
    assert 0.01 < lat.isna().mean() < 0.06
    assert table.country.nunique() > 20 and (table.country != "").all()
    size = pd.to_numeric(table.image_measurement_value)
    area = pd.to_numeric(table.area_fraction)
    scale = pd.to_numeric(table.scale_factor)
    assert (size > 0).all() and area.between(0, 1, inclusive="right").all() and (scale > 0).all()
    index_1m = pd.to_numeric(table.index_bioscan_1M_insect.replace("", np.nan)).dropna()
    assert index_1m.is_unique and (index_1m >= 0).all()
    assert 0.1 < len(index_1m) / len(table) < 0.35  # BIOSCAN-1M is 22 % of BIOSCAN-5M


def test_taxon_is_the_deepest_named_rank(table):
    deepest = table.phylum.copy()
    for rank in TAXONOMIC_RANKS[1:]:
        deepest = deepest.where(table[rank] == "", table[rank])
    assert (table.taxon == deepest).all()
    # Ranks are filled from the top down: a record named at a rank is named at every rank above it
    # (subfamily excepted, which many families lack).
    for upper, lower in [("class", "order"), ("order", "family"), ("family", "genus"), ("genus", "species")]:
        assert not ((table[upper] == "") & (table[lower] != "")).any(), (upper, lower)


def test_chunks_follow_the_official_image_folders(table):
    digits = table.split.map({"pretrain": 2, "train": 1, "other_heldout": 1}).fillna(0).astype(int)
    expected = [hashlib.md5(p.encode()).hexdigest()[:d] for p, d in zip(table.processid, digits)]
    assert table.chunk.tolist() == expected
    assert (table.chunk[table.split.isin(["val", "test", *UNSEEN_SPLITS])] == "").all()


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path):
    first = write_synthetic_dataset(tmp_path / "a", 1500, images=False, seed=7)
    again = write_synthetic_dataset(tmp_path / "b", 1500, images=False, seed=7)
    other = write_synthetic_dataset(tmp_path / "c", 1500, images=False, seed=8)
    assert (first / METADATA_CSV).read_bytes() == (again / METADATA_CSV).read_bytes()
    assert (first / METADATA_CSV).read_bytes() != (other / METADATA_CSV).read_bytes()


def test_same_seed_gives_an_identical_image_zip(tmp_path):
    zips = [
        write_synthetic_dataset(tmp_path / name, 40, seed=5) / "BIOSCAN_5M_cropped_256.zip" for name in "ab"
    ]
    assert zips[0].read_bytes() == zips[1].read_bytes()


def test_split_rules_of_the_paper_hold(table):
    pretrain = table[table.split == "pretrain"]
    assert (pretrain.species == "").all()
    assert (pretrain.genus == "").mean() > 0.5  # usually not even named to genus
    assert (table.species[table.split != "pretrain"] != "").all()

    seen = set(table.species[table.split.isin(SEEN_SPLITS)])
    unseen = set(table.species[table.split.isin(UNSEEN_SPLITS)])
    heldout = set(table.species[table.split == "other_heldout"])
    assert seen and unseen and heldout
    assert not seen & unseen and not seen & heldout and not unseen & heldout
    train = set(table.species[table.split == "train"])
    assert set(table.species[table.split.isin(["val", "test"])]) <= train
    assert set(table.species[table.split.isin(["val_unseen", "test_unseen"])]) <= set(
        table.species[table.split == "key_unseen"]
    )
    # Unseen species carry real genus names that training has seen.
    train_genera = set(table.genus[table.split == "train"])
    assert set(table.genus[table.split.isin(UNSEEN_SPLITS)]) <= train_genera
    # Scientific names are binomials; other_heldout has interim names (BOLD-style "sp.", "cf.", "gen.").
    named = table.species[table.split.isin(SEEN_SPLITS + UNSEEN_SPLITS)]
    assert named.str.fullmatch(r"[A-Z][a-z]+ [a-z]+").all()
    assert (named.str.split(" ").str[0] == table.genus[named.index]).all()
    assert table.species[table.split == "other_heldout"].str.contains(r"\b(?:sp|cf|gen)\.").all()
    # Test and validation barcodes never also occur in the split they are held out from.
    barcodes = {s: set(table.dna_barcode[table.split == s].str.strip("N")) for s in SPLITS}
    for held_out, kept in [
        ("test", "train"),
        ("val", "train"),
        ("test_unseen", "key_unseen"),
        ("val_unseen", "key_unseen"),
    ]:
        assert not barcodes[held_out] & barcodes[kept], (held_out, kept)


@pytest.mark.slow
def test_split_shares_match_the_paper_at_full_scale():
    specimens = sample_specimens(1_000_000, seed=0)
    shares = np.bincount(specimens.split, minlength=len(SPLITS)) / len(specimens)
    paper = np.array([PAPER_SPLIT_RECORDS[s] for s in SPLITS], dtype=float)
    paper /= paper.sum()
    # Within half a percentage point for every split (pretrain 90.8 %, train 5.6 %, ...).
    assert np.abs(shares - paper).max() < 0.005, dict(zip(SPLITS, shares.round(4)))
    # Ranks are named about as often as in BIOSCAN-5M: family 95.8 %, genus 23.8 %, species 9.2 %.
    named_to = np.bincount(specimens.depth, minlength=7)[::-1].cumsum()[::-1] / len(specimens)
    assert abs(named_to[TAXONOMIC_RANKS.index("family")] - 0.958) < 0.02
    assert abs(named_to[TAXONOMIC_RANKS.index("genus")] - 0.238) < 0.03
    assert abs(named_to[TAXONOMIC_RANKS.index("species")] - 0.092) < 0.01
    genus = specimens.taxonomy.species_genus[specimens.species]
    subfamily_named = (specimens.depth >= TAXONOMIC_RANKS.index("subfamily")) & (
        specimens.taxonomy.genus_subfamily[genus] >= 0
    )
    assert abs(subfamily_named.mean() - 0.286) < 0.03
    # Genus names come from a minority of genera (BIOSCAN-5M: 7,605 genera named among 324 k BINs).
    named_genera = np.unique(genus[specimens.depth >= TAXONOMIC_RANKS.index("genus")])
    assert len(named_genera) < 0.2 * len(specimens.taxonomy.genus_family)


def test_taxonomy_is_skewed_like_real_catches(table):
    orders = table.order[table.order != ""].value_counts(normalize=True)
    assert orders.index[0] == "Diptera" and 0.6 < orders.iloc[0] < 0.8
    assert (table["class"] == "Insecta").mean() > 0.9 and table["class"].nunique() >= 2
    families = table.family[table.family != ""].value_counts()
    assert families.iloc[0] > 10 * families.median()  # a few huge families, many small ones
    species = table.species[table.split.isin(SEEN_SPLITS)].value_counts()
    assert species.iloc[0] > 10 * species.median()


def test_barcodes_are_coi_like(table):
    barcodes = table.dna_barcode
    lengths = barcodes.str.len()
    assert lengths.median() == 658
    assert 0.45 < (lengths == 658).mean() < 0.7
    assert lengths.between(600, 660).mean() > 0.8
    assert (lengths < 500).mean() > 0.01 and lengths.max() <= 680
    assert barcodes.str.fullmatch(r"[ACGTNRYKMSW]+").all()
    bases = "".join(barcodes.iloc[:1000]).replace("N", "")
    at = (bases.count("A") + bases.count("T")) / len(bases)
    assert 0.64 < at < 0.72
    with_n = barcodes.str.contains("N")
    assert 0.03 < with_n.mean() < 0.2
    assert barcodes.str.endswith("N").mean() > 0.02  # trailing N runs, which loaders strip
    # Identical barcodes recur (BIOSCAN-5M: 2.49 M unique among 5.15 M), mostly within a species.
    assert 0.35 < barcodes.nunique() / len(barcodes) < 0.6
    assert barcodes.value_counts().iloc[0] >= 20


def test_distance_between_barcodes_follows_the_taxonomy(table):
    full = table[(table.dna_barcode.str.len() == 658) & ~table.dna_barcode.str.contains("N")].reset_index()
    seqs = np.frombuffer("".join(full.dna_barcode).encode(), dtype=np.uint8).reshape(-1, 658)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(full), (2, 200_000))
    i, j = i[i != j], j[i != j]
    distance = (seqs[i] != seqs[j]).mean(axis=1)

    def same(rank: str) -> np.ndarray:
        a, b = full[rank].to_numpy()[i], full[rank].to_numpy()[j]
        return (a != "") & (a == b)

    def differ(rank: str) -> np.ndarray:
        a, b = full[rank].to_numpy()[i], full[rank].to_numpy()[j]
        return (a != "") & (b != "") & (a != b)

    within_species = distance[same("species")].mean()
    within_genus = distance[same("genus") & differ("species")].mean()
    within_family = distance[same("family") & differ("genus")].mean()
    within_order = distance[same("order") & differ("family")].mean()
    between_orders = distance[differ("order")].mean()
    assert within_species < 0.01
    assert 0.015 < within_genus < 0.07
    assert 0.07 < within_family < 0.16
    assert 0.15 < within_order < 0.25
    assert 0.22 < between_orders < 0.38
    assert within_species < within_genus < within_family < within_order < between_orders


def test_image_zip_has_the_official_layout_and_images_decode(image_dataset):
    table = _read(image_dataset)
    zip_path = image_dataset / "BIOSCAN_5M_cropped_256.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        expected = [
            "bioscan5m/images/cropped_256/" + "/".join(p for p in (split, chunk, f"{pid}.jpg") if p)
            for split, chunk, pid in zip(table.split, table.chunk, table.processid)
        ]
        assert names == expected
        assert any(
            re.fullmatch(r"bioscan5m/images/cropped_256/pretrain/[0-9a-f]{2}/.+\.jpg", n) for n in names
        )
        assert any(re.fullmatch(r"bioscan5m/images/cropped_256/test/[^/]+\.jpg", n) for n in names)
        for name in names[:40]:
            image = Image.open(io.BytesIO(archive.read(name)))
            assert image.format == "JPEG" and image.mode == "RGB"
            assert min(image.size) == 256 and max(image.size) <= 3 * 256


def test_image_store_reads_the_synthetic_zip(image_dataset):
    table = _read(image_dataset)
    store = ImageStore.open(image_dataset, package="cropped_256")
    for row in table.iloc[:5].itertuples():
        image = store.load(row.processid, row.split, row.chunk)
        assert image.mode == "RGB" and min(image.size) == 256


def test_records_loader_reads_the_synthetic_dataset(dataset, table):
    records = load_records(dataset, use_cache=False)
    assert len(records) == 5000
    assert sorted(records.ids.tolist()) == sorted(table.processid)
    train = records.filter(records.column("split") == "train")
    assert len(train) == int((table.split == "train").sum())
    species = records.label_map("species")
    assert set(species.names) == set(table.species[table.species != ""])
    assert (records.labels("species")[records.column("split") == "pretrain"] == -1).all()
    assert (records.labels("species")[records.column("split") == "train"] >= 0).all()


def _features(image: Image.Image) -> np.ndarray:
    """Colour histogram of the animal's pixels (those clearly off the pale background)."""
    pixels = np.asarray(image, dtype=np.float32).reshape(-1, 3)
    animal = pixels[np.abs(pixels - np.median(pixels, axis=0)).sum(axis=1) > 60]
    histogram, _ = np.histogramdd(animal, bins=4, range=[(0, 256)] * 3)
    return (histogram / max(1, len(animal))).ravel()


@pytest.mark.slow
def test_photos_inherit_looks_down_the_tree():
    specimens = sample_specimens(3000, seed=0)
    appearance = Appearance(specimens.taxonomy, seed=0)
    taxonomy = specimens.taxonomy
    rng = np.random.default_rng(0)
    records = rng.choice(len(specimens), 240, replace=False)
    species = specimens.species[records]
    features = np.array(
        [_features(render_specimen(appearance, int(s), int(r))) for s, r in zip(species, records)]
    )
    i, j = np.triu_indices(len(records), 1)
    distance = np.abs(features[i] - features[j]).sum(axis=1)
    genus, family = taxonomy.species_genus[species], taxonomy.species_family[species]
    same_species = species[i] == species[j]
    same_genus = (genus[i] == genus[j]) & ~same_species
    other_family = family[i] != family[j]
    assert same_species.sum() > 30 and same_genus.sum() > 10
    assert distance[same_species].mean() < distance[same_genus].mean() < distance[other_family].mean()


@pytest.mark.parametrize(
    ("package", "size"), [("original_256", (341, 256)), ("original_full", (1024, 768)), ("cropped", None)]
)
def test_other_image_packages_have_their_sizes(package, size):
    specimens = sample_specimens(200, seed=0)
    appearance = Appearance(specimens.taxonomy, seed=0)
    frames = appearance.frames(specimens.species[:3], np.arange(3))
    for record in range(3):
        image = render_specimen(appearance, int(specimens.species[record]), record, package)
        expected = size or (round(frames.crop_width[record]), round(frames.crop_height[record]))
        assert image.size == expected


def test_interrupted_writes_leave_no_files(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "CHUNK_RECORDS", 100)
    calls = {"n": 0}
    original_lines = writer_module._Formatter.lines

    def failing_lines(self, rows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original_lines(self, rows)

    monkeypatch.setattr(writer_module._Formatter, "lines", failing_lines)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_dataset(tmp_path, 500, images=False)
    assert not any(path.is_file() for path in tmp_path.rglob("*"))

    monkeypatch.setattr(writer_module._Formatter, "lines", original_lines)
    original_render = render_module.render_specimen

    def failing_render(appearance, species, record, package="cropped_256"):
        if record == 50:
            raise KeyboardInterrupt
        return original_render(appearance, species, record, package)

    monkeypatch.setattr(writer_module, "render_specimen", failing_render)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_dataset(tmp_path, 120, images=True)
    # never a metadata CSV without its images: both are renamed into place only when both are complete
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(BioscanError, match="at least 1"):
        write_synthetic_dataset(tmp_path, 0)
    with pytest.raises(BioscanError, match="unknown image package 'jpeg_1024'"):
        write_synthetic_dataset(tmp_path, 10, image_package="jpeg_1024")


def test_cli_writes_a_dataset_and_reports_splits(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--records", "1200", "--no-images", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 1,200 records to {out / METADATA_CSV}" in printed
    table = _read(out)
    for split in SPLITS:
        assert f"{split} {int((table.split == split).sum()):,}" in printed
    assert not (out / "BIOSCAN_5M_cropped_256.zip").exists()
    assert main(["synth", "--out", str(out), "--records", "-5"]) == 2
    assert "at least 1" in capsys.readouterr().err
