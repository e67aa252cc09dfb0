"""Embedding extraction: k-mer profiles, the encoder registry, the cache and its manifest, HF models, torchrun."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bioscan5m.cli import main
from bioscan5m.data.records import load_records
from bioscan5m.data.schema import COLUMN_NAMES
from bioscan5m.embeddings.encoders import KmerProfileEncoder, create_encoder, embed_barcodes, list_encoders
from bioscan5m.embeddings.store import Embeddings, extract_embeddings, load_embeddings
from bioscan5m.errors import BioscanError
from bioscan5m.models.kmer import kmer_counts, kmer_names, kmer_profiles

BOLD_V5 = "bold_v5/BOLD_Public.18-Dec-2023.sample999.tsv.gz"  # vendored in tests/fixtures
CROPS = "bioscan1m_crops"  # vendored in tests/fixtures


def write_bold_head(vendored_data: Path, dest: Path, rows: int) -> Path:
    """The header and the first ``rows`` COI-5P barcode records of a real BOLD data package, as a TSV of our own."""
    with gzip.open(vendored_data / BOLD_V5, "rt", encoding="utf-8", newline="") as source:
        header = next(source)
        marker = header.rstrip("\n").split("\t").index("marker_code")
        lines = [header]
        for line in source:
            if line.split("\t")[marker] == "COI-5P":
                lines.append(line)
            if len(lines) > rows:
                break
    dest.write_text("".join(lines), encoding="utf-8")
    return dest


@pytest.fixture
def bold_tsv(vendored_data, tmp_path) -> Path:
    return write_bold_head(vendored_data, tmp_path / "bold.tsv", 120)


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """Number of sequences the k-mer encoder is asked to embed, call by call."""
    calls: list[int] = []
    original = KmerProfileEncoder.encode

    def encode(self, batch):
        calls.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(KmerProfileEncoder, "encode", encode)
    return calls


# --------------------------------------------------------------------------------------------- k-mers


def test_kmer_profiles_count_overlapping_kmers_and_skip_ambiguous_ones():
    names = kmer_names(2)
    assert names[:5] == ["AA", "AC", "AG", "AT", "CA"] and len(names) == 16
    counts = kmer_counts(["ACGTA", "NNAC", "acgNt", "A", ""], k=2)
    as_dict = [{names[i]: int(row[i]) for i in np.flatnonzero(row)} for row in counts]
    assert as_dict == [{"AC": 1, "CG": 1, "GT": 1, "TA": 1}, {"AC": 1}, {"AC": 1, "CG": 1}, {}, {}]
    profiles = kmer_profiles(["ACGTA", "A"], k=2)
    assert profiles.dtype == np.float32 and profiles.shape == (2, 16)
    np.testing.assert_allclose(profiles[0, [names.index(n) for n in ("AC", "CG", "GT", "TA")]], 0.25)
    assert profiles[1].sum() == 0
    with pytest.raises(BioscanError, match="k-mer size"):
        kmer_counts(["ACGT"], k=0)


def test_kmer_profiles_of_real_barcodes(vendored_data):
    records = load_records(vendored_data / "barcodebert_unseen" / "unseen_every10th.tsv.gz")
    barcodes = records.barcodes()
    profiles = kmer_profiles(barcodes, k=4)
    assert profiles.shape == (len(records), 256)
    np.testing.assert_allclose(profiles.sum(axis=1), 1, atol=1e-5)
    # Counts equal a plain-Python count on a barcode that contains N.
    index = next(i for i, b in enumerate(barcodes) if "N" in b.strip("N"))
    seq = barcodes[index]
    expected = {}
    for start in range(len(seq) - 3):
        word = seq[start : start + 4]
        if set(word) <= set("ACGT"):
            expected[word] = expected.get(word, 0) + 1
    row = kmer_counts([seq], k=4)[0]
    names = kmer_names(4)
    assert {names[i]: int(row[i]) for i in np.flatnonzero(row)} == expected


# --------------------------------------------------------------------------------------------- registry


def test_encoder_registry_names():
    assert {"kmer-profile", "barcodebert", "hf-dna", "hf-image", "timm"} <= set(list_encoders())
    assert create_encoder("kmer-profile").name == "kmer-profile-5"
    assert create_encoder("kmer-profile-3").describe()["options"] == {"k": 3}
    with pytest.raises(BioscanError, match="unknown encoder 'dnabert'.*kmer-profile"):
        create_encoder("dnabert")
    with pytest.raises(BioscanError, match="takes no option pooling"):
        create_encoder("kmer-profile", pooling="mean")
    with pytest.raises(BioscanError, match="integer k"):
        create_encoder("kmer-profile:x")
    with pytest.raises(BioscanError, match="unknown pooling 'max'"):
        create_encoder("hf-image:some/model", pooling="max")


# --------------------------------------------------------------------------------------------- cache


def test_embeddings_are_cached_and_reused(bold_tsv, tmp_path, counted):
    records = load_records(bold_tsv)
    first = extract_embeddings(records, "kmer-profile-4", tmp_path / "emb", batch_size=50, progress=False)
    assert sum(counted) == len(records) == 120 and len(counted) == 3  # batches of 50, 50, 20
    assert first.vectors.shape == (120, 256) and first.vectors.dtype == np.float32
    assert not first.from_cache
    again = extract_embeddings(load_records(bold_tsv), "kmer-profile-4", tmp_path / "emb", progress=False)
    assert again.from_cache and sum(counted) == 120  # the encoder was not run again
    np.testing.assert_array_equal(again.vectors, first.vectors)
    np.testing.assert_array_equal(again.ids, records.ids.astype(str))
    manifest = json.loads((tmp_path / "emb" / "manifest.json").read_text())
    assert manifest["encoder"]["name"] == "kmer-profile-4"
    assert manifest["data"]["path"] == str(bold_tsv.resolve())
    assert manifest["data"]["size"] == bold_tsv.stat().st_size
    assert manifest["data"]["sha256"] == hashlib.sha256(bold_tsv.read_bytes()).hexdigest()
    assert (manifest["n_records"], manifest["dim"]) == (120, 256)
    assert manifest["bioscan5m_version"] and manifest["created"].startswith("20")
    assert (tmp_path / "emb" / "ids.tsv").read_text().splitlines()[:2] == ["processid", records.ids[0]]
    assert not list((tmp_path / "emb").glob(".*"))  # no temporary files left


def test_cache_is_invalidated_when_encoder_or_data_change(bold_tsv, tmp_path, counted):
    out = tmp_path / "emb"
    extract_embeddings(load_records(bold_tsv), "kmer-profile-4", out, progress=False)
    other_k = extract_embeddings(load_records(bold_tsv), "kmer-profile-3", out, progress=False)
    assert not other_k.from_cache and other_k.dim == 64 and sum(counted) == 240
    assert load_embeddings(out).name == "kmer-profile-3"  # the directory now holds the new set
    # Same encoder, edited data (one barcode changed in place: same size, new content).
    lines = bold_tsv.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split("\t")
    column = header.index("nucraw")
    fields = lines[1].split("\t")
    fields[column] = fields[column].replace("A", "T", 5)
    lines[1] = "\t".join(fields)
    bold_tsv.write_text("".join(lines), encoding="utf-8")
    edited = extract_embeddings(load_records(bold_tsv), "kmer-profile-3", out, progress=False)
    assert not edited.from_cache and sum(counted) == 360
    assert not np.array_equal(edited.vectors[0], other_k.vectors[0])
    np.testing.assert_array_equal(edited.vectors[1:], other_k.vectors[1:])
    # A different subset of records (same file) is a different set too.
    fewer = load_records(bold_tsv)
    fewer = fewer.filter(np.arange(len(fewer)) < 30)
    assert not extract_embeddings(fewer, "kmer-profile-3", out, progress=False).from_cache
    assert load_embeddings(out).vectors.shape == (30, 64)


def test_failed_extraction_leaves_the_previous_set_intact(bold_tsv, tmp_path, monkeypatch):
    out = tmp_path / "emb"
    good = extract_embeddings(load_records(bold_tsv), "kmer-profile-4", out, progress=False)

    def broken(self, batch):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(KmerProfileEncoder, "encode", broken)
    with pytest.raises(RuntimeError):
        extract_embeddings(load_records(bold_tsv), "kmer-profile-3", out, progress=False)
    kept = load_embeddings(out)
    assert kept.name == "kmer-profile-4"
    np.testing.assert_array_equal(kept.vectors, good.vectors)


def test_loading_a_folder_without_embeddings_is_a_clear_error(tmp_path):
    with pytest.raises(BioscanError, match="not an embedding directory"):
        load_embeddings(tmp_path)
    Embeddings(np.array(["a", "b"]), np.zeros((2, 3), np.float32), {"encoder": {"name": "x"}}).save(tmp_path)
    np.save(tmp_path / "embeddings.npy", np.zeros((5, 3), np.float32))  # tampered with
    with pytest.raises(BioscanError, match="disagree with the manifest"):
        load_embeddings(tmp_path)


def test_embed_command(bold_tsv, tmp_path, capsys):
    out = tmp_path / "kmer"
    assert main(["embed", "--data", str(bold_tsv), "--encoder", "kmer-profile-4", "--out", str(out)]) == 0
    assert "computed 120 embeddings of dimension 256 with kmer-profile-4" in capsys.readouterr().out
    assert main(["embed", "--data", str(bold_tsv), "--encoder", "kmer-profile-4", "--out", str(out)]) == 0
    assert "reused saved 120 embeddings" in capsys.readouterr().out
    assert main(["embed", "--data", str(bold_tsv), "--encoder", "kmer-profile-4", "--out", str(out),
                 "--split", "test"]) == 2
    assert "no BIOSCAN-5M split" in capsys.readouterr().err
    assert main(["embed", "--data", str(bold_tsv), "--encoder", "nope", "--out", str(out)]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- Hugging Face


def save_tiny_dna_model(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT with a one-letter-per-token DNA tokenizer, as a model folder."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"ACGTN"])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=1024
                            ).save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=1024)
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.mark.slow  # the first test to import transformers pays for it
def test_hf_dna_encoder_mean_pools_real_tokens_only(tmp_path, bold_tsv):
    model_dir = save_tiny_dna_model(tmp_path / "tiny-dna")
    encoder = create_encoder(f"hf-dna:{model_dir}", device="cpu")
    barcodes = load_records(bold_tsv).barcodes()[:4]
    short = barcodes[0][:200]
    together = encoder.encode([short, *barcodes[1:]])
    alone = encoder.encode([short])
    assert together.shape == (4, 32) and together.dtype == np.float32
    # Padding a short barcode next to long ones must not change its embedding.
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_checkpoint_change_invalidates_the_cache(tmp_path, bold_tsv):
    model_dir = save_tiny_dna_model(tmp_path / "tiny-dna", seed=0)
    records = load_records(bold_tsv).filter(np.arange(120) < 10)
    first = extract_embeddings(records, f"hf-dna:{model_dir}", tmp_path / "emb", device="cpu", progress=False)
    assert first.dim == 32 and len(first) == 10
    assert extract_embeddings(records, f"hf-dna:{model_dir}", tmp_path / "emb", progress=False).from_cache
    save_tiny_dna_model(model_dir, seed=1)  # retrained weights, same folder
    second = extract_embeddings(records, f"hf-dna:{model_dir}", tmp_path / "emb", progress=False)
    assert not second.from_cache
    assert second.manifest["encoder"]["checkpoint_sha256"] != first.manifest["encoder"]["checkpoint_sha256"]
    assert not np.allclose(second.vectors, first.vectors)


def test_barcodebert_encoder_matches_the_models_own_embed(tmp_path, bold_tsv):
    from bioscan5m.models.registry import create_dna_model

    torch.manual_seed(0)
    model = create_dna_model("4-2-2-tiny")
    model.save_pretrained(tmp_path / "bb")
    records = load_records(bold_tsv).filter(np.arange(120) < 12)
    embeddings = extract_embeddings(records, f"barcodebert:{tmp_path / 'bb'}", tmp_path / "emb", batch_size=5,
                                    device="cpu", progress=False)
    assert embeddings.vectors.shape == (12, model.hidden_size)
    expected = embed_barcodes(model, records.barcodes(), device="cpu", progress=False)
    np.testing.assert_allclose(embeddings.vectors, expected, atol=1e-5)
    assert len(embeddings.manifest["encoder"]["checkpoint_sha256"]) == 64


def save_tiny_image_model(directory: Path, model_type: str = "vit") -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTMAEConfig, ViTMAEModel, ViTModel

    torch.manual_seed(0)
    sizes = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 64}
    model = ViTMAEModel(ViTMAEConfig(**sizes)) if model_type == "vit_mae" else ViTModel(ViTConfig(**sizes))
    model.save_pretrained(directory)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


@pytest.fixture
def image_dataset(vendored_data, tmp_path) -> Path:
    """A BIOSCAN-5M-layout folder: a 23-column metadata CSV and 6 real specimen crops under images/."""
    root = tmp_path / "BIOSCAN_5M"
    crops = sorted((vendored_data / CROPS).glob("*.jpg"))[:6]
    rows = []
    for i, crop in enumerate(crops):
        processid = crop.name.split(".")[0]
        split, chunk = ("test", str(i % 2)) if i < 4 else ("test_unseen", "")
        folder = root / "bioscan5m" / "images" / "cropped_256" / split / chunk
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(crop, folder / f"{processid}.jpg")
        rows.append({"processid": processid, "order": "Diptera", "species": f"species {i % 3}", "split": split,
                     "chunk": chunk, "dna_barcode": "ACGT" * 50})
    csv_path = root / "bioscan5m" / "metadata" / "csv" / "BIOSCAN_5M_Insect_Dataset_metadata.csv"
    csv_path.parent.mkdir(parents=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMN_NAMES), restval="")
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_hf_image_encoder_on_real_crops(image_dataset, tmp_path):
    model_dir = save_tiny_image_model(tmp_path / "tiny-vit")
    records = load_records(image_dataset, split="test+test_unseen")
    cls = extract_embeddings(records, f"hf-image:{model_dir}", tmp_path / "cls", device="cpu", progress=False)
    assert cls.vectors.shape == (6, 32) and np.isfinite(cls.vectors).all()
    assert len(np.unique(cls.vectors.round(5), axis=0)) == 6  # six different crops, six vectors
    assert cls.manifest["data"]["images"]["package"] == "cropped_256"
    assert cls.manifest["data"]["split"] == "test+test_unseen"
    mean = extract_embeddings(records, create_encoder(f"hf-image:{model_dir}", pooling="mean", device="cpu"),
                              tmp_path / "cls", progress=False)
    assert not mean.from_cache  # pooling is part of the cache key
    assert not np.allclose(mean.vectors, cls.vectors)
    # Batching does not change results: one image at a time gives the same vectors.
    single = extract_embeddings(records, f"hf-image:{model_dir}", tmp_path / "one", batch_size=1, progress=False)
    np.testing.assert_allclose(single.vectors, cls.vectors, atol=1e-5)


def test_mae_encoder_sees_every_patch(tmp_path):
    from PIL import Image

    encoder = create_encoder(f"hf-image:{save_tiny_image_model(tmp_path / 'mae', 'vit_mae')}", device="cpu")
    images = [Image.new("RGB", (40, 30), (i * 40, 90, 200 - i * 30)) for i in range(3)]
    first, second = encoder.encode(images), encoder.encode(images)
    np.testing.assert_allclose(first, second, atol=1e-6)  # no random masking at inference
    assert encoder._model.config.mask_ratio == 0.0


def test_timm_encoder_without_timm_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as on a machine without timm: `import timm` fails
    with pytest.raises(BioscanError, match=r"timm encoders need the timm package.*pip install 'bioscan5m\[timm\]'"):
        create_encoder("timm:vit_small_patch16_224.dino")


def test_timm_encoder_on_real_crops(image_dataset, tmp_path):
    """Runs where timm and a matching torchvision are installed (``pip install 'bioscan5m[timm]'``); timm
    cannot import beside the CPU torch wheel CI uses, so CI covers the error path above instead."""
    timm = pytest.importorskip("timm")
    from PIL import Image

    torch.manual_seed(0)
    sizes = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **sizes).eval()
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, 32, 32)}  # preprocessing follows it
    timm.models.save_for_hf(model, tmp_path / "tiny-timm", model_args=sizes)
    records = load_records(image_dataset, split="test+test_unseen")
    default = extract_embeddings(records, f"timm:{tmp_path / 'tiny-timm'}", tmp_path / "e1", device="cpu",
                                 progress=False)
    assert default.vectors.shape == (6, 32) and np.isfinite(default.vectors).all()
    assert len(np.unique(default.vectors.round(5), axis=0)) == 6
    # The same vectors as the model itself on timm's own preprocessing of the crops.
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    crops = sorted((image_dataset / "bioscan5m" / "images" / "cropped_256").rglob("*.jpg"))
    by_id = {path.stem: path for path in crops}
    with torch.inference_mode():
        expected = model(torch.stack([transform(Image.open(by_id[i]).convert("RGB")) for i in default.ids]))
    np.testing.assert_allclose(default.vectors, expected.numpy(), atol=1e-5)
    mean = extract_embeddings(records, create_encoder(f"timm:{tmp_path / 'tiny-timm'}", pooling="mean"),
                              tmp_path / "e1", progress=False)
    assert not mean.from_cache and not np.allclose(mean.vectors, default.vectors)
    assert mean.manifest["encoder"]["checkpoint_sha256"] == default.manifest["encoder"]["checkpoint_sha256"]


# --------------------------------------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_torchrun_shards_give_the_single_process_result(bold_tsv, tmp_path):
    script = tmp_path / "embed_shards.py"
    script.write_text(
        "import sys\n"
        "from bioscan5m.data.records import load_records\n"
        "from bioscan5m.embeddings.store import extract_embeddings\n"
        "e = extract_embeddings(load_records(sys.argv[1]), 'kmer-profile-4', sys.argv[2], progress=False)\n"
        "print('rank done', len(e))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         str(bold_tsv), str(tmp_path / "sharded")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("rank done 120") == 2
    sharded = load_embeddings(tmp_path / "sharded")
    single = extract_embeddings(load_records(bold_tsv), "kmer-profile-4", tmp_path / "single", progress=False)
    assert sharded.manifest["world_size"] == 2
    assert sharded.manifest["cache_key"] == single.manifest["cache_key"]
    np.testing.assert_array_equal(sharded.ids, single.ids)
    np.testing.assert_array_equal(sharded.vectors, single.vectors)
    assert not list((tmp_path / "sharded").glob(".shards-*"))
