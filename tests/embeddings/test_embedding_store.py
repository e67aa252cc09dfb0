"""The content-keyed embedding store: same content → hit, changed weights/records/config → miss, damage → rebuilt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bioscan5m.data.records import load_records
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.embeddings.store import (
    MANIFEST_FILE,
    Embeddings,
    embeddings_cache_entry,
    extract_embeddings,
    store_entry,
    store_folder,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("store") / "data", 200, seed=3)


@pytest.fixture
def counted(monkeypatch):
    """Sequences each encoder is asked to embed, call by call (whatever the encoder)."""
    from bioscan5m.embeddings import loop

    calls: list[int] = []
    real = loop.run_inference
    monkeypatch.setattr(loop, "run_inference", lambda encode, batched, **kw: calls.append(kw["total"]) or
                        real(encode, batched, **kw))
    return calls


def test_same_content_is_a_hit_anywhere(dataset, tmp_path, counted, monkeypatch):
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "cache"))
    records = load_records(dataset, split="test")
    entry = embeddings_cache_entry("kmer3", records)
    assert entry.parent == store_folder() == tmp_path / "cache" / "embeddings"
    first = extract_embeddings(records, "kmer-profile-3", entry, progress=False)
    again = extract_embeddings(load_records(dataset, split="test"), "kmer-profile-3", entry, progress=False)
    assert (first.from_cache, again.from_cache, counted) == (False, True, [len(records)])
    np.testing.assert_array_equal(again.vectors, first.vectors)
    np.testing.assert_array_equal(again.ids, np.asarray(records.ids).astype(str))
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    assert manifest["encoder"]["name"] == "kmer-profile-3" and manifest["n_records"] == len(records)
    assert manifest["cache_key"] == first.manifest["cache_key"] and len(manifest["cache_key"]) == 64


def test_changed_config_records_or_weights_miss(dataset, tmp_path, counted):
    from bioscan5m.models.registry import create_dna_model

    records = load_records(dataset, split="test")
    out = tmp_path / "emb"
    k3 = extract_embeddings(records, "kmer-profile-3", out, progress=False)
    assert not extract_embeddings(records, "kmer-profile-4", out, progress=False).from_cache  # encoder config
    fewer = records.filter(np.arange(len(records)) < len(records) - 1)
    assert not extract_embeddings(fewer, "kmer-profile-4", out, progress=False).from_cache  # records
    assert extract_embeddings(fewer, "kmer-profile-4", out, progress=False).from_cache
    assert embeddings_cache_entry("k", fewer, tmp_path) != embeddings_cache_entry("k", records, tmp_path)
    torch.manual_seed(0)
    model = create_dna_model("4-2-2-tiny")
    model.save_pretrained(tmp_path / "bb")
    name = f"barcodebert:{tmp_path / 'bb'}"
    before = extract_embeddings(fewer, name, out, device="cpu", progress=False)
    assert extract_embeddings(fewer, name, out, device="cpu", progress=False).from_cache
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.add_(0.5)  # retrained: same folder, new weights
    model.save_pretrained(tmp_path / "bb")
    after = extract_embeddings(fewer, name, out, device="cpu", progress=False)
    assert not after.from_cache and not np.allclose(after.vectors, before.vectors)
    assert counted == [len(records), len(records), len(fewer), len(fewer), len(fewer)]
    assert k3.dim == 64 and after.dim == 128


@pytest.mark.parametrize("damage", ["vectors", "ids", "manifest"])
def test_a_damaged_entry_is_rebuilt(dataset, tmp_path, counted, damage):
    records = load_records(dataset, split="test")
    first = extract_embeddings(records, "kmer-profile-3", tmp_path, progress=False)
    target = {"vectors": "embeddings.npy", "ids": "ids.tsv", "manifest": MANIFEST_FILE}[damage]
    whole = (tmp_path / target).read_bytes()
    (tmp_path / target).write_bytes(whole[: len(whole) // 2])
    rebuilt = extract_embeddings(records, "kmer-profile-3", tmp_path, progress=False)
    assert not rebuilt.from_cache and counted == [len(records), len(records)]
    np.testing.assert_array_equal(rebuilt.vectors, first.vectors)
    assert extract_embeddings(records, "kmer-profile-3", tmp_path, progress=False).from_cache


def test_store_entries_are_named_and_keyed(tmp_path):
    entry = store_entry("train+key_unseen-dna", "ab" * 32, tmp_path)
    assert entry == tmp_path / f"train+key_unseen-dna.{'ab' * 12}"
    saved = Embeddings(np.array(["a", "b"]), np.eye(2, 3, dtype=np.float32), {"cache_key": "ab" * 32}).save(entry)
    assert Embeddings.load(saved).manifest["dim"] == 3
