"""CLIBD's DNA embedding as the authors compute it (bioscanclip/model/dna_encoder.py:137 and the decoder swap
of its ``num_classes`` branch), offered as ``dna_pooling="authors-softmax-logits"``."""

import json

import pandas as pd
import pytest
import torch

from bioscan5m.models.multimodal import create_multimodal_model, load_multimodal_model
from bioscan5m.models.registry import create_dna_model
from bioscan5m.tasks.retrieve import retrieval_protocol

pytestmark = pytest.mark.usefixtures("one_thread")
BARCODES = ["ACGTTTGACCAGGTACCATTAGGAC", "NNACGTAAACCCGGGTTTACGTACGTAGCTAGCTTTGGA"]


def test_softmax_of_logits_over_every_position_without_mask(tmp_path):
    torch.manual_seed(0)
    dna_dir = create_dna_model("4-2-2-tiny").save_pretrained(tmp_path / "dna")
    model, _, _, tokenizer, _ = create_multimodal_model("tiny", modalities=("image", "dna"), dna_checkpoint=str(dna_dir),
                                                        dna_pooling="authors-softmax-logits")
    model.eval()
    encoded = tokenizer(BARCODES, return_tensors="pt")
    # The authors, written again: their BertForMaskedLM (pretrained transform, decoder swapped for a new
    # hidden → output_dim layer) called on the ids alone, softmax over the logits, mean over positions.
    from transformers import BertForMaskedLM

    theirs = BertForMaskedLM.from_pretrained(dna_dir).eval()
    theirs.cls.predictions.decoder = model.encoders["dna"].head[1]
    with torch.no_grad():
        expected = theirs(encoded["input_ids"]).logits.softmax(dim=-1).mean(dim=1)
        ours = model.encode_dna(encoded["input_ids"], encoded["attention_mask"], normalize=False)
        masked_out = model.encode_dna(encoded["input_ids"], torch.zeros_like(encoded["attention_mask"]),
                                      normalize=False)
    assert ours.shape == (2, model.config.embed_dim)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, masked_out)  # no attention mask is used
    torch.testing.assert_close(ours.sum(1), torch.ones(2))  # a mean of probability vectors, not projected
    model.save_pretrained(tmp_path / "clibd")
    loaded = load_multimodal_model(tmp_path / "clibd")[0].eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_dna(encoded["input_ids"], encoded["attention_mask"]),
                                   model.encode_dna(encoded["input_ids"], encoded["attention_mask"]))
    long = pd.DataFrame({"direction": ["dna→dna"], "queries": ["seen"], "n_keys": [3], "n_queries": [2]})
    protocol = retrieval_protocol(loaded.config, long, "per-record", "flat")
    assert protocol["dna"] == {"pooling": "authors-softmax-logits"}
    assert not [d for d in protocol["deviations"] if d.startswith("DNA embedding")]
    default = retrieval_protocol(create_multimodal_model("tiny", modalities=("image", "dna"))[0].config, long,
                                 "per-record", "flat")
    assert default["deviations"][0].startswith("DNA embedding: padding-aware mean")


def test_retrieval_report_writes_protocol_json_with_or_without_deviations(tmp_path):
    from bioscan5m.data.synthetic import write_synthetic_dataset
    from bioscan5m.report.retrieval import write_retrieval_report
    from bioscan5m.tasks.retrieve import evaluate_retrieval, paper_table

    root = write_synthetic_dataset(tmp_path / "data", 400, images=False, seed=5)
    torch.manual_seed(0)
    for pooling, expected in (("masked-mean", 1), ("authors-softmax-logits", 0)):
        model = create_multimodal_model("tiny", modalities=("dna", "text"), dna_pooling=pooling)[0]
        long = evaluate_retrieval(model, root)
        protocol = retrieval_protocol(model.config, long, "per-record", "flat")
        paths = write_retrieval_report(long, paper_table(long), tmp_path / pooling, protocol)
        saved = json.loads(paths["protocol"].read_text())
        assert len(saved["deviations"]) == expected and saved["dna"] == {"pooling": pooling}
        footnote = "Deviations from the authors' protocol" in paths["markdown"].read_text()
        assert footnote == bool(expected)
