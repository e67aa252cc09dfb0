"""Model folders in Hugging Face form: AutoTokenizer / AutoModel* give the project's ids and outputs, the
fine-tuned classifier loads as AutoModelForSequenceClassification, model cards, and ``bioscan5m classify``."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

import bioscan5m.models.hf_classifier  # noqa: F401  (registers model_type "barcodebert")
from bioscan5m.cli import main
from bioscan5m.data.sequences import clean_barcodes
from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.errors import BioscanError
from bioscan5m.models.classifier import BarcodeClassifier
from bioscan5m.models.dna import BarcodeBERT
from bioscan5m.models.hf_tokenizer import hf_tokenizer, save_hf_tokenizer
from bioscan5m.models.registry import create_dna_model
from bioscan5m.models.tokenizer import KmerTokenizer
from bioscan5m.tasks.classify import classify_barcodes
from bioscan5m.tasks.finetune import finetune

pytestmark = pytest.mark.usefixtures("one_thread")

DEGOBBI = "insect_bold_degobbi/insect_bold_records.tsv.gz"
#: Barcodes the cleaning has to handle besides real ones: case, gaps and whitespace, N at the ends and
#: inside, RNA's U, other IUPAC codes, longer than 660 nt, a partial last k-mer, only N, empty.
EDGE_CASES = [
    "", "N" * 40, "acgtacgtTTGGCCAA", "nnnACGT-ACGT..ACGT ACGT\tAC\nGTnn", "ACGURYKMACGTACGU" * 3,
    "ACGTTGCA" * 100, "N" * 30 + "ACGTTGCA" * 90 + "NNNN" + "ACGT" * 30, "ACGTACG", "ACGTACGTACGTA",
    "ACGTTGCA" * 82 + "ACGN" + "NNNN" + "GG" * 40, "-" * 20 + "acgtnacgtn" * 70,
]


@pytest.fixture(scope="module")
def degobbi(shared_data) -> pd.DataFrame:
    """The first 8,000 rows of the degobbi BOLD table (COI-5P rows, many with gaps '-' and N)."""
    table = pd.read_csv(shared_data / DEGOBBI, sep="\t", dtype=str, nrows=8000, keep_default_na=False)
    return table[(table["markercode"] == "COI-5P") & (table["nucleotides"] != "")]


@pytest.fixture(scope="module")
def real_barcodes(unseen_barcodes, degobbi) -> list[str]:
    """4,278 BarcodeBERT unseen barcodes (N, > 660 nt), 1,500 raw BOLD ones (gaps '-', N, IUPAC codes), 300 of
    those in lower or mixed case, and the edge cases."""
    bold = degobbi["nucleotides"].iloc[:1500].tolist()
    cased = [s.lower() if i % 2 else s[:300].lower() + s[300:] for i, s in enumerate(bold[:300])]
    return unseen_barcodes + bold + cased + EDGE_CASES


def tiny_encoder(k: int = 6) -> BarcodeBERT:
    torch.manual_seed(0)
    return create_dna_model("4-2-2-tiny", k=k, hidden=32, intermediate=64, layers=1, heads=2)


@pytest.mark.slow
def test_auto_tokenizer_gives_the_project_ids_on_real_barcodes(tmp_path, real_barcodes):
    raw = real_barcodes
    assert sum("-" in s for s in raw) > 500 and sum("N" in s for s in raw) > 1000
    assert sum(len(s) > 660 for s in raw) > 300 and sum(s != s.upper() for s in raw) > 300
    for name, tokenizer, count in [("ours-8", KmerTokenizer(8), len(raw)),
                                   ("authors-8", KmerTokenizer.authors(8), 600),
                                   ("ours-5-300nt", KmerTokenizer(5, max_length=300), 600)]:
        save_hf_tokenizer(tokenizer, tmp_path / name)
        hf = AutoTokenizer.from_pretrained(tmp_path / name)
        seqs = raw[:: len(raw) // count] + EDGE_CASES  # a spread over every kind of barcode
        expected = tokenizer.encode(clean_barcodes(seqs))
        got = hf(seqs, padding="max_length", return_tensors="np")
        assert set(got) == {"input_ids", "attention_mask"}, name
        assert got["input_ids"].shape == expected["input_ids"].shape == (len(seqs), tokenizer.n_tokens)
        np.testing.assert_array_equal(got["input_ids"], expected["input_ids"], err_msg=name)
        np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"], err_msg=name)
        # Without padding each barcode gets exactly its real tokens.
        unpadded = hf(EDGE_CASES)["input_ids"]
        tail = expected["input_ids"][-len(EDGE_CASES):]
        tail_mask = expected["attention_mask"][-len(EDGE_CASES):]
        assert [list(ids) for ids in unpadded] == [row[m == 1].tolist() for row, m in zip(tail, tail_mask)]


def test_tokenizer_json_cleans_like_the_project(tmp_path):
    """Spelled-out pieces, independent of KmerTokenizer: what the normalizer and pre-tokenizer make."""
    tokenizer = KmerTokenizer(4, max_length=16)
    hf = hf_tokenizer(tokenizer)

    def pieces(text: str) -> list[str]:
        return [token for token in hf.encode(text).tokens if token != "[PAD]"]

    assert pieces("nnacgt-acgt..tt\nGGCCN") == ["ACGT", "ACGT", "TTGG"]  # CC: a partial last 4-mer is padding
    assert pieces("ACGU" * 2 + "ACNT") == ["ACGT", "ACGT", "[UNK]"]  # U is T; N inside gives [UNK]
    assert pieces("AAAA" * 3 + "CCCCGGGG") == ["AAAA"] * 3 + ["CCCC"]  # cut to max_length = 16 nt
    assert pieces("NNNN") == [] and pieces("") == []
    assert hf.encode("ACGT").ids == [tokenizer.token_id("ACGT")] + [tokenizer.pad_token_id] * 3
    assert hf.encode("ACGT").attention_mask == [1, 0, 0, 0]
    # 660 nt cleaning cut first, then the trailing N it leaves are stripped (as clean_barcode does).
    hf8 = hf_tokenizer(KmerTokenizer(8))
    cut = "ACGTTGCA" * 82 + "ACNN" + "ACGTACGT"  # 656 + 4 nt: the cut leaves "ACNN" → "AC", a partial k-mer
    assert hf8.encode(cut).attention_mask.count(1) == 82
    with pytest.raises(BioscanError, match="only non-overlapping"):
        hf_tokenizer(KmerTokenizer(4, stride=2))


def test_saved_folder_loads_with_auto_classes_and_gives_the_same_outputs(tmp_path, vendored_unseen_barcodes):
    model = tiny_encoder().eval()
    folder = model.save_pretrained(tmp_path / "model")
    assert {"tokenizer.json", "tokenizer_config.json", "README.md", "config.json"} <= {p.name for p in folder.iterdir()}
    raw = vendored_unseen_barcodes[:40]  # MLM logits over 4,101 6-mers: 40 barcodes take 70 MB
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(raw, padding=True, return_tensors="pt")
    ours = model.tokenizer.encode(clean_barcodes(raw), return_tensors="pt")
    width = batch["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"], ours["input_ids"][:, :width])

    encoder = AutoModel.from_pretrained(folder, add_pooling_layer=False)
    mlm = AutoModelForMaskedLM.from_pretrained(folder)
    assert type(encoder).__name__ == "BertModel" and type(mlm).__name__ == "BertForMaskedLM"
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
        logits = mlm(**batch).logits
        expected = model(batch["input_ids"], batch["attention_mask"],
                         masked_positions=batch["attention_mask"].bool())
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(hidden[mask], expected.hidden[mask])
    torch.testing.assert_close(logits[mask], expected.logits)
    weights = batch["attention_mask"].unsqueeze(-1)
    embedding = ((hidden * weights).sum(1) / weights.sum(1)).numpy()
    np.testing.assert_allclose(embedding, embed_barcodes(model, clean_barcodes(raw)), rtol=1e-5, atol=1e-6)


def test_model_card_front_matter_and_facts(tmp_path, vendored_unseen_barcodes, capsys):
    fasta = tmp_path / "barcodes.fasta"
    fasta.write_text("".join(f">b{i}\n{seq}\n" for i, seq in enumerate(vendored_unseen_barcodes[:48])))
    out = tmp_path / "pretrained"
    code = main(["pretrain", "--data", str(fasta), "--model", "4-2-2-tiny", "--out", str(out), "--steps", "2",
                 "--batch-size", "8", "--save-every", "0", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    text = (out / "README.md").read_text()
    front, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "fill-mask"
    assert {"dna", "barcodebert", "bioscan-5m"} <= set(meta["tags"])
    assert "`barcodes.fasta`" in body and "| steps | 2 |" in body and "| unique barcodes | 48 |" in body
    assert "| hidden size | 128 |" in body and "AutoTokenizer.from_pretrained" in body and "## Licence" in body
    assert str(tmp_path) not in text  # a card is meant to be published: no local paths
    assert not list(out.glob(".*.part"))  # written atomically, nothing left behind
    hf = AutoTokenizer.from_pretrained(out)
    assert hf("acgtACGTac")["input_ids"] == [KmerTokenizer(4).token_id("ACGT")] * 2


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, degobbi):
    """A tiny classifier fine-tuned on 6 real species (40 raw BOLD records each), 25% of records held out."""
    tmp = tmp_path_factory.mktemp("finetuned")
    counts = degobbi.groupby("species_name").size()
    species = counts[counts >= 40].index[:6]
    table = degobbi[degobbi["species_name"].isin(species)].groupby("species_name").head(40)
    table.to_csv(tmp / "six_species.tsv", sep="\t", index=False)
    result = finetune(tiny_encoder(), tmp / "six_species.tsv", tmp / "species", holdout=0.25, steps=40, lr=5e-3,
                      head_lr_scale=10, device="cpu", log_every=100)
    return result, table.set_index("processid")


@pytest.mark.slow
def test_classifier_loads_as_auto_model_for_sequence_classification(classifier_run):
    result, table = classifier_run
    folder = result.directory
    held_out = result.predictions["processid"].tolist()
    raw = table.loc[held_out, "nucleotides"].tolist()
    ours = BarcodeClassifier.from_pretrained(folder)
    expected = embed_barcodes(ours, clean_barcodes(raw), device="cpu")

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "BarcodeBertForSequenceClassification" and not model.training
    assert model.config.id2label == dict(enumerate(ours.class_names))
    assert model.config.label2id == {name: i for i, name in enumerate(ours.class_names)}
    with torch.no_grad():
        logits = model(**tokenizer(raw, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert (logits.argmax(1) == expected.argmax(1)).all()
    # One barcode alone, unpadded, gets the same scores as in the padded batch.
    with torch.no_grad():
        alone = model(**tokenizer(raw[:1], return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(alone, expected[:1], rtol=1e-5, atol=1e-5)
    # transformers' own text-classification pipeline reads the folder too, labels from id2label.
    classify = pipeline("text-classification", model=str(folder), top_k=2)
    best = [row[0]["label"] for row in classify(raw[:5])]
    assert best == [ours.class_names[i] for i in expected[:5].argmax(1)]
    # With labels it trains as a transformers model: a cross-entropy loss.
    labels = torch.as_tensor(expected.argmax(1))
    output = model(**tokenizer(raw, padding=True, return_tensors="pt"), labels=labels)
    assert output.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(torch.as_tensor(expected), labels).item(),
                                               rel=1e-4)

    card = yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])
    assert card["pipeline_tag"] == "text-classification"
    body = (folder / "README.md").read_text()
    species_row = result.scores.set_index("rank").loc["species"]
    assert f"| species | {100 * species_row['micro']:.2f} |" in body and "| steps | 40 |" in body
    assert "six_species.tsv (75% of the records; 25% held out for evaluation)" in body
    assert BarcodeBERT.from_pretrained(folder).hidden_size == 32  # the encoder alone still loads


@pytest.mark.slow
def test_classify_names_held_out_real_barcodes(classifier_run, tmp_path, capsys):
    result, table = classifier_run
    held_out = result.predictions["processid"].tolist()
    queries = tmp_path / "queries.fasta.gz"
    with gzip.open(queries, "wt") as handle:
        handle.writelines(f">{pid} held out\n{table.loc[pid, 'nucleotides']}\n" for pid in held_out)
    out = tmp_path / "predictions.tsv"
    code = main(["classify", "--model", str(result.directory), "--queries", str(queries), "--out", str(out),
                 "--top-k", "3", "--device", "cpu"])
    assert code == 0 and f"classified {len(held_out)} barcodes" in capsys.readouterr().out
    predictions = pd.read_csv(out, sep="\t")
    assert list(predictions.columns) == ["id", "label_1", "prob_1", "label_2", "prob_2", "label_3", "prob_3"]
    assert predictions["id"].tolist() == held_out
    probabilities = predictions[["prob_1", "prob_2", "prob_3"]].to_numpy()
    assert (np.diff(probabilities, axis=1) <= 0).all() and (probabilities.sum(1) <= 1 + 1e-5).all()

    truth = table.loc[held_out, "species_name"].to_numpy()
    accuracy = float(np.mean(predictions["label_1"].to_numpy() == truth))
    majority = pd.Series(truth).value_counts(normalize=True).iloc[0]
    assert len(held_out) == 60 and majority < 0.3
    assert accuracy > 0.8 > 2.5 * majority  # 97% after 40 steps from random weights
    # The same as the library's own predictions (finetune's evaluation and BarcodeClassifier.top_k).
    assert predictions["label_1"].tolist() == result.predictions["predicted_species"].tolist()
    plain = tmp_path / "queries.fasta"  # the library function, on the same barcodes uncompressed
    plain.write_bytes(gzip.decompress(queries.read_bytes()))
    again = classify_barcodes(result.directory, plain, tmp_path / "again.tsv", top_k=3, device="cpu")
    pd.testing.assert_frame_equal(again, predictions, check_exact=False, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "again.tsv", "predictions.tsv", "queries.fasta", "queries.fasta.gz"]  # nothing beside the inputs


@pytest.mark.slow
def test_classify_errors_are_one_line(classifier_run, tmp_path, capsys):
    result, _ = classifier_run
    encoder_only = tiny_encoder().save_pretrained(tmp_path / "encoder")
    queries = tmp_path / "q.fasta"
    queries.write_text(">a\nACGTACGTACGT\n")
    for argv, message in [
        (["--model", str(encoder_only)], "not a fine-tuned classifier"),
        (["--model", str(tmp_path / "missing")], "no such model folder"),
        (["--model", str(result.directory), "--top-k", "0"], "argument --top-k: '0' must be at least 1"),
        (["--model", str(result.directory), "--queries", str(tmp_path / "none.fasta")], "none.fasta"),
    ]:
        argv = ["classify", "--queries", str(queries), "--out", str(tmp_path / "p.tsv"), *argv]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "p.tsv").exists()


def test_classifier_folders_of_earlier_versions_still_load(tmp_path):
    """Before the layer moved into model.safetensors it was saved beside it, in classifier.safetensors."""
    classifier = BarcodeClassifier(tiny_encoder(), "species", ["a", "b", "c"]).eval()
    torch.nn.init.normal_(classifier.head.weight)
    barcodes = ["ACGTTGCA" * 80, "TTGACCAG" * 70, "nnACGTTGCA-" * 40]
    expected = embed_barcodes(classifier, clean_barcodes(barcodes), device="cpu")
    old = classifier.encoder.save_pretrained(tmp_path / "old")  # the encoder folder, as earlier versions wrote it
    save_file({key: value.contiguous() for key, value in classifier.head.state_dict().items()},
              str(old / "classifier.safetensors"))
    (old / "classifier.json").write_text(json.dumps({"rank": "species", "classes": ["a", "b", "c"], "lineage": {}}))
    loaded = BarcodeClassifier.from_pretrained(old)
    np.testing.assert_allclose(embed_barcodes(loaded, clean_barcodes(barcodes), device="cpu"), expected, rtol=1e-5)
    (old / "classifier.safetensors").unlink()
    with pytest.raises(BioscanError, match="missing classifier weights"):
        BarcodeClassifier.from_pretrained(old)


@pytest.mark.slow
def test_folders_load_in_a_python_without_bioscan5m(classifier_run, tmp_path):
    """transformers alone (a fresh interpreter that never imports bioscan5m) reads a pretrained folder whole and
    a classifier folder's tokenizer; the classifier model itself needs the registering import."""
    result, _ = classifier_run
    encoder_dir = tiny_encoder().save_pretrained(tmp_path / "encoder")
    barcode = "nnacgtacGTTGCA-ACGTTGCATTGACCAGNNN"
    script = f"""
import json, sys, warnings
warnings.simplefilter("ignore")
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer
ids = [AutoTokenizer.from_pretrained(d)({barcode!r})["input_ids"] for d in ({str(encoder_dir)!r}, {str(result.directory)!r})]
mlm = type(AutoModelForMaskedLM.from_pretrained({str(encoder_dir)!r})).__name__
try:
    AutoModelForSequenceClassification.from_pretrained({str(result.directory)!r})
    refused = ""
except ValueError as error:
    refused = str(error)
assert not any(name.startswith("bioscan5m") for name in sys.modules)
print(json.dumps({{"ids": ids, "mlm": mlm, "refused": refused}}))
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    expected = KmerTokenizer(6).encode(clean_barcodes([barcode]))
    assert answer["ids"] == [expected["input_ids"][0][expected["attention_mask"][0] == 1].tolist()] * 2
    assert answer["mlm"] == "BertForMaskedLM" and "barcodebert" in answer["refused"]


def test_a_classifier_pooled_over_all_positions_loads_with_that_pooling(tmp_path):
    """The BarcodeBERT authors' pooling (every position, padding included) travels in config.json."""
    classifier = BarcodeClassifier(tiny_encoder(), "species", ["a", "b", "c"], pooling="all-positions").eval()
    torch.nn.init.normal_(classifier.head.weight)
    barcodes = ["ACGTTGCA" * 80, "TTGACCAG" * 30, "ACGTTGCAN" * 20]
    expected = embed_barcodes(classifier, clean_barcodes(barcodes), device="cpu")
    folder = classifier.save_pretrained(tmp_path / "all-positions")
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.pooling == "all-positions"
    with torch.no_grad():
        logits = model(**tokenizer(barcodes, padding="max_length", return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    masked = BarcodeClassifier(classifier.encoder, "species", ["a", "b", "c"]).eval()
    masked.head.load_state_dict(classifier.head.state_dict())
    assert not np.allclose(embed_barcodes(masked, clean_barcodes(barcodes), device="cpu"), expected, atol=1e-3)
