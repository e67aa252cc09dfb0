"""BarcodeBERT: named configs, MLM learning, pooling, save/load, and the authors' checkpoint layouts."""

import argparse
import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification

from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.errors import BioscanError
from bioscan5m.models.dna import BarcodeBERT, mean_pool
from bioscan5m.models.registry import create_dna_model, dna_model_config, list_dna_models
from bioscan5m.models.tokenizer import KmerTokenizer
from bioscan5m.train.distributed import DistInfo
from bioscan5m.train.engine import StepContext
from bioscan5m.train.losses import IGNORE, mask_tokens
from bioscan5m.train.pretrain import MLMStep

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def barcodes(vendored_unseen_barcodes) -> list[str]:
    return vendored_unseen_barcodes


def tiny(**overrides) -> BarcodeBERT:
    torch.manual_seed(0)
    return create_dna_model("4-2-2-tiny", **{"hidden": 64, "intermediate": 128, **overrides})


def test_registry_names_and_the_paper_model():
    assert {"8-4-4", "4-2-2-tiny"} <= set(list_dna_models())
    config = dna_model_config("8-4-4")
    assert (config.k, config.layers, config.heads, config.hidden) == (8, 4, 4, 768)
    with pytest.raises(BioscanError, match="unknown DNA model 'bert-huge'; choose from 8-4-4"):
        create_dna_model("bert-huge")
    with pytest.raises(BioscanError, match="bad setting"):
        dna_model_config("8-4-4", colour="red")
    model = create_dna_model("8-2-2-tiny")
    assert model.tokenizer.k == 8 and model.config.vocab_size == 4**8 + 5
    assert model.config.num_hidden_layers == 2 and model.config._attn_implementation == "sdpa"


@pytest.mark.slow
def test_paper_8_4_4_has_the_published_shape():
    model = create_dna_model("8-4-4")
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.vocab_size) == (768, 4, 4, 65541)
    assert 79e6 < sum(p.numel() for p in model.parameters()) < 81e6  # tied input/output embeddings


def test_mlm_steps_lower_the_loss_on_a_fixed_batch(barcodes):
    model = tiny(dropout=0.0, max_length=320)
    step = MLMStep(model, mask_ratio=0.5)
    batch = barcodes[:16]
    ctx = StepContext(
        step=0, micro=0, epoch=0, indices=np.arange(16), device=torch.device("cpu"), dist=DistInfo(), seed=0
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = step(model, batch, ctx)  # same ctx: the same offsets and masks every time
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert losses[0] > np.log(256) - 1.0  # starts near chance over 4**4 k-mers
    assert losses[-1] < losses[0] - 1.0
    assert 0.4 < out["weight"] / out["tokens"] < 0.6  # half of the real tokens masked


def test_masking_never_touches_padding_or_unk_and_follows_the_strategy(barcodes):
    tok = KmerTokenizer(k=4)
    encoded = tok.encode(barcodes[:200], return_tensors="pt")
    ids, attention = encoded["input_ids"], encoded["attention_mask"]
    maskable = (attention == 1) & (ids >= tok.first_kmer_id)
    draws = torch.from_numpy(np.random.default_rng(0).random((*ids.shape, 3)))
    masked, labels = mask_tokens(ids, maskable, draws, ratio=0.5, mask_token_id=tok.mask_token_id)
    chosen = labels != IGNORE
    assert not (chosen & ~maskable).any()
    assert abs(chosen.sum() / maskable.sum() - 0.5) < 0.02
    assert (masked[chosen] == tok.mask_token_id).all() and (masked[~chosen] == ids[~chosen]).all()
    assert (labels[chosen] == ids[chosen]).all()
    masked, labels = mask_tokens(
        ids,
        maskable,
        draws,
        ratio=0.5,
        mask_token_id=tok.mask_token_id,
        strategy="bert",
        first_kmer_id=tok.first_kmer_id,
        vocab_size=tok.vocab_size,
    )
    chosen = labels != IGNORE
    as_mask = (masked[chosen] == tok.mask_token_id).float().mean()
    unchanged = (masked[chosen] == ids[chosen]).float().mean()
    assert abs(as_mask - 0.8) < 0.02 and 0.09 < unchanged < 0.12  # 10 % kept + random hits of itself
    assert (masked >= 0).all() and (masked < tok.vocab_size).all()
    with pytest.raises(BioscanError, match="mask ratio"):
        mask_tokens(ids, maskable, draws, ratio=1.5, mask_token_id=4)


def test_save_then_load_gives_identical_embeddings(tmp_path, unseen_barcodes):
    # The staged set: batches of its first 40 barcodes all trim to the same token width; with the vendored
    # subset batch_size=7 trims narrower, and the bitwise comparison below moves by ~2e-7.
    barcodes = unseen_barcodes
    model = tiny()
    model.train()  # embed must switch to eval mode itself (dropout off) and back
    first = embed_barcodes(model, barcodes[:40], batch_size=16)
    assert model.training
    assert first.shape == (40, 64) and first.dtype == np.float32
    np.testing.assert_array_equal(first, embed_barcodes(model, barcodes[:40], batch_size=7))
    model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "README.md",
        "config.json",
        "kmer_tokenizer.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    loaded = BarcodeBERT.from_pretrained(tmp_path / "model")
    assert loaded.name == "4-2-2-tiny" and loaded.tokenizer == model.tokenizer
    np.testing.assert_array_equal(embed_barcodes(loaded, barcodes[:40]), first)
    # The same directory is a standard Hugging Face BertForMaskedLM.
    hf = BertForMaskedLM.from_pretrained(tmp_path / "model").eval()
    encoded = model.tokenizer.encode(barcodes[:40], return_tensors="pt")
    with torch.no_grad():
        hidden = hf.bert(**encoded).last_hidden_state
    np.testing.assert_allclose(mean_pool(hidden, encoded["attention_mask"]).numpy(), first, atol=1e-5)


def test_mean_pooling_ignores_padding(barcodes):
    model = tiny().eval()
    short, long = barcodes[0][:300], barcodes[1]
    alone = embed_barcodes(model, [short])[0]
    beside_longer = embed_barcodes(model, [long, short])[1]
    np.testing.assert_allclose(alone, beside_longer, atol=1e-5)
    # the same barcode padded to 300 tokens instead of 165 (a tokenizer with a longer max_length)
    wide = KmerTokenizer(k=4, max_length=1200).encode([short], return_tensors="pt")
    narrow = model.tokenizer.encode([short], return_tensors="pt")
    with torch.no_grad():
        pooled_wide = model.features(wide["input_ids"], wide["attention_mask"])[0]
        pooled_narrow = model.features(narrow["input_ids"], narrow["attention_mask"])[0]
    assert wide["input_ids"].shape[1] == 300 and narrow["input_ids"].shape[1] == 165
    np.testing.assert_allclose(pooled_wide.numpy(), alone, atol=1e-5)
    np.testing.assert_allclose(pooled_narrow.numpy(), alone, atol=1e-5)
    # a barcode too short for one k-mer pools to zeros instead of NaN
    assert not embed_barcodes(model, ["ACG"]).any()


def write_authors_directory(path, *, k: int, n_specials: int, head: str):
    """A checkpoint directory in the authors' layout: config.json + model.safetensors, their vocabulary."""
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=4**k + n_specials,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=4**k,
        output_hidden_states=True,
    )
    if head == "token-classifier":  # the authors' pretraining model
        reference = BertForTokenClassification(config).eval()
    else:  # the first paper's BertForMaskedLM
        reference = BertForMaskedLM(config).eval()
    path.mkdir()
    config_dict = config.to_dict()
    config_dict["architectures"] = [type(reference).__name__]
    (path / "config.json").write_text(json.dumps(config_dict))
    state = {
        f"module.{key}": value.clone()
        for key, value in reference.state_dict().items()
        if key != "cls.predictions.decoder.weight"
    }  # DDP prefix, tied weight stored once
    save_file(state, str(path / "model.safetensors"))
    return reference


def authors_embedding(reference, tokenizer: KmerTokenizer, sequences: list[str]) -> np.ndarray:
    """Their single_inference: hidden_states[-1] averaged over attention-mask tokens."""
    encoded = tokenizer.encode(sequences, return_tensors="pt")
    with torch.no_grad():
        hidden = reference(**encoded).hidden_states[-1]
    mask = encoded["attention_mask"].unsqueeze(-1)
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


def test_loads_the_authors_layout_with_their_vocabulary(tmp_path, barcodes, caplog):
    reference = write_authors_directory(tmp_path / "BarcodeBERT", k=4, n_specials=2, head="token-classifier")
    with caplog.at_level(logging.INFO):
        model = BarcodeBERT.from_pretrained(tmp_path / "BarcodeBERT")
    assert "no masked-language-model head" in caplog.text
    tok = model.tokenizer
    assert tok.specials == ("[MASK]", "[UNK]") and tok.pad_token == "[UNK]" and tok.k == 4
    assert tok.vocab()[2:4] == ["AAAA", "AAAC"]
    ours = embed_barcodes(model, barcodes[:30])
    np.testing.assert_allclose(ours, authors_embedding(reference, tok, barcodes[:30]), atol=1e-5)
    # Saved in our layout it keeps their vocabulary and gives the same embeddings.
    model.save_pretrained(tmp_path / "ours")
    np.testing.assert_array_equal(embed_barcodes(BarcodeBERT.from_pretrained(tmp_path / "ours"), barcodes[:30]), ours)


def test_loads_the_first_papers_masked_lm_with_three_specials(tmp_path, barcodes):
    reference = write_authors_directory(tmp_path / "v1", k=4, n_specials=3, head="masked-lm")
    model = BarcodeBERT.from_pretrained(tmp_path / "v1")
    assert model.tokenizer.specials == ("[MASK]", "[CLS]", "[UNK]")
    encoded = model.tokenizer.encode(barcodes[:5], return_tensors="pt")
    positions = encoded["attention_mask"].bool()
    with torch.no_grad():
        ours = model(encoded["input_ids"], encoded["attention_mask"], masked_positions=positions).logits
        theirs = reference(**encoded).logits[positions]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)  # the MLM head came along


def test_loads_an_authors_training_checkpoint_file(tmp_path, barcodes):
    torch.manual_seed(2)
    config = BertConfig(
        vocab_size=4**5 + 2,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=4**5,
        output_hidden_states=True,
    )
    reference = BertForTokenClassification(config).eval()
    settings = argparse.Namespace(k_mer=5, stride=5, max_len=660, n_layers=1)
    torch.save(
        {"model": reference.state_dict(), "bert_config": config.to_dict(), "config": settings, "epoch": 3},
        tmp_path / "checkpoint_pretraining.pt",
    )
    model = BarcodeBERT.from_pretrained(tmp_path / "checkpoint_pretraining.pt")
    assert model.tokenizer.k == 5 and model.tokenizer.stride == 5
    np.testing.assert_allclose(
        embed_barcodes(model, barcodes[:10]), authors_embedding(reference, model.tokenizer, barcodes[:10]), atol=1e-5
    )


def test_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(BioscanError, match="no such model directory"):
        BarcodeBERT.from_pretrained(tmp_path / "missing")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"vocab_size": 1000}))
    with pytest.raises(BioscanError, match="vocabulary size 1000 is not 4\\*\\*k plus 2 or 3"):
        BarcodeBERT.from_pretrained(tmp_path / "odd")
    tiny().save_pretrained(tmp_path / "tiny")
    with pytest.raises(BioscanError, match="do not fit '8-4-4': k 4 \\(expected 8\\)"):
        create_dna_model("8-4-4", pretrained=tmp_path / "tiny")
    assert create_dna_model("4-2-2-tiny", hidden=64, pretrained=tmp_path / "tiny").hidden_size == 64
