"""The one batched inference loop: the same vectors as the models' own forward passes, whatever the batching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.embeddings.loop import batches, embed_items, resolve_device, run_inference, shard_bounds
from bioscan5m.models.registry import create_dna_model

BARCODES = [("ACGTTGCA" * 80)[: 150 + 37 * i] for i in range(11)] + ["ACG"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_dna_model("4-2-2-tiny")


def test_barcodebert_vectors_equal_one_forward_pass_per_barcode(model):
    model.train()  # the loop embeds in eval mode and leaves the model as it found it
    vectors = embed_barcodes(model, BARCODES, batch_size=5)
    assert model.training and vectors.shape == (12, 128) and vectors.dtype == np.float32
    model.eval()
    with torch.no_grad():
        for barcode, vector in zip(BARCODES, vectors):
            tokens = model.tokenizer.encode([barcode], return_tensors="pt")
            expected = model.features(tokens["input_ids"], tokens["attention_mask"])[0].numpy()
            np.testing.assert_allclose(vector, expected, atol=1e-5)
    np.testing.assert_allclose(embed_barcodes(model, BARCODES, batch_size=12), vectors, atol=1e-5)
    assert not vectors[-1].any()  # too short for one k-mer: zeros, not NaN
    all_positions = embed_barcodes(model, BARCODES[:3], pooling="all-positions")
    assert not np.allclose(all_positions, vectors[:3], atol=1e-4)


def test_results_are_joined_in_order_and_keyed_outputs_stay_apart():
    items = np.arange(23, dtype=np.float32)
    seen: list[int] = []
    joined = run_inference(lambda b: seen.append(len(b)) or np.stack([b, -b], 1), batches(items, 10), total=23)
    assert seen == [10, 10, 3] and joined.dtype == np.float32
    np.testing.assert_array_equal(joined[:, 0], items)
    keyed = run_inference(lambda b: {"a": b[:, None], "b": 2 * b[:, None]}, batches(items, 4), keyed=True)
    np.testing.assert_array_equal(keyed["b"][:, 0], 2 * items)
    assert run_inference(lambda b: b, [], width=7).shape == (0, 7)
    with pytest.raises(RuntimeError, match="returned shape"):
        run_inference(lambda b: np.zeros((1, 2)), batches(items, 5))


def test_prefetched_batches_read_every_item_once_in_order():
    class Counted(list):
        reads = 0

        def __getitem__(self, index):
            Counted.reads += 1
            return super().__getitem__(index)

    items = Counted(range(17))
    assert [list(b) for b in batches(items, 5, prefetch=True)] == [list(range(s, min(s + 5, 17)))
                                                                   for s in range(0, 17, 5)]
    assert Counted.reads == 17


def test_kmer_encoder_through_the_loop_equals_one_call():
    from bioscan5m.embeddings import create_encoder

    encoder = create_encoder("kmer-profile-4")
    np.testing.assert_array_equal(embed_items(encoder, BARCODES, batch_size=3), encoder.encode(BARCODES))


def test_shards_cover_every_item_once_and_auto_device():
    for n, world in [(10, 3), (2, 4), (0, 2), (7, 1)]:
        bounds = [shard_bounds(n, rank, world) for rank in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(hi == lo for (_, hi), (lo, _) in itertools.pairwise(bounds))
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_clibd_text_and_barcodes_equal_the_models_towers():
    from bioscan5m.embeddings.clibd import embed_texts
    from bioscan5m.models.multimodal import create_multimodal_model

    sentences = ["Diptera Culicidae Aedes Aedes albopictus", "Diptera not_classified not_classified not_classified"]
    torch.manual_seed(0)
    built = create_multimodal_model("tiny", modalities=("dna", "text"), text_vocabulary=sentences)
    vectors = embed_texts(built.model, sentences * 3, batch_size=4)
    tokens = built.text_tokenizer(sentences * 3, padding="max_length", max_length=20, return_tensors="pt")
    with torch.no_grad():
        expected = built.model.eval().encode_text(tokens["input_ids"], tokens["attention_mask"]).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
