"""Fine-tuning BarcodeBERT at species through the engine, evaluation at every rank, the classifier folder."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bioscan5m.cli import main
from bioscan5m.data.partition import with_barcodes
from bioscan5m.data.records import load_records
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.errors import BioscanError
from bioscan5m.models.classifier import BarcodeClassifier
from bioscan5m.models.dna import BarcodeBERT
from bioscan5m.models.registry import create_dna_model
from bioscan5m.tasks.finetune import evaluate_classifier, finetune

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A synthetic BIOSCAN-5M root: 6,000 records, of which about 1,600 train (~90 species), 400 test (~40)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), records=6000, images=False, seed=0)


def tiny_encoder() -> BarcodeBERT:
    """A 1-layer, 32-wide BarcodeBERT on 6-mers: fine-tunes on one CPU core in seconds."""
    torch.manual_seed(0)
    return create_dna_model("4-2-2-tiny", k=6, hidden=32, intermediate=64, layers=1, heads=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_encoder().save_pretrained(tmp_path_factory.mktemp("tiny"))


@pytest.mark.slow
def test_finetuning_a_tiny_model_names_species_far_above_chance(dataset, model_dir, tmp_path, capsys):
    out = tmp_path / "species"
    code = main(["finetune", "--model", str(model_dir), "--data", str(dataset), "--out", str(out), "--steps", "60",
                 "--lr", "5e-3", "--head-lr-scale", "10", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0 and "classifier in" in printed and "test species" in printed

    metrics = pd.read_csv(out / "metrics.tsv", sep="\t").set_index("rank")
    assert list(metrics.index) == ["order", "family", "subfamily", "genus", "species"]
    assert set(metrics["split"]) == {"test"}
    records = load_records(dataset, split="train+test", columns=["species", "split"])
    train = records.filter(records.column("split") == "train")
    test = records.filter(records.column("split") == "test")
    commonest = train.to_pandas()["species"].value_counts().index[0]
    majority = float(np.mean(test.column("species") == commonest))  # always guessing it: 6%
    assert metrics.loc["species", "queries"] == np.sum(test.labels("species") >= 0) > 300
    assert metrics.loc["species", "classes"] == len(set(test.column("species")) - {None}) > 30
    # 60 steps of 32 barcodes (1.2 epochs) from random weights: about 63% of test records to species.
    assert metrics.loc["species", "micro"] > 0.4 > 5 * majority
    # A right species implies a right genus, family and order: accuracy can only grow up the tree.
    micro = metrics["micro"].drop("subfamily")
    assert list(micro) == sorted(micro, reverse=True)

    # The folder is a complete classifier: reloaded, it predicts exactly what was scored.
    classifier = BarcodeClassifier.from_pretrained(out)
    assert classifier.rank == "species" and classifier.ranks == ("order", "family", "subfamily", "genus", "species")
    assert len(classifier.class_names) == len(records.label_map("species"))
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t", keep_default_na=False)
    eval_records = with_barcodes(load_records(dataset, split="test"))
    again, _ = evaluate_classifier(classifier, eval_records, device="cpu")
    assert again["micro"].tolist() == pytest.approx(metrics["micro"].tolist())
    assert list(predictions["processid"]) == list(eval_records.ids)
    assert BarcodeBERT.from_pretrained(out).hidden_size == 32  # the fine-tuned encoder alone
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 60 and log[-1]["loss"] < log[0]["loss"]

    # The engine's checkpoint lets a finished run be resumed (nothing left to train) and re-scored.
    resumed = finetune(model_dir, dataset, out, steps=60, lr=5e-3, head_lr_scale=10, device="cpu", resume=True)
    assert resumed.training.steps == 60
    assert resumed.accuracy("species") == pytest.approx(metrics.loc["species", "micro"])
    with pytest.raises(BioscanError, match="holds checkpoints of an earlier run"):
        finetune(model_dir, dataset, out, steps=60, device="cpu")


def test_classifier_maps_each_class_to_its_lineage_and_round_trips(tmp_path):
    classifier = BarcodeClassifier(tiny_encoder(), "species", ["Aedes albopictus", "Culex pipiens", "Apis mellifera"],
                                   {"order": ["Diptera", "Diptera", "Hymenoptera"],
                                    "genus": ["Aedes", "Culex", "Apis"]})
    names = classifier.names_of(np.array([2, 0, 0]))
    assert list(names.columns) == ["order", "genus", "species"]
    assert names.iloc[0].tolist() == ["Hymenoptera", "Apis", "Apis mellifera"]

    barcodes = ["ACGTTGCA" * 80, "TTGACCAG" * 70, "ACGTTGCA" * 40 + "NNNNGGCA" * 5]
    before = embed_barcodes(classifier.eval(), barcodes, device="cpu")
    classifier.save_pretrained(tmp_path / "clf")
    loaded = BarcodeClassifier.from_pretrained(tmp_path / "clf")
    np.testing.assert_allclose(embed_barcodes(loaded, barcodes, device="cpu"), before, rtol=1e-5, atol=1e-6)
    table = loaded.classify(embed_barcodes(loaded, barcodes, device="cpu"))
    assert list(table.columns) == ["order", "genus", "species", "probability"]
    assert ((table["probability"] > 1 / 3) & (table["probability"] <= 1)).all()
    # The unused masked-LM head stays frozen; the tied token embeddings still train.
    assert not classifier.encoder.mlm.cls.predictions.transform.dense.weight.requires_grad
    assert classifier.encoder.bert.embeddings.word_embeddings.weight.requires_grad

    with pytest.raises(BioscanError, match="not a fine-tuned classifier"):
        BarcodeClassifier.from_pretrained(tmp_path)
    with pytest.raises(BioscanError, match="lineage at genus has 1 names for 3 classes"):
        BarcodeClassifier(tiny_encoder(), "species", ["a", "b", "c"], {"genus": ["x"]})


def test_cli_errors_are_one_line(dataset, model_dir, vendored_data, tmp_path, capsys):
    bold = vendored_data / "barcodebert_unseen" / "unseen_every10th.tsv.gz"
    base = ["finetune", "--model", str(model_dir), "--out", str(tmp_path / "run"), "--steps", "2"]
    for argv, message in [
        (["--data", str(dataset), "--rank", "specis"], "unknown rank 'specis'; choose from phylum"),
        (["--data", str(dataset), "--eval-split", "pretrain"], "split 'pretrain' has no species labels"),
        (["--data", str(dataset), "--train-split", "trian"], "unknown split 'trian'"),
        (["--data", str(bold)], "use --holdout 0.2"),
        (["--data", str(bold), "--holdout", "0.2", "--rank", "subfamily"], "has no subfamily labels"),
    ]:
        code = main(base + argv)
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()  # every error came before training
