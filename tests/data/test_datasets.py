"""BIOSCAN5M and RecordsDataset over a tiny BIOSCAN-layout directory built from real crops and barcodes."""

from __future__ import annotations

import csv
import gzip
import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bioscan5m.data.datasets import BIOSCAN5M, RecordsDataset, index_dtype, one_record_per_barcode
from bioscan5m.data.images import IMAGES_SUBDIR, ImageStore, image_path
from bioscan5m.data.records import load_records
from bioscan5m.data.schema import COLUMN_NAMES, SPLITS
from bioscan5m.data.transforms import image_transform
from bioscan5m.errors import BioscanError

METADATA = "bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv"
BOLD_SAMPLE = "bold_public_datapackage_samples/BOLD_Public.18-Dec-2023.sample999.tsv"
VENDORED_BOLD_SAMPLE = "bold_v5/BOLD_Public.18-Dec-2023.sample999.tsv.gz"  # the same file, in tests/fixtures

# (split, chunk, genus, species); barcodes are assigned below.
ROWS = [
    ("train", "0", "Aedes", "Aedes alpha"), ("train", "0", "Aedes", "Aedes alpha"),
    ("train", "1", "Bembix", "Bembix beta"), ("train", "1", "Bembix", "Bembix beta"),
    ("train", "2", "Culex", "Culex gamma"), ("train", "2", "Culex", None),
    ("val", None, "Aedes", "Aedes alpha"), ("val", None, "Bembix", "Bembix beta"), ("val", None, "Culex", "Culex gamma"),
    ("test", None, "Aedes", "Aedes alpha"), ("test", None, "Culex", "Culex gamma"), ("test", None, "Dasyhelea", "Dasyhelea delta"),
    ("pretrain", "00", "Aedes", None), ("pretrain", "00", None, None), ("pretrain", "01", "Culex", None), ("pretrain", "01", None, None),
    ("key_unseen", None, "Euura", "Euura epsilon"), ("key_unseen", None, "Forcipomyia", "Forcipomyia zeta"),
    ("other_heldout", "0", "Gnophomyia", "Gnophomyia sp1"), ("other_heldout", "0", "Gnophomyia", "Gnophomyia sp2"),
]
# Rows whose barcode repeats another row's once cleaned: row 1 = row 0 + trailing N, row 12 = row 0 in lower
# case with gaps, row 9 = row 6, row 15 = row 13 with leading N.
REPEATS = {1: 0, 12: 0, 9: 6, 15: 13}
LONG_ROW = 4  # its barcode is 700 bp: cut to 660 by default


def real_barcodes(vendored_data: Path, count: int) -> list[str]:
    """Distinct real COI-5P barcodes from the BOLD v5 sample (BIOSCAN-style AACTA records)."""
    seen: list[str] = []
    with gzip.open(vendored_data / VENDORED_BOLD_SAMPLE, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            seq = row["nucraw"]
            if row["marker_code"] == "COI-5P" and "N" not in seq and len(seq) >= 600 and seq not in seen:
                seen.append(seq)
            if len(seen) == count:
                return seen
    raise AssertionError("not enough barcodes in the sample")


def barcodes_for_rows(vendored_data: Path) -> list[str]:
    pool = iter(real_barcodes(vendored_data, len(ROWS)))
    barcodes = [next(pool) for _ in ROWS]
    barcodes[LONG_ROW] = (barcodes[LONG_ROW] * 2)[:700]
    for row, source in REPEATS.items():
        base = barcodes[source]
        barcodes[row] = {1: base + "NNN", 12: "-".join([base[:100].lower(), base[100:]]), 9: base,
                         15: "NN" + base}[row]
    return barcodes


def real_crops(vendored_data: Path, dest: Path, count: int) -> list[Path]:
    """``count`` different real specimen crops: the 10 vendored BIOSCAN-1M crops, then each of them turned
    upside down (new JPEGs in ``dest``), so that every row of the tiny dataset has its own pixels."""
    crops = sorted((vendored_data / "bioscan1m_crops").glob("*.jpg"))
    dest.mkdir(parents=True, exist_ok=True)
    for crop in crops[: count - len(crops)]:
        turned = dest / f"{crop.stem}-turned.jpg"
        with Image.open(crop) as image:
            image.transpose(Image.Transpose.ROTATE_180).save(turned, quality=95)
        crops.append(turned)
    assert len(crops) == count
    return crops


def write_tiny_bioscan(root: Path, vendored_data: Path) -> dict[str, Path]:
    """A BIOSCAN-5M directory: metadata CSV (23 columns) + cropped_256 zips of real crops, official layout.

    Returns {processid: image file used}. Barcodes are real BOLD sequences; taxonomy is made up.
    """
    crops = real_crops(vendored_data, root.with_name(f"{root.name}-crops"), len(ROWS))
    barcodes = barcodes_for_rows(vendored_data)
    csv_path = root / METADATA
    csv_path.parent.mkdir(parents=True)
    zips = {part: zipfile.ZipFile(root / f"BIOSCAN_5M_cropped_256_{part}.zip", "w")
            for part in ("train", "eval", "pretrain.01")}
    files = {}
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMN_NAMES)
        for i, ((split, chunk, genus, species), crop, barcode) in enumerate(zip(ROWS, crops, barcodes)):
            pid = crop.name.split(".")[0]
            files[pid] = crop
            taxon = species or genus or "Diptera"
            row = {
                "processid": pid, "sampleid": f"S{i:03d}", "taxon": taxon, "phylum": "Arthropoda",
                "class": "Insecta", "order": "Diptera", "family": "Culicidae" if genus else "", "subfamily": "",
                "genus": genus or "", "species": species or "", "dna_bin": f"BOLD:AAA{i % 7:04d}",
                "dna_barcode": barcode, "country": "Canada" if i % 3 else "Costa Rica", "province_state": "",
                "coord-lat": f"{43 + i / 10:.2f}" if i % 4 else "", "coord-lon": "-80.5",
                "image_measurement_value": str(1000 + i), "area_fraction": "0.5", "scale_factor": "1.0",
                "inferred_ranks": "7" if species else "6", "split": split,
                "index_bioscan_1M_insect": str(100 + i) if i % 2 else "", "chunk": chunk or "",
            }
            writer.writerow([row[name] for name in COLUMN_NAMES])
            part = {"train": "train", "pretrain": "pretrain.01"}.get(split, "eval")
            zips[part].write(crop, f"{IMAGES_SUBDIR}/cropped_256/{image_path(split, chunk, pid)}")
    for archive in zips.values():
        archive.close()
    return files


@pytest.fixture(scope="module")
def tiny(vendored_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("bioscan")
    files = write_tiny_bioscan(root, vendored_data)
    return root, files


def ids_of(rows: list[int], files: dict[str, Path]) -> list[str]:
    pids = list(files)
    return [pids[i] for i in rows]


def rows_in(*splits: str) -> list[int]:
    return [i for i, row in enumerate(ROWS) if row[0] in splits]


def test_tuple_output_image_dna_species_index(tiny, vendored_data):
    root, files = tiny
    dataset = BIOSCAN5M(root, split="train")
    assert len(dataset) == 6
    image, dna, target = dataset[0]
    pid = ids_of([0], files)[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), np.asarray(Image.open(files[pid]).convert("RGB")))
    assert dna == barcodes_for_rows(vendored_data)[0]
    assert target == dataset.label2index("Aedes alpha")
    assert type(target) is np.int8 and len(dataset.label_map("species")) < 127  # pandas' code dtype
    assert dataset.index2label(target) == "Aedes alpha"
    assert dataset[5][2] == -1  # no species
    assert len(dataset[LONG_ROW][1]) == 660
    assert dataset[-1][2] == dataset[5][2]
    with pytest.raises(IndexError):
        dataset[6]


def test_dict_output_text_and_multiple_targets(tiny):
    root, _ = tiny
    dataset = BIOSCAN5M(root, split="test", modality=("dna", "coord-lat", "country", "index_bioscan_1M_insect"),
                        target_type=["genus", "species"], target_format="text", output_format="dict")
    sample = dataset[2]
    assert set(sample) == {"dna", "coord-lat", "country", "index_bioscan_1M_insect", "genus", "genus_index",
                           "species", "species_index", "target"}
    assert sample["target"] == ("Dasyhelea", "Dasyhelea delta")
    assert sample["species"] == "Dasyhelea delta"
    assert sample["species_index"] == dataset.label2index("Dasyhelea delta", "species")
    assert sample["coord-lat"] == pytest.approx(44.1)
    assert sample["country"] == "Canada"
    assert sample["index_bioscan_1M_insect"] == 111
    assert dataset[1]["index_bioscan_1M_insect"] == -1  # row 10 has no BIOSCAN-1M index
    pretrain = BIOSCAN5M(root, split="pretrain", modality=["coord-lat", "family"], target_type=[])
    assert np.isnan(pretrain[0][0]) and pretrain[0][1] == "Culicidae"  # row 12: no latitude
    assert isinstance(pretrain[1][1], float) and math.isnan(pretrain[1][1])  # row 13: no family
    indexed = BIOSCAN5M(root, split="test", modality="dna", target_type=["genus", "species"])
    assert indexed[2][1] == (indexed.label2index("Dasyhelea", "genus"), indexed.label2index("Dasyhelea delta", "species"))


def test_text_target_missing_is_nan_and_no_target_is_none(tiny, vendored_data):
    root, _ = tiny
    text = BIOSCAN5M(root, split="pretrain", modality="dna", target_type="species", target_format="text")
    assert all(isinstance(text[i][1], float) and math.isnan(text[i][1]) for i in range(len(text)))
    none = BIOSCAN5M(root, split="pretrain", modality=["dna"], target_type=[])
    assert none[0][1] is None
    transformed = BIOSCAN5M(root, split="val", modality="dna", target_type="genus", target_transform=lambda t: t + 100,
                            dna_transform=len)
    assert transformed[0] == (len(barcodes_for_rows(vendored_data)[6]), transformed.label2index("Aedes") + 100)


def test_split_combinations_and_labels_stable_across_splits(tiny):
    root, files = tiny
    expected = {"train+val": rows_in("train", "val"), "seen": rows_in("train", "val", "test"),
                "unseen": rows_in("key_unseen"), "all": list(range(len(ROWS))), "validation": rows_in("val"),
                "pretrain+train": rows_in("pretrain", "train"), ("test", "val+key_unseen"): rows_in("val", "test", "key_unseen")}
    for split, rows in expected.items():
        dataset = BIOSCAN5M(root, split=split, modality="processid", target_type="species")
        assert sorted(dataset[i][0] for i in range(len(dataset))) == sorted(ids_of(rows, files)), split
    train = BIOSCAN5M(root, split="train", modality="dna")
    test = BIOSCAN5M(root, split="test", modality="dna")
    unseen = BIOSCAN5M(root, split="key_unseen", modality="dna")
    for name in ("Aedes alpha", "Culex gamma", "Dasyhelea delta", "Euura epsilon"):
        assert train.label2index(name) == test.label2index(name) == unseen.label2index(name) >= 0
    assert train.index2label([train.label2index("Culex gamma"), -1]).tolist() == ["Culex gamma", ""]
    assert train.label2index(["Aedes alpha", "", None]).tolist() == [train.label2index("Aedes alpha"), -1, -1]
    with pytest.raises(BioscanError, match="label 'Nope nope' not found at rank 'species'"):
        train.label2index("Nope nope")
    with pytest.raises(BioscanError, match="unknown split 'training'"):
        BIOSCAN5M(root, split="training")


def authors_reduce_repeated_barcodes(csv_path: Path, split: str, max_nucleotides: int = 660) -> list[str]:
    """bioscan-dataset's ``load_bioscan5m_metadata(reduce_repeated_barcodes=True, split=...)``, the steps that
    decide which records survive, written out with pandas."""
    df = pd.read_csv(csv_path, dtype=str)
    df["dna_barcode"] = df["dna_barcode"].str[:max_nucleotides]
    df = df.sample(frac=1, random_state=0)
    df["dna_barcode_strip"] = df["dna_barcode"].str.rstrip("N")
    df = df.drop_duplicates(subset=["dna_barcode_strip"]).sort_index()
    if split != "all":
        df = df.loc[df["split"].isin(split.split("+"))]
    return df["processid"].tolist()


def test_reduce_repeated_barcodes_keeps_the_authors_records(tiny, monkeypatch):
    root, _ = tiny
    everything = BIOSCAN5M(root, split="all", modality="processid", reduce_repeated_barcodes=True)
    expected = authors_reduce_repeated_barcodes(root / METADATA, "all")
    # Rows 1 (trailing Ns) and 9 (identical) repeat a barcode; rows 12 (a gap, lower case) and 15 (leading Ns)
    # differ as raw strings, and the authors' rule keeps them.
    assert len(expected) == len(ROWS) - 2
    assert sorted(everything[i][0] for i in range(len(everything))) == sorted(expected)
    for split in ("train", "val+test", "pretrain"):
        part = BIOSCAN5M(root, split=split, modality=["processid", "dna"], reduce_repeated_barcodes=True)
        assert sorted(part[i][0] for i in range(len(part))) == sorted(
            authors_reduce_repeated_barcodes(root / METADATA, split)), split
    assert "reduce_repeated_barcodes: True" in repr(everything)
    # The answer is kept in the cache folder: the next dataset does not read the file again.
    from bioscan5m.data import readers

    monkeypatch.setattr(readers, "read_batches", lambda *a, **k: pytest.fail("metadata read again"))
    again = BIOSCAN5M(root, split="train", modality="processid", reduce_repeated_barcodes=True)
    assert sorted(again[i][0] for i in range(len(again))) == sorted(
        authors_reduce_repeated_barcodes(root / METADATA, "train"))


def test_reduce_repeated_barcodes_matches_the_authors_on_a_synthetic_dataset(tmp_path):
    from bioscan5m.data.synthetic import write_synthetic_dataset

    root = write_synthetic_dataset(tmp_path / "synth", 3000, images=False, seed=4)
    for split in ("pretrain", "train+val", "all"):
        ours = BIOSCAN5M(root, split=split, modality="processid", reduce_repeated_barcodes=True)
        expected = authors_reduce_repeated_barcodes(root / METADATA, split)
        assert len(expected) < len(BIOSCAN5M(root, split=split, modality="processid")), split  # repeats exist
        assert sorted(ours[i][0] for i in range(len(ours))) == sorted(expected), split


def test_one_record_per_barcode_keeps_records_without_barcode():
    mask = one_record_per_barcode(["ACGT", "", "ACGT", "", "TTTT"])
    assert mask.tolist().count(True) == 4 and mask[1] and mask[3] and mask[4]
    assert mask[0] != mask[2]


def test_max_nucleotides(tiny, vendored_data):
    root, _ = tiny
    full = BIOSCAN5M(root, split="train", modality="dna", max_nucleotides=None)
    assert len(full[LONG_ROW][0]) == 700
    short = BIOSCAN5M(root, split="train", modality="dna", max_nucleotides=100)
    assert short[0][0] == barcodes_for_rows(vendored_data)[0][:100]
    assert "max_nucleotides: 100" in repr(short)


def test_metadata_frame_and_repr(tiny):
    root, files = tiny
    dataset = BIOSCAN5M(root, split="train+val", target_type="genus")
    frame = dataset.metadata
    assert len(frame) == 9
    assert {"processid", "species", "species_index", "genus_index", "dna_bin_index", "image_path"} <= set(frame.columns)
    assert frame["image_path"].iloc[0] == f"train/0/{ids_of([0], files)[0]}.jpg"
    assert frame["image_path"].iloc[6] == f"val/{ids_of([6], files)[0]}.jpg"  # no chunk folder
    assert dataset[6][0].size == Image.open(files[ids_of([6], files)[0]]).size
    assert frame["genus_index"].tolist()[:2] == [dataset.label2index("Aedes")] * 2
    # As the authors' frame: categories are the whole file's sorted names, codes are the index columns.
    assert list(frame["species"].cat.categories) == list(dataset.label_map("species").names)
    assert "Euura epsilon" in frame["species"].cat.categories  # a key_unseen name, not in train+val
    assert frame["species"].cat.codes.tolist() == frame["species_index"].tolist()
    assert frame["species_index"].dtype == np.int8 and frame["dna_barcode"].str.len().max() == 660
    text = repr(dataset)
    assert text.splitlines()[:3] == ["Dataset BIOSCAN5M", "    Number of datapoints: 9", f"    Root location: {root}"]
    assert "    split: 'train+val'" in text and "    image_package: 'cropped_256'" in text
    assert "    target_type: ['genus']" in text


def test_transforms_and_dataloader_with_two_workers_over_zips(tiny):
    root, files = tiny
    dataset = BIOSCAN5M(root, split="all", transform=image_transform(64, train=True),
                        modality=("image", "dna", "processid"))
    species = dict(zip(dataset.records.ids, dataset.records.column("species")))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    seen = []
    for images, barcodes, pids, targets in loader:
        assert images.shape[1:] == (3, 64, 64) and images.dtype == torch.float32
        assert torch.isfinite(images).all()
        assert targets.dtype == torch.int8  # as the authors' int8 codes collate; .long() for a loss
        for pid, index in zip(pids, targets.tolist()):
            assert index == dataset.label2index(species[pid])
            seen.append(pid)
    assert sorted(seen) == sorted(files)


def test_argument_errors(tiny, tmp_path):
    root, _ = tiny
    with pytest.raises(BioscanError, match="unknown rank 'genera'"):
        BIOSCAN5M(root, target_type="genera")
    with pytest.raises(BioscanError, match="unknown modality 'colour'"):
        BIOSCAN5M(root, modality=("dna", "colour"))
    with pytest.raises(BioscanError, match="unknown target_format 'name'"):
        BIOSCAN5M(root, target_format="name")
    with pytest.raises(BioscanError, match="unknown output_format 'list'"):
        BIOSCAN5M(root, output_format="list")
    with pytest.raises(BioscanError, match="target_transform is given but target_type is empty"):
        BIOSCAN5M(root, modality="dna", target_type=[], target_transform=str)
    with pytest.raises(BioscanError, match="unknown image package 'cropped_128'"):
        BIOSCAN5M(root, image_package="cropped_128")
    with pytest.raises(BioscanError, match="metadata not found.*download=True"):
        BIOSCAN5M(tmp_path)
    with pytest.raises(BioscanError, match="no original_256 images found"):
        BIOSCAN5M(root, image_package="original_256")
    assert len(BIOSCAN5M(root, image_package="original_256", modality="dna")) == 6  # no images needed
    with pytest.raises(BioscanError, match="exactly one target_type"):
        BIOSCAN5M(root, modality="dna", target_type=["genus", "species"]).index2label(0)


def test_download_is_called_for_what_is_needed(tiny, tmp_path, monkeypatch, vendored_data):
    from bioscan5m.data import download

    calls = []

    def fake_download(root, what, image_package, splits):
        calls.append((what, image_package, splits))
        if not (Path(root) / METADATA).exists():
            write_tiny_bioscan(Path(root), vendored_data)

    monkeypatch.setattr(download, "download_dataset", fake_download)
    dataset = BIOSCAN5M(tmp_path / "fresh", split="val+test", download=True)
    assert len(dataset) == 6
    assert calls == [(("metadata", "images"), "cropped_256", ("val", "test"))]
    BIOSCAN5M(tmp_path / "fresh", split="seen", modality="dna", download=True)
    assert calls[-1] == (("metadata",), "cropped_256", ("train", "val", "test"))


def test_records_dataset_over_real_bold_records_with_real_images(shared_data, tmp_path):
    """The three BOLD records that have BIOSCAN images: DNA and image from the same specimens."""
    records = load_records(shared_data / BOLD_SAMPLE)
    pids = ["AACTA1595-20", "AACTA1760-20", "AACTA1927-20"]
    chosen = records.filter(np.isin(records.ids, pids))
    assert len(chosen) == 3
    originals = shared_data / "bioscan_imgfilter_images" / "failed_crop_subset_originals"
    folder = tmp_path / IMAGES_SUBDIR / "original_full" / "somewhere"
    folder.mkdir(parents=True)
    for pid in pids:
        (folder / f"{pid}.jpg").write_bytes((originals / f"{pid}.1024px.jpg").read_bytes())
    store = ImageStore.open(tmp_path, "original_full")
    dataset = RecordsDataset(chosen, store, modality=("image", "dna", "processid"), target_type="order",
                             target_format="text", transform=image_transform(32))
    for i in range(3):
        image, dna, pid, order = dataset[i]
        assert image.shape == (3, 32, 32)
        assert pid in pids and order and set(dna) <= set("ACGTRYSWKMBDHVN")
    raw = {pid: seq for pid, seq in zip(chosen.ids, chosen.column("dna_barcode"))}
    assert dataset[0][1] == raw[dataset[0][2]].strip("N")[:660]


def test_records_dataset_over_whole_bold_sample(vendored_data):
    records = load_records(vendored_data / VENDORED_BOLD_SAMPLE)
    dataset = RecordsDataset(records, modality=["dna", "country"], target_type=["order", "genus"])
    assert len(dataset) == len(records)
    assert dataset[0][2] == tuple(int(records.labels(rank)[0]) for rank in ("order", "genus"))
    genus_known = int((records.labels("genus") >= 0).sum())
    assert sum(dataset[i][2][1] >= 0 for i in range(len(dataset))) == genus_known
    deduplicated = RecordsDataset(records, modality="dna", reduce_repeated_barcodes=True)
    distinct = {b for b in records.barcodes(clean=True) if b}
    without = sum(1 for b in records.barcodes(clean=True) if not b)
    assert len(deduplicated) == len(distinct) + without
    with pytest.raises(BioscanError, match="needs an image store"):
        RecordsDataset(records, modality="image")
    assert f"Source: {records.source}" in repr(dataset)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from bioscan5m.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), records=150, seed=3)


def test_synthetic_dataset_every_split_image_and_label(synthetic):
    """Against the generated CSV and zip read independently (csv module, zipfile + PIL)."""
    with open(synthetic / METADATA, newline="", encoding="utf-8") as handle:
        rows = {row["processid"]: row for row in csv.DictReader(handle)}
    archive = zipfile.ZipFile(synthetic / "BIOSCAN_5M_cropped_256.zip")
    total = 0
    for split in SPLITS:
        wanted = [pid for pid, row in rows.items() if row["split"] == split]
        if not wanted:
            with pytest.raises(IndexError):
                BIOSCAN5M(synthetic, split=split, modality="dna")[0]
            continue
        dataset = BIOSCAN5M(synthetic, split=split, modality=("image", "dna", "processid"),
                            target_type=["genus", "species"], output_format="dict")
        assert len(dataset) == len(wanted)
        total += len(dataset)
        for i in range(len(dataset)):
            sample = dataset[i]
            row = rows[sample["processid"]]
            member = f"{IMAGES_SUBDIR}/cropped_256/{image_path(split, row['chunk'], row['processid'])}"
            with archive.open(member) as stored, Image.open(stored) as direct:
                assert sample["image"].mode == direct.mode
                np.testing.assert_array_equal(np.asarray(sample["image"]), np.asarray(direct))
            assert sample["dna"] == row["dna_barcode"][:660]
            for rank in ("species", "genus"):
                assert sample[rank] == row[rank] if row[rank] else math.isnan(sample[rank])
            assert dataset.index2label(sample["species_index"], "species") == row["species"]
    assert total == len(rows) == 150
    species = {row["species"] for row in rows.values() if row["species"]}
    assert len(dataset.label_map("species")) == len(species)


# --- the authors' item semantics (bioscan-dataset 1.3.0), checked without their package ----------------
# tests/data/test_datasets_compat.py compares with their class itself, in a side environment.


def test_index_dtype_is_the_dtype_pandas_gives_category_codes():
    for count in (0, 1, 126, 127, 128, 32766, 32767, 32768):
        codes = pd.Categorical([], categories=[f"c{i}" for i in range(count)]).codes
        assert index_dtype(count) == codes.dtype, count
    assert index_dtype(2**31 - 2) == np.int32 and index_dtype(2**31) == np.int64


def raw_barcodes(root: Path) -> dict[str, str]:
    with open(root / METADATA, newline="", encoding="utf-8") as handle:
        return {row["processid"]: row["dna_barcode"] for row in csv.DictReader(handle)}


def test_barcodes_are_raw_cut_to_max_nucleotides_unless_cleaned(tiny):
    from bioscan5m.data.sequences import clean_barcode

    root, files = tiny
    raw = raw_barcodes(root)
    pids = list(files)
    for max_nucleotides in (100, 660, None):
        dataset = BIOSCAN5M(root, split="all", modality=["processid", "dna"], target_type=[],
                            max_nucleotides=max_nucleotides)
        got = {dataset[i][0]: dataset[i][1] for i in range(len(dataset))}
        assert got == {pid: seq[:max_nucleotides] for pid, seq in raw.items()}
    # Leading N, a gap and lower case, trailing N: kept as the file has them.
    assert got[pids[15]].startswith("NN") and "-" in got[pids[12]] and got[pids[12]][:5].islower()
    assert raw[pids[1]].endswith("NNN") and len(BIOSCAN5M(root, split="train", modality="dna")[LONG_ROW][0]) == 660
    cleaned = BIOSCAN5M(root, split="all", modality=["processid", "dna"], target_type=[], clean_barcodes=True)
    assert {cleaned[i][0]: cleaned[i][1] for i in range(len(cleaned))} == {
        pid: clean_barcode(seq, max_length=660) for pid, seq in raw.items()}
    assert cleaned[15][0] == pids[15] and cleaned[15][1] == raw[pids[15]].lstrip("N")[:660]
    assert "clean_barcodes: True" in repr(cleaned) and "clean_barcodes" not in repr(dataset)


def test_values_have_the_types_of_a_pandas_row(tiny):
    root, files = tiny
    dataset = BIOSCAN5M(root, split="val+test", output_format="dict", target_type=["genus", "dna_bin"],
                        modality=["dna", "coord-lat", "country", "chunk", "split", "species_index", "image_path"])
    first = dataset[0]  # row 6: val, no chunk folder
    assert list(first) == ["dna", "coord-lat", "country", "chunk", "split", "species_index", "image_path",
                           "genus", "genus_index", "dna_bin", "dna_bin_index", "target"]
    assert type(first["coord-lat"]) is np.float64 and first["coord-lat"] == pytest.approx(43.6)
    assert type(first["chunk"]) is float and math.isnan(first["chunk"])
    assert first["split"] == "val" and first["image_path"] == f"val/{list(files)[6]}.jpg"
    assert type(first["species_index"]) is np.int8 and type(first["genus_index"]) is np.int8
    assert first["target"] == (first["genus_index"], first["dna_bin_index"])
    assert all(type(value) is np.int8 for value in first["target"])
    assert math.isnan(dataset[2]["coord-lat"]) and type(dataset[2]["coord-lat"]) is np.float64  # row 8: none


def test_several_splits_come_in_file_order(synthetic, monkeypatch):
    with open(synthetic / METADATA, newline="", encoding="utf-8") as handle:
        rows = [(row["processid"], row["split"]) for row in csv.DictReader(handle)]
    assert len({split for _, split in rows[:20]}) > 2  # the file interleaves splits
    for split, wanted in (("all", set(SPLITS)), ("pretrain+train", {"pretrain", "train"}),
                          (["test", "val"], {"val", "test"}), ("unseen+other_heldout", {
                              "key_unseen", "val_unseen", "test_unseen", "other_heldout"})):
        dataset = BIOSCAN5M(synthetic, split=split, modality="processid", target_type=[])
        assert [dataset[i][0] for i in range(len(dataset))] == [pid for pid, s in rows if s in wanted], split
        assert list(dataset.records.ids) == [dataset[i][0] for i in range(len(dataset))]
    reduced = BIOSCAN5M(synthetic, split="seen+pretrain", modality="processid", reduce_repeated_barcodes=True)
    assert [reduced[i][0] for i in range(len(reduced))] == authors_reduce_repeated_barcodes(
        synthetic / METADATA, "train+val+test+pretrain")
    # The file's split order is read once and kept beside the record cache.
    from bioscan5m.data import readers

    monkeypatch.setattr(readers, "read_batches", lambda *a, **k: pytest.fail("metadata read again"))
    again = BIOSCAN5M(synthetic, split="all", modality="processid", target_type=[])
    assert [again[i][0] for i in range(len(again))] == [pid for pid, _ in rows]


def test_image_keeps_its_own_mode(synthetic, tmp_path):
    """A greyscale JPEG comes back greyscale, as PIL.Image.open gives it; the toolkit's transforms take it."""
    import shutil

    root = tmp_path / "grey"
    (root / METADATA).parent.mkdir(parents=True)
    shutil.copyfile(synthetic / METADATA, root / METADATA)
    with zipfile.ZipFile(synthetic / "BIOSCAN_5M_cropped_256.zip") as source, \
            zipfile.ZipFile(root / "BIOSCAN_5M_cropped_256.zip", "w") as target:
        members = [info for info in source.infolist() if info.filename.endswith(".jpg")]
        grey_member = members[0].filename
        for info in members:
            data = source.read(info)
            if info.filename == grey_member:
                buffer = io.BytesIO()
                Image.open(io.BytesIO(data)).convert("L").save(buffer, "JPEG")
                data = buffer.getvalue()
            target.writestr(info, data)
    grey_pid = grey_member.rsplit("/", 1)[1][: -len(".jpg")]
    dataset = BIOSCAN5M(root, split="all", modality=["image", "processid"], target_type=[])
    row = list(dataset.records.ids).index(grey_pid)
    image, pid, _ = dataset[row]
    assert pid == grey_pid and image.mode == "L" and np.asarray(image).ndim == 2
    assert dataset[(row + 1) % len(dataset)][0].mode == "RGB"
    assert image_transform(32)(image).shape == (3, 32, 32)
