"""load_records: the Parquet cache (reuse, invalidation, split/column reads), label maps and the Records API."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_readers import UNSEEN, V5_SAMPLE, write_bioscan_csv

from bioscan5m.data import cache as cache_module
from bioscan5m.data.cache import CACHE_ENV, RecordCache
from bioscan5m.data.records import LabelMap, load_records
from bioscan5m.data.schema import COLUMN_NAMES, SEEN_SPLITS, SPLITS, TARGET_RANKS, parse_splits
from bioscan5m.errors import BioscanError


@pytest.fixture
def bioscan_csv(vendored_data, tmp_path) -> Path:
    return write_bioscan_csv(vendored_data, tmp_path / "metadata.csv")


@pytest.fixture
def builds(monkeypatch, tmp_path) -> list[Path]:
    """Records every cache build (its file path), in an empty cache root of this test."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-root"))
    built: list[Path] = []
    original = RecordCache.build

    def counting_build(self, batches):
        built.append(self.path)
        return original(self, batches)

    monkeypatch.setattr(RecordCache, "build", counting_build)
    return built


def test_cache_goes_to_the_cache_root_and_is_reused(bioscan_csv, builds, tmp_path):
    first = load_records(bioscan_csv)
    assert first.cache_path.parent == tmp_path / "cache-root" / "records"
    assert first.cache_path.name.startswith("metadata.csv.") and first.cache_path.suffix == ".parquet"
    assert sorted(os.listdir(bioscan_csv.parent)) == ["cache-root", "metadata.csv"]  # nothing beside the source
    assert builds == [first.cache_path]
    inode = first.cache_path.stat().st_ino
    second = load_records(bioscan_csv, split="train")
    assert builds == [first.cache_path]  # not rebuilt
    assert first.cache_path.stat().st_ino == inode
    assert len(second) == 125


def test_cache_is_rebuilt_when_the_source_changes(bioscan_csv, builds):
    assert len(load_records(bioscan_csv)) == 999
    lines = bioscan_csv.read_text().splitlines(keepends=True)
    bioscan_csv.write_text("".join(lines[:-10]))
    assert len(load_records(bioscan_csv)) == 989
    assert len(builds) == 2
    # Same bytes, new modification time: the content is what counts, so no rebuild.
    os.utime(bioscan_csv, ns=(1_000_000_000, 1_000_000_000))
    load_records(bioscan_csv)
    assert len(builds) == 2


def test_a_copy_with_the_same_bytes_shares_the_cache(bioscan_csv, builds, tmp_path):
    first = load_records(bioscan_csv)
    copy = tmp_path / "elsewhere" / bioscan_csv.name  # another folder, another inode and times, same bytes
    copy.parent.mkdir()
    shutil.copyfile(bioscan_csv, copy)
    again = load_records(copy, split="val")
    assert builds == [first.cache_path] and again.cache_path == first.cache_path  # keyed by content, not path
    assert again.source == copy and len(again) == 125


def test_edit_in_place_keeping_size_and_mtime_rebuilds(bioscan_csv, builds):
    before = load_records(bioscan_csv, columns=["species"])
    info = bioscan_csv.stat()
    data = bioscan_csv.read_bytes()
    old_id = str(before.ids[0])
    new_id = old_id[::-1]  # same length: the file keeps its size
    assert new_id != old_id and data.count(old_id.encode()) == 1
    with open(bioscan_csv, "r+b") as handle:  # in place: same inode
        handle.write(data.replace(old_id.encode(), new_id.encode()))
    os.utime(bioscan_csv, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert bioscan_csv.stat().st_size == info.st_size and bioscan_csv.stat().st_mtime_ns == info.st_mtime_ns
    after = load_records(bioscan_csv, columns=["species"])
    assert len(builds) == 2 and after.cache_path != before.cache_path
    assert new_id in set(after.ids) and old_id not in set(after.ids)


def test_unreadable_cache_is_rebuilt(bioscan_csv, builds):
    path = load_records(bioscan_csv).cache_path
    path.write_bytes(b"not parquet")
    assert len(load_records(bioscan_csv, split="val")) == 125
    assert len(builds) == 2
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated: no footer
    assert len(load_records(bioscan_csv, split="val")) == 125
    assert len(builds) == 3


def test_cache_damaged_inside_is_rebuilt(bioscan_csv, builds):
    path = load_records(bioscan_csv).cache_path
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8  # keep the footer: only the column data is damaged
    for position in range(100, len(data) - footer, 97):
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))
    records = load_records(bioscan_csv, split="val")
    assert len(records) == 125 and len(builds) == 2
    assert records.table.equals(load_records(bioscan_csv, split="val", use_cache=False).table)


def test_split_and_column_opens_match_the_full_table(bioscan_csv, monkeypatch, builds):
    monkeypatch.setattr(cache_module, "ROW_GROUP_ROWS", 40)  # several row groups per split
    opened = load_records(bioscan_csv)
    full = opened.table
    for spec in ["train", "val_unseen", "seen", "unseen", "train+val", "all", ["test", "pretrain"]]:
        splits = parse_splits(spec)
        expected = full.filter(pc.is_in(full.column("split").cast(pa.string()), pa.array(splits)))
        got = load_records(bioscan_csv, split=spec).table
        assert got.num_rows == expected.num_rows > 0
        assert got.equals(expected.cast(got.schema)) or got.to_pylist() == expected.to_pylist()
        subset = load_records(bioscan_csv, split=spec, columns=["species", "dna_barcode"]).table
        assert subset.column_names == ["processid", "species", "dna_barcode"]
        assert subset.to_pylist() == expected.select(["processid", "species", "dna_barcode"]).to_pylist()
    # Every row group holds one split only, so a one-split open reads that split's groups alone.
    handle = pq.ParquetFile(opened.cache_path)
    assert handle.num_row_groups > len(SPLITS)
    for group in range(handle.num_row_groups):
        assert len(set(handle.read_row_group(group, columns=["split"]).column("split").to_pylist())) == 1


def test_full_table_is_ordered_by_split_then_file_order(bioscan_csv):
    table = load_records(bioscan_csv).table
    splits = table.column("split").to_pylist()
    assert splits == sorted(splits, key=SPLITS.index)
    ids = load_records(bioscan_csv, split="train").ids.tolist()
    in_file = [line.split(",", 1)[0] for line in bioscan_csv.read_text().splitlines()[1:]]
    assert ids == [pid for i, pid in enumerate(in_file) if SPLITS[i % 8] == "train"]


def test_label_maps_are_identical_across_splits(bioscan_csv):
    full = load_records(bioscan_csv)
    for rank in TARGET_RANKS:
        names = sorted({name for name in full.column(rank) if name is not None})
        assert full.label_map(rank).names == tuple(names)
    for split in SPLITS:
        part = load_records(bioscan_csv, split=split, columns=["split"])
        for rank in TARGET_RANKS:
            assert part.label_map(rank) == full.label_map(rank)
    uncached = load_records(bioscan_csv, split="test", use_cache=False)
    assert uncached.label_map("species") == full.label_map("species")


def test_labels_round_trip_through_the_label_map(bioscan_csv):
    records = load_records(bioscan_csv, split="seen")
    for rank in ("species", "genus", "dna_bin"):
        codes = records.labels(rank)
        names = records.column(rank)
        assert codes.dtype == np.int64 and codes.shape == (len(records),)
        assert ((codes == -1) == np.array([name is None for name in names])).all()
        assert records.label_map(rank).decode(codes) == names.tolist()
    species = records.label_map("species")
    assert species.encode([species.names[3], None, "Not a species"]).tolist() == [3, -1, -1]


def test_label_map_decode_rejects_out_of_range():
    label_map = LabelMap("genus", ["Aedes", "Culex"])
    assert label_map.decode([1, -1, 0]) == ["Culex", None, "Aedes"]
    with pytest.raises(BioscanError, match="genus index 2 is outside 0..1"):
        label_map.decode([2])


def test_uncached_read_matches_cached(bioscan_csv):
    cached = load_records(bioscan_csv, split="unseen", columns=["genus", "coord-lat"])
    uncached = load_records(bioscan_csv, split="unseen", columns=["genus", "coord-lat"], use_cache=False)
    assert uncached.cache_path is None
    assert cached.table.to_pylist() == uncached.table.to_pylist()


def test_read_only_vendored_data_caches_in_the_cache_root(vendored_data, tmp_path, monkeypatch, builds):
    # The real data directory has no write bits (even root must not write there).
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    before = sorted(os.listdir(vendored_data / "barcodebert_unseen"))
    records = load_records(vendored_data / UNSEEN)
    assert records.cache_path.parent == tmp_path / "env-cache" / "records"
    assert records.cache_path.name.startswith("unseen_every10th.tsv.gz.")
    assert sorted(os.listdir(vendored_data / "barcodebert_unseen")) == before
    assert len(records) == 428 and len(records.label_map("species")) == 371
    load_records(vendored_data / UNSEEN)
    assert len(builds) == 1
    explicit = load_records(vendored_data / UNSEEN, cache_dir=tmp_path / "mine")
    assert explicit.cache_path.parent == tmp_path / "mine" / "records"


def test_reader_options_get_their_own_cache(vendored_data, tmp_path):
    coi = load_records(vendored_data / V5_SAMPLE, cache_dir=tmp_path)
    every = load_records(vendored_data / V5_SAMPLE, cache_dir=tmp_path, marker=None)
    assert coi.cache_path != every.cache_path
    assert len(every) == 999 and len(coi) <= len(every)


def test_dataset_root_directory(bioscan_csv, tmp_path):
    metadata = tmp_path / "root" / "bioscan5m" / "metadata" / "csv" / "BIOSCAN_5M_Insect_Dataset_metadata.csv"
    metadata.parent.mkdir(parents=True)
    shutil.copy(bioscan_csv, metadata)
    records = load_records(tmp_path / "root", split="val")
    assert records.source == metadata and len(records) == 125
    with pytest.raises(BioscanError, match="no BIOSCAN-5M metadata in this directory"):
        load_records(tmp_path)


def test_bad_arguments_are_clear_errors(bioscan_csv, vendored_data, tmp_path):
    with pytest.raises(BioscanError, match="unknown split 'training'") as info:
        load_records(bioscan_csv, split="train+training")
    assert info.value.value == "training"
    with pytest.raises(BioscanError, match="unknown column 'speceis'"):
        load_records(bioscan_csv, columns=["speceis"])
    records = load_records(bioscan_csv, columns=["genus"])
    with pytest.raises(BioscanError, match="column 'species' was not loaded"):
        records.labels("species")
    with pytest.raises(BioscanError, match="unknown rank 'kingdom'"):
        records.label_map("kingdom")
    with pytest.raises(BioscanError, match="no BIOSCAN-5M split assignments"):
        load_records(vendored_data / UNSEEN, split="train", cache_dir=tmp_path)
    with pytest.raises(BioscanError, match="no such file or directory"):
        load_records(tmp_path / "missing.csv")


def test_records_api(bioscan_csv):
    records = load_records(bioscan_csv, split=SEEN_SPLITS)
    assert len(records) == 375 and records.table.column_names == list(COLUMN_NAMES)
    assert records.ids.dtype == object and records.ids[0] == records.table.column("processid")[0].as_py()
    lat = records.column("coord-lat")
    assert lat.dtype == np.float64 and np.isfinite(lat).all()
    barcodes = records.barcodes()
    assert all(len(seq) <= 660 and "-" not in seq for seq in barcodes)
    assert records.barcodes(clean=False)[0] == records.table.column("dna_barcode")[0].as_py()
    assert records.barcodes(max_length=100)[0] == barcodes[0][:100].rstrip("N")
    frame = records.to_pandas()
    assert frame.shape == (375, 23) and str(frame["species"].dtype) == "category"
    train = records.filter(records.column("split") == "train")
    assert len(train) == 125 and train.label_map("genus") == records.label_map("genus")
    with pytest.raises(BioscanError, match="the mask has 3 values for 375 records"):
        records.filter([True, False, True])


def test_barcode_error_names_the_record(tmp_path):
    path = tmp_path / "reads.tsv"
    path.write_text("processid\tnucleotides\nP1\tACGT\nP2\tACXT\n")
    records = load_records(path, cache_dir=tmp_path)
    with pytest.raises(BioscanError, match="record P2: 'X' in its barcode is not a DNA letter"):
        records.barcodes()


def test_cache_footer_holds_key_and_label_maps(bioscan_csv):
    records = load_records(bioscan_csv)
    footer = pq.ParquetFile(records.cache_path).metadata.metadata
    meta = json.loads(footer[b"bioscan5m.cache"])
    assert meta["key"]["source"] == {"size": bioscan_csv.stat().st_size,
                                     "sha256": hashlib.sha256(bioscan_csv.read_bytes()).hexdigest()}
    assert meta["rows"] == 999 and {split: layout[2] for split, layout in meta["splits"].items()} == {
        split: 125 - (split not in SPLITS[:7]) for split in SPLITS}
    labels = json.loads(footer[b"bioscan5m.label_maps"])
    assert tuple(labels["dna_bin"]) == records.label_map("dna_bin").names
