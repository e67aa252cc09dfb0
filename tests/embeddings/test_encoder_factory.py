"""The one encoder factory: every family by name, its modality, its preprocessing and its vector shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bioscan5m.embeddings import create_encoder, list_encoders
from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.errors import BioscanError

BARCODES = ["ACGTACGTTAGCCATGCA" * 20, "TTGACCGTAGGCATACGT" * 18, "ACGTNACGTTT" * 30]
SENTENCES = ["Diptera Cecidomyiidae Asphondylia Asphondylia sp1",
             "Hymenoptera Braconidae not_classified not_classified"]


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 40, 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture(scope="module")
def barcodebert_dir(tmp_path_factory):
    from bioscan5m.models.registry import create_dna_model

    torch.manual_seed(0)
    model = create_dna_model("4-2-2-tiny")
    return model, model.save_pretrained(tmp_path_factory.mktemp("bb") / "model")


@pytest.fixture(scope="module")
def clibd_dir(tmp_path_factory):
    from bioscan5m.models.multimodal import create_multimodal_model

    torch.manual_seed(0)
    built = create_multimodal_model("tiny", text_vocabulary=SENTENCES)
    return built, built.model.save_pretrained(tmp_path_factory.mktemp("clibd") / "model")


def test_every_family_the_cli_names_is_registered():
    assert set(list_encoders()) == {"kmer-profile", "barcodebert", "hf-dna", "image-stats", "hf-image", "timm",
                                    "clibd"}


@pytest.mark.parametrize(("name", "modality", "dim"), [("kmer-profile-3", "dna", 64), ("kmer-profile", "dna", 1024),
                                                        ("image-stats-4", "image", 4**3 + 16 * 16)])
def test_training_free_encoders(name, modality, dim):
    encoder = create_encoder(name)
    batch = BARCODES if modality == "dna" else _images()
    vectors = encoder.encode(batch)
    assert encoder.modality == modality and encoder.name == (name if name[-1].isdigit() else "kmer-profile-5")
    assert vectors.shape == (3, dim) and vectors.dtype == np.float32
    assert encoder.describe()["checkpoint_sha256"] is None


def test_barcodebert_by_folder(barcodebert_dir):
    model, folder = barcodebert_dir
    encoder = create_encoder(f"barcodebert:{folder}", device="cpu")
    vectors = encoder.encode(BARCODES)
    assert encoder.modality == "dna" and vectors.shape == (3, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, embed_barcodes(model, BARCODES), atol=1e-5)
    assert len(encoder.describe()["checkpoint_sha256"]) == 64


def test_hugging_face_dna_and_image_folders(tmp_path):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import (
        BertConfig,
        BertModel,
        PreTrainedTokenizerFast,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", *"ACGTN"])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                            model_max_length=1024).save_pretrained(tmp_path / "dna")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=1024)).save_pretrained(tmp_path / "dna")
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=48)).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")

    dna = create_encoder(f"hf-dna:{tmp_path / 'dna'}", device="cpu")
    image = create_encoder(f"hf-image:{tmp_path / 'vit'}", device="cpu", pooling="mean")
    assert (dna.modality, dna.encode(BARCODES).shape) == ("dna", (3, 16))
    assert (image.modality, image.encode(_images()).shape) == ("image", (3, 24))
    assert image.describe()["options"] == {"pooling": "mean"}


@pytest.mark.parametrize("modality", ["image", "dna", "text"])
def test_clibd_towers_use_the_models_own_preprocessing(clibd_dir, modality):
    built, folder = clibd_dir
    encoder = create_encoder(f"clibd:{folder}/{modality}", device="cpu")
    batch = {"image": _images(), "dna": BARCODES, "text": SENTENCES}[modality]
    vectors = encoder.encode(batch)
    assert encoder.modality == modality and encoder.name == f"clibd:{folder}/{modality}"
    assert vectors.shape == (len(batch), 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)  # the shared, normalised space
    model = built.model.eval()
    with torch.no_grad():  # the same numbers as the model's own towers on inputs prepared by hand
        if modality == "image":
            expected = model.encode_image(torch.stack([built.eval_transform(image) for image in batch]))
        elif modality == "dna":
            tokens = built.dna_tokenizer.encode(batch, return_tensors="pt")
            expected = model.encode_dna(tokens["input_ids"], tokens["attention_mask"])
        else:
            tokens = built.text_tokenizer(batch, padding="max_length", max_length=20, return_tensors="pt")
            expected = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    np.testing.assert_allclose(vectors, expected.numpy(), atol=1e-5)


def test_bad_names_are_one_clear_error(tmp_path):
    with pytest.raises(BioscanError, match="unknown encoder 'bert'; known: barcodebert"):
        create_encoder("bert")
    with pytest.raises(BioscanError, match=r"clibd:<dir>/image, clibd:<dir>/dna or clibd:<dir>/text"):
        create_encoder(f"clibd:{tmp_path}/sound")
    with pytest.raises(BioscanError, match="takes no option pooling"):
        create_encoder("kmer-profile-4", pooling="mean")
    with pytest.raises(BioscanError, match="not a multimodal model directory"):
        create_encoder(f"clibd:{tmp_path}/dna").encode(BARCODES)


def test_embed_command_runs_a_clibd_tower_over_records(clibd_dir, tmp_path, capsys):
    from bioscan5m.cli import main
    from bioscan5m.data.records import load_records
    from bioscan5m.data.synthetic import write_synthetic_dataset
    from bioscan5m.embeddings import extract_embeddings, load_embeddings

    _, folder = clibd_dir
    data = write_synthetic_dataset(tmp_path / "data", 300, seed=2)
    assert main(["embed", "--data", str(data), "--split", "test", "--encoder", f"clibd:{folder}/dna",
                 "--out", str(tmp_path / "emb"), "--device", "cpu"]) == 0
    assert f"with clibd:{folder}/dna" in capsys.readouterr().out
    saved = load_embeddings(tmp_path / "emb")
    records = load_records(data, split="test")
    barcodes = dict(zip(records.ids, records.barcodes()))
    expected = create_encoder(f"clibd:{folder}/dna", device="cpu").encode([barcodes[i] for i in saved.ids])
    np.testing.assert_allclose(saved.vectors, expected, atol=1e-5)
    with pytest.raises(BioscanError, match="embeds text; records are embedded by DNA or image encoders"):
        extract_embeddings(records, f"clibd:{folder}/text", tmp_path / "text")


def test_model_hash_covers_the_model_not_its_training_log(barcodebert_dir, tmp_path):
    import shutil

    from bioscan5m.embeddings.encoders import checkpoint_sha256

    folder = shutil.copytree(barcodebert_dir[1], tmp_path / "model")
    before = checkpoint_sha256(folder)
    (folder / "train_log.jsonl").write_text('{"step": 1, "tokens_per_s": 1234.5}\n')
    (folder / "checkpoints" / "step-1").mkdir(parents=True)
    (folder / "checkpoints" / "step-1" / "model.safetensors").write_bytes(b"an earlier state")
    assert checkpoint_sha256(folder) == before  # re-trained to the same weights: same caches
    config = folder / "config.json"
    config.write_text(config.read_text().replace("}", ', "edited": true}', 1))
    assert checkpoint_sha256(folder) != before
