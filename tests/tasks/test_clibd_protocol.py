"""Task III protocol fidelity (CLIBD): taxonomy text for every record, the authors' placeholder and
pooling, one text key per key record, protocol.json. Expected values are re-derived here with pandas from
the metadata file and from the authors' description, not by calling the code under test."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.models.multimodal import create_multimodal_model, load_multimodal_model
from bioscan5m.models.text import PADDED_TEXT_TOKENS, taxonomy_text, tokenize_texts
from bioscan5m.tasks.retrieve import _text_keys, evaluate_retrieval, retrieval_protocol

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT_COLUMNS = ["order", "family", "genus", "species"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = write_synthetic_dataset(tmp_path_factory.mktemp("clibd") / "data", 400, images=False, seed=5)
    metadata = pd.read_csv(root / "bioscan5m" / "metadata" / "csv" / "BIOSCAN_5M_Insect_Dataset_metadata.csv",
                           dtype=str, keep_default_na=False)
    return root, metadata


def authors_sentence(row: pd.Series) -> str:
    """CLIBD's label string: order, family, genus, species joined by spaces, a missing name 'not_classified'."""
    return " ".join(row[rank] if row[rank] else "not_classified" for rank in TEXT_COLUMNS)


def test_every_record_has_text_and_missing_ranks_are_not_classified(dataset):
    _, metadata = dataset
    assert (metadata["species"] == "").any() and (metadata["genus"] == "").any()  # the fixture has gaps
    ours = [taxonomy_text(row) for row in metadata[TEXT_COLUMNS].replace("", None).itertuples(index=False)]
    assert ours == [authors_sentence(row) for _, row in metadata.iterrows()]
    # A named required rank is still available as an explicit choice.
    assert taxonomy_text(["Diptera", None, None, None], required="species") is None


def test_text_keys_are_one_per_key_record_or_one_per_distinct_sentence(dataset):
    from bioscan5m.data.records import load_records

    root, metadata = dataset
    keys = load_records(root, split="train+key_unseen")
    model_config = create_multimodal_model("tiny")[0].config
    expected = metadata[metadata["split"].isin(["train", "key_unseen"])]
    sentences, labels = _text_keys(keys, model_config, "per-record")
    assert sorted(sentences) == sorted(authors_sentence(row) for _, row in expected.iterrows())
    assert all(len(codes) == len(expected) for codes in labels.values())
    distinct, _ = _text_keys(keys, model_config, "distinct")
    assert sorted(distinct) == sorted({authors_sentence(row) for _, row in expected.iterrows()})
    assert len(distinct) < len(sentences)


def test_padded_mean_is_the_mean_over_twenty_positions_whatever_the_batch():
    model = create_multimodal_model("tiny", text_vocabulary=["Diptera Culicidae Aedes Aedes albopictus"])[0].eval()
    encoder, tokenizer = model.encoders["text"], model.text_tokenizer
    short, long = "Diptera not_classified not_classified not_classified", "Diptera Culicidae Aedes Aedes albopictus"
    tokens = tokenize_texts(tokenizer, [short, long], pooling="padded-mean")
    assert tokens["input_ids"].shape == (2, PADDED_TEXT_TOKENS)
    with torch.no_grad():
        hidden = encoder.backbone(**tokens).last_hidden_state  # the authors: last_hidden_state.mean(dim=1)
        torch.testing.assert_close(encoder(**tokens), hidden.mean(1))
        alone = tokenize_texts(tokenizer, [short], pooling="padded-mean")
        torch.testing.assert_close(encoder(**alone)[0], encoder(**tokens)[0])
    # The placeholder is two known words and a mark, not letters spelled out or [UNK].
    assert tokenizer.tokenize("not_classified") == ["not", "_", "classified"]


def test_models_saved_before_the_text_settings_keep_their_text(tmp_path):
    model = create_multimodal_model("tiny", text_missing_word="unknown", text_pooling="masked-mean")[0]
    model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    for name in ("text_missing_word", "text_pooling"):
        config.pop(name)
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = load_multimodal_model(tmp_path / "old")[0]
    assert (loaded.config.text_missing_word, loaded.config.text_pooling) == ("unknown", "masked-mean")
    assert loaded.encoders["text"].pooling == "masked-mean"


def test_retrieval_protocol_records_keys_queries_and_deviations(dataset):
    root, metadata = dataset
    model = create_multimodal_model("tiny", modalities=("dna", "text"))[0]
    long = evaluate_retrieval(model, root)
    protocol = retrieval_protocol(model.config, long, "per-record", "flat")
    with_barcode = metadata[metadata["dna_barcode"] != ""]
    n_keys = with_barcode["split"].isin(["train", "key_unseen"]).sum()
    assert protocol["directions"]["dna→dna"] == {"keys": int(n_keys), "seen": int((with_barcode["split"] == "test").sum()),
                                                 "unseen": int((with_barcode["split"] == "test_unseen").sum())}
    assert protocol["directions"]["dna→text"]["keys"] == metadata["split"].isin(["train", "key_unseen"]).sum()
    assert protocol["exact"] and protocol["text"] == {"required_rank": None, "missing_word": "not_classified",
                                                     "pooling": "padded-mean"}
    assert len(protocol["deviations"]) == 1 and protocol["deviations"][0].startswith("DNA embedding")
    other = retrieval_protocol(create_multimodal_model("tiny", text_required_rank="species")[0].config, long,
                               "distinct", "hnsw")
    assert len(other["deviations"]) == 4 and not other["exact"]
