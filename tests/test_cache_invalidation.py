"""Every cache is keyed by content: an input edited in place invalidates every cache derived from it, a
damaged cache file is rebuilt, and no command writes anything beside its inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bioscan5m.cli import main
from bioscan5m.data.dedup import kept_record_ids
from bioscan5m.data.records import load_records
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.embeddings.store import embeddings_cache_entry, extract_embeddings
from bioscan5m.peers.programs import write_fasta
from bioscan5m.tasks.cluster import ClusteringProtocol
from bioscan5m.tasks.identify import BarcodeIdentifier

pytestmark = pytest.mark.usefixtures("one_thread")

METADATA = Path("bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv")
FAST = {"n_simulated": 100, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A synthetic BIOSCAN-5M root of 600 records (no images): every command can read it."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), records=600, images=False, seed=3)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache-root"
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(folder))
    return folder


def entries(root: Path, kind: str) -> list[str]:
    folder = root / kind
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def edit_in_place(path: Path, record_id: str) -> str:
    """Change one letter of a record's barcode without changing the file's size, inode or modification time;
    returns the new barcode."""
    info = path.stat()
    data = path.read_bytes()
    line_start = data.index(f"\n{record_id},".encode()) + 1
    line = data[line_start:data.index(b"\n", line_start)].decode()
    barcode = line.split(",")[COLUMN_DNA]
    position = barcode.index("A")
    edited = barcode[:position] + "C" + barcode[position + 1:]
    start = line_start + line.index(barcode)
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(edited.encode())
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (info.st_size, info.st_ino, info.st_mtime_ns)
    return edited


def _dna_column() -> int:
    from bioscan5m.data.schema import COLUMN_NAMES

    return list(COLUMN_NAMES).index("dna_barcode")


COLUMN_DNA = _dna_column()


def test_an_input_edited_in_place_invalidates_every_cache_derived_from_it(synthetic, tmp_path, root):
    source = tmp_path / "data"
    (source / METADATA).parent.mkdir(parents=True)
    (source / METADATA).write_bytes((synthetic / METADATA).read_bytes())
    metadata = source / METADATA

    records = load_records(source)
    identifier = BarcodeIdentifier("kmer", **FAST).fit(metadata)
    embeddings = extract_embeddings(records, "kmer-profile-3", embeddings_cache_entry("kmer3", records),
                                    progress=False)
    kept = kept_record_ids(metadata, 660)
    assert [len(entries(root, kind)) for kind in ("records", "identify", "embeddings", "dedup")] == [1, 1, 1, 1]
    # Unchanged, everything is reused.
    again = load_records(source)
    assert again.cache_path == records.cache_path
    assert BarcodeIdentifier("kmer", **FAST).fit(metadata).from_cache_
    assert extract_embeddings(again, "kmer-profile-3", embeddings_cache_entry("kmer3", again),
                              progress=False).from_cache

    record_id = str(records.ids[5])
    edited = edit_in_place(metadata, record_id)

    changed = load_records(source)
    assert changed.cache_path != records.cache_path
    assert changed.barcodes(clean=False)[list(changed.ids).index(record_id)] == edited
    refitted = BarcodeIdentifier("kmer", **FAST).fit(metadata)
    assert not refitted.from_cache_ and refitted.cache_path_ != identifier.cache_path_
    assert edited.replace("-", "").rstrip("N") in set(refitted.reference_.sequences)
    recomputed = extract_embeddings(changed, "kmer-profile-3", embeddings_cache_entry("kmer3", changed),
                                    progress=False)
    assert not recomputed.from_cache and not np.array_equal(recomputed.vectors, embeddings.vectors)
    # The edit makes that barcode unique, so the authors' de-duplication now keeps one more record.
    rekept = kept_record_ids(metadata, 660).to_pylist()
    assert rekept != kept.to_pylist() and rekept == kept_record_ids(metadata, 660, tmp_path / "fresh").to_pylist()
    assert [len(entries(root, kind)) for kind in ("records", "identify", "embeddings", "dedup")] == [2, 2, 2, 2]


# --------------------------------------------------------------------------------------------- damage


def test_damaged_identify_index_is_rebuilt(synthetic, root):
    metadata = synthetic / METADATA
    first = BarcodeIdentifier("kmer", **FAST).fit(metadata)
    queries = load_records(synthetic, split="test").barcodes()[:5]
    expected = first.predict(queries)
    for damaged, content in (("kmer.faiss", b"not an index"), ("reference.safetensors", b"\x00" * 7),
                             ("config.json", b"{truncated"), ("kmer_pca.safetensors", b"")):
        (first.cache_path_ / damaged).write_bytes(content)
        rebuilt = BarcodeIdentifier("kmer", **FAST).fit(metadata)
        assert not rebuilt.from_cache_ and rebuilt.cache_path_ == first.cache_path_, damaged
        assert rebuilt.predict(queries).equals(expected)
        assert BarcodeIdentifier("kmer", **FAST).fit(metadata).from_cache_  # whole again
    assert entries(root, "identify") == [first.cache_path_.name]


def test_damaged_embeddings_are_recomputed(synthetic, root):
    records = load_records(synthetic, split="test")
    folder = embeddings_cache_entry("kmer3", records)
    first = extract_embeddings(records, "kmer-profile-3", folder, progress=False)
    vectors = folder / "embeddings.npy"
    data = vectors.read_bytes()
    for damaged in (data[: len(data) // 2], b"", b"\x93NUMPY garbage"):
        vectors.write_bytes(damaged)
        again = extract_embeddings(records, "kmer-profile-3", folder, progress=False)
        assert not again.from_cache and np.array_equal(again.vectors, first.vectors)
    (folder / "manifest.json").write_text("{")
    assert not extract_embeddings(records, "kmer-profile-3", folder, progress=False).from_cache


def test_damaged_reduced_vectors_are_computed_again(root):
    vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    protocol = ClusteringProtocol(reducer="pca", n_components=3)
    first = protocol.reduce(vectors, root / "reduced")
    [saved] = (root / "reduced").glob("*.npy")
    data = saved.read_bytes()
    for damaged in (data[:100], b"", b"garbage"):
        saved.write_bytes(damaged)
        assert np.allclose(protocol.reduce(vectors, root / "reduced"), first)
        assert saved.read_bytes() == data


def test_damaged_dedup_answer_is_computed_again(synthetic, root):
    metadata = synthetic / METADATA
    kept = kept_record_ids(metadata, 660).to_pylist()
    [saved] = (root / "dedup").iterdir()
    data = saved.read_bytes()
    for damaged in (data[: len(data) // 2], b"PAR1", b""):
        saved.write_bytes(damaged)
        assert kept_record_ids(metadata, 660).to_pylist() == kept
        assert len(saved.read_bytes()) == len(data)


# --------------------------------------------------------------------------------------------- beside inputs


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.slow
def test_no_file_appears_beside_any_input(synthetic, tmp_path, monkeypatch, capsys):
    import torch

    from bioscan5m.models.registry import create_dna_model

    inputs = tmp_path / "inputs"
    (inputs / "data" / METADATA).parent.mkdir(parents=True)
    (inputs / "data" / METADATA).write_bytes((synthetic / METADATA).read_bytes())
    data = inputs / "data"
    test = load_records(data, split="test", use_cache=False)
    write_fasta(inputs / "queries.fasta", list(test.ids[:8]), test.barcodes()[:8])
    torch.manual_seed(0)
    create_dna_model("4-2-2-tiny", k=4, hidden=16, intermediate=32, layers=1, heads=2).save_pretrained(
        inputs / "tiny-model")
    cache = tmp_path / "cache-root"
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the platform folder: must stay unused
    out = tmp_path / "out"
    commands = [
        ["stats", str(data), "--out", str(out / "stats")],
        ["stats", str(inputs / "queries.fasta")],
        ["identify", "--reference", str(data), "--queries", str(inputs / "queries.fasta"), "--method", "kmer",
         "--threads", "1", "--out", str(out / "identify.tsv")],
        ["embed", "--data", str(data), "--split", "test+test_unseen", "--encoder", "kmer-profile-3",
         "--out", str(out / "emb")],
        ["cluster", "--embeddings", str(out / "emb"), "--labels", str(data), "--out", str(out / "zsc"),
         "--reducer", "pca", "--dims", "4", "--clusterer", "kmeans", "--scatter-rank", "none"],
        ["probe", "knn", "--model", "kmer-profile-3", "--data", str(data), "--out", str(out / "probe")],
        ["probe", "linear", "--model", str(inputs / "tiny-model"), "--data", str(data), "--out",
         str(out / "probe"), "--epochs", "1", "--device", "cpu"],
        ["finetune", "--model", str(inputs / "tiny-model"), "--data", str(data), "--out", str(out / "ft"),
         "--steps", "2", "--batch-size", "8", "--device", "cpu"],
        ["pretrain", "--data", str(inputs / "queries.fasta"), "--model", "4-2-2-tiny", "--out", str(out / "pt"),
         "--steps", "1", "--batch-size", "4", "--device", "cpu"],
        ["benchmark", "zsc", "--data", str(data), "--encoders", "kmer-profile-3", "--out", str(out / "bzsc"),
         "--reducer", "pca", "--dims", "4", "--clusterer", "kmeans", "--scatter-rank", "none"],
    ]
    before = listing(inputs)
    for command in commands:
        assert main(command) == 0, (command, capsys.readouterr().err)
        assert listing(inputs) == before, command
    assert not (tmp_path / "xdg" / "bioscan5m").exists()  # (matplotlib keeps its own font cache there)
    for kind in ("records", "hashes", "identify", "embeddings", "reduced"):
        assert entries(cache, kind), kind
    # The report folders hold reports only: their caches went to the cache folder.
    assert not (out / "probe" / "embeddings").exists() and not (out / "zsc" / "reduced").exists()
    assert not (out / "bzsc" / "embeddings").exists()

    elsewhere = tmp_path / "asked"
    assert main(["stats", str(data), "--cache-dir", str(elsewhere)]) == 0
    assert entries(elsewhere, "records") and listing(inputs) == before


def test_zip_index_is_keyed_by_the_central_directory(tmp_path, root):
    import zipfile
    import zlib

    from bioscan5m.data.images import load_zip_index

    prefix = "bioscan5m/images/cropped_256/"
    zip_path = tmp_path / "BIOSCAN_5M_cropped_256.zip"

    def write(content: bytes) -> None:
        with zipfile.ZipFile(zip_path, "w") as archive:
            archive.writestr(prefix + "train/0/P1.jpg", content)
            archive.writestr(prefix + "val/P2.jpg", b"other")

    write(b"a" * 100)
    first = load_zip_index(zip_path, prefix)
    assert len(entries(root, "zip-index")) == 1
    os.utime(zip_path, ns=(1_000_000_000, 1_000_000_000))  # new times, same bytes: the same entry serves
    assert load_zip_index(zip_path, prefix).names.tolist() == first.names.tolist()
    assert len(entries(root, "zip-index")) == 1
    info = zip_path.stat()
    write(b"b" * 100)  # same size, same names, other member bytes: the CRC-32 in the directory changes
    os.utime(zip_path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert zip_path.stat().st_size == info.st_size
    changed = load_zip_index(zip_path, prefix)
    assert len(entries(root, "zip-index")) == 2
    assert int(changed.crcs[changed.names.tolist().index(b"train/0/P1.jpg")]) == zlib.crc32(b"b" * 100)


def test_embeddings_are_keyed_by_content_not_by_path(synthetic, tmp_path, root):
    copy = tmp_path / "moved"
    (copy / METADATA).parent.mkdir(parents=True)
    (copy / METADATA).write_bytes((synthetic / METADATA).read_bytes())
    out = tmp_path / "emb"
    first = extract_embeddings(load_records(synthetic, split="test"), "kmer-profile-3", out, progress=False)
    moved = extract_embeddings(load_records(copy, split="test"), "kmer-profile-3", out, progress=False)
    assert moved.from_cache and np.array_equal(moved.vectors, first.vectors)
    assert moved.manifest["data"]["path"] == str((synthetic / METADATA).resolve())  # recorded, not keyed
