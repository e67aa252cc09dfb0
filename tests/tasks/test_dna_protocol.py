"""Task I as the BarcodeBERT authors run it, re-derived independently with pandas/numpy from their code
(bioscan-ml/BarcodeBERT, branch BIOSCAN-5M: data/data_split.py, barcodebert/datasets.py, finetuning.py) and
compared with what ``benchmark dna`` does: de-duplicated counts, the records each column uses, the tokens of
barcodes with leading N, the classifier's pooling, the frozen-encoder probe, BLAST's first reported hit and
the pretraining records."""

import functools
import itertools
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from bioscan5m.cli import main
from bioscan5m.data.authors_split import authors_deduplicated_ids
from bioscan5m.data.partition import with_barcodes
from bioscan5m.data.records import load_records, resolve_source
from bioscan5m.data.sequences import clean_barcodes
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.errors import BioscanError
from bioscan5m.models.classifier import BarcodeClassifier
from bioscan5m.models.dna import BarcodeBERT
from bioscan5m.models.registry import create_dna_model
from bioscan5m.models.tokenizer import KmerTokenizer
from bioscan5m.tasks.dna_benchmark import FINETUNED, LINEAR, NEAREST, blast_top_hit, run_dna_benchmark
from bioscan5m.tasks.dna_protocol import PAPER_DNA_PROTOCOL, dna_protocol
from bioscan5m.tasks.finetune import finetune
from bioscan5m.train.pretrain import load_pretraining_barcodes

pytestmark = pytest.mark.usefixtures("one_thread")
SPLITS = ("train", "test", "test_unseen")


def _metadata(root) -> pd.DataFrame:
    return pd.read_csv(resolve_source(root), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A synthetic BIOSCAN-5M whose metadata holds the cases that matter to the authors' rule: a test barcode
    first seen (with trailing N) in an earlier pretrain row, a train barcode that differs from another only
    by leading N, and a repeated test_unseen barcode."""
    root = write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), records=4000, images=False, seed=1)
    table = _metadata(root)
    first_pretrain = table.index[table["split"] == "pretrain"][0]
    late_test = table.index[(table["split"] == "test") & (table.index > first_pretrain)][-1]
    table.loc[late_test, "dna_barcode"] = table.loc[first_pretrain, "dna_barcode"] + "NNN"
    train = table.index[table["split"] == "train"]
    table.loc[train[-1], "dna_barcode"] = "NN" + table.loc[train[0], "dna_barcode"]
    unseen = table.index[table["split"] == "test_unseen"]
    table.loc[unseen[-1], "dna_barcode"] = table.loc[unseen[0], "dna_barcode"] + "N"
    edited = tmp_path_factory.mktemp("edited")
    target = edited / resolve_source(root).relative_to(root)
    target.parent.mkdir(parents=True)
    table.to_csv(target, index=False)
    edits = {"test_after_pretrain": table.loc[late_test, "processid"],
             "train_leading_n": table.loc[train[-1], "processid"], "train_plain": table.loc[train[0], "processid"],
             "unseen_first": table.loc[unseen[0], "processid"], "unseen_repeat": table.loc[unseen[-1], "processid"]}
    (edited / "edits.json").write_text(json.dumps(edits))
    return edited


def authors_splits(root) -> dict[str, pd.DataFrame]:
    """data_split.py, written again: rstrip N over the whole file, drop_duplicates (first row kept), then split."""
    frame = _metadata(root)
    frame["nucleotides"] = frame["dna_barcode"].str.rstrip("N")
    frame = frame.drop_duplicates(subset=["nucleotides"])
    return {name: frame[frame["split"] == name] for name in SPLITS}


@functools.cache
def _authors_vocabulary(k: int) -> dict[str, int]:
    return {"".join(p): i + 2 for i, p in enumerate(itertools.product("ACGT", repeat=k))}


def authors_tokens(barcode: str, k: int, max_len: int = 660) -> tuple[list[int], list[int]]:
    """datasets.py's KmerTokenizer with padding, written again: pad with N to max_len, cut k-mers every k,
    vocabulary [MASK] [UNK] + ACGT k-mers in product order, anything else [UNK]; mask 0 from len(x) // k."""
    vocabulary = _authors_vocabulary(k)
    x = barcode[:max_len]
    mask = [1] * (max_len // k)
    mask[len(x) // k:] = [0] * (len(mask) - len(x) // k)
    x = x + "N" * (max_len - len(x))
    return [vocabulary.get(x[i:i + k], 1) for i in range(0, len(x) - k + 1, k)], mask


def test_deduplication_keeps_the_rows_the_authors_keep(dataset):
    expected = authors_splits(dataset)
    kept = set(authors_deduplicated_ids(dataset).to_pylist())
    everything = _metadata(dataset)
    frame = everything.assign(key=everything["dna_barcode"].str.rstrip("N")).drop_duplicates(subset=["key"])
    assert kept == set(frame["processid"])
    # The edited cases: the test row whose barcode an earlier pretrain row holds is gone; the leading-N
    # variant stays; the repeated unseen barcode keeps its first row only.
    assert len(expected["test"]) == (everything["split"] == "test").sum() - _repeats(everything, "test")
    edits = json.loads((dataset / "edits.json").read_text())
    assert edits["test_after_pretrain"] not in kept and edits["unseen_repeat"] not in kept
    assert {edits["train_leading_n"], edits["train_plain"], edits["unseen_first"]} <= kept


def test_the_authors_deduplication_is_read_from_the_cache_the_second_time(dataset, monkeypatch):
    from bioscan5m.data import readers

    first = authors_deduplicated_ids(dataset)
    monkeypatch.setattr(readers, "read_batches", lambda *a, **k: pytest.fail("the metadata file was read again"))
    assert authors_deduplicated_ids(dataset).to_pylist() == first.to_pylist()


def test_deduplication_on_real_barcodes_is_pandas_drop_duplicates(shared_data):
    """90k real BOLD COI-5P barcodes, thousands with leading or trailing N and with gaps: the same rows."""
    source = shared_data / "insect_bold_degobbi" / "insect_bold_records.tsv.gz"
    frame = pd.read_csv(source, sep="\t", dtype=str, usecols=["processid", "markercode", "nucleotides"])
    frame = frame[frame["markercode"] == "COI-5P"]
    assert frame["nucleotides"].str.endswith("N").sum() > 1000 and frame["nucleotides"].str.startswith("N").sum() > 1000
    frame = frame.assign(nucleotides=frame["nucleotides"].str.rstrip("N")).drop_duplicates(subset=["nucleotides"])
    kept = authors_deduplicated_ids(source).to_pylist()
    assert sorted(kept) == sorted(frame["processid"]) and len(kept) == len(set(kept))


def _repeats(frame: pd.DataFrame, split: str) -> int:
    keys = frame["dna_barcode"].str.rstrip("N")
    first = ~keys.duplicated()
    return int(((frame["split"] == split) & ~first).sum())


def test_barcodebert_cleaning_gives_the_authors_tokens_for_leading_n(shared_data):
    table = pd.read_csv(shared_data / "barcodebert_unseen" / "unseen_2024-02-29_aab3f82.tsv", sep="\t")
    barcodes = table["nucleotides"].tolist()
    leading = [b for b in barcodes if b.startswith("N")]
    assert len(leading) > 100  # real BarcodeBERT barcodes: many start with N
    tokenizer = KmerTokenizer.authors(k=8)
    chosen = leading[:40] + barcodes[:40]
    encoded = tokenizer(clean_barcodes(chosen, mode="barcodebert"))
    for row, barcode in enumerate(chosen):
        ids, mask = authors_tokens(barcode.rstrip("N"), k=8)
        assert encoded["input_ids"][row].tolist() == ids
        assert encoded["attention_mask"][row].tolist() == mask
    # The standard cleaning strips leading N and shifts every k-mer of those barcodes.
    standard = tokenizer(clean_barcodes(leading[:40]))
    assert (standard["input_ids"] != encoded["input_ids"][:40]).any(axis=1).all()
    assert clean_barcodes(["NNAC-GTNN"], mode="barcodebert") == ["NNAC-GT"]
    with pytest.raises(BioscanError, match="not a DNA letter"):
        clean_barcodes(["ACGTZ"], mode="barcodebert")


def test_all_positions_pooling_is_the_mean_over_every_position_padding_included():
    torch.manual_seed(0)
    model = create_dna_model("4-2-2-tiny", k=4, hidden=16, intermediate=32, layers=1, heads=2).eval()
    barcodes = ["ACGTACGTTTGACCA", "NNACGTAAACCCGGGTTTACGTACGTAGCTAGCTTT"]
    encoded = model.tokenizer(barcodes, return_tensors="pt")
    with torch.no_grad():
        hidden = model.bert(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
    expected = hidden.mean(1).numpy()  # finetuning.py: hidden_states[-1].mean(1) over all 660 // k positions
    assert hidden.shape[1] == 660 // 4
    np.testing.assert_allclose(embed_barcodes(model, barcodes, pooling="all-positions"), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(embed_barcodes(model, barcodes), expected, atol=1e-4)  # masked mean differs
    classifier = BarcodeClassifier(model, "species", ["a", "b", "c"], pooling="all-positions").eval()
    with torch.no_grad():
        logits = classifier(encoded["input_ids"], encoded["attention_mask"])
        np.testing.assert_allclose(logits.numpy(), classifier.head(torch.from_numpy(expected)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embed_barcodes(classifier, barcodes), logits.numpy(), rtol=1e-5, atol=1e-5)


def test_frozen_encoder_probe_trains_only_the_linear_layer(dataset, tmp_path):
    torch.manual_seed(0)
    model_dir = create_dna_model("4-2-2-tiny", k=6, hidden=16, intermediate=32, layers=1,
                                 heads=2).save_pretrained(tmp_path / "tiny")
    original = BarcodeBERT.from_pretrained(model_dir)
    result = finetune(model_dir, dataset, tmp_path / "probe", steps=3, batch_size=16, lr=1e-2,
                      freeze_encoder=True, pooling="all-positions", cleaning="barcodebert", random_offset=True,
                      weight_decay=0.0, grad_clip=None, precision="fp32", device="cpu")
    probed = BarcodeClassifier.from_pretrained(tmp_path / "probe")
    assert probed.pooling == "all-positions"
    for name, value in original.state_dict().items():
        assert torch.equal(value, probed.encoder.state_dict()[name]), name
    assert result.scores is not None and result.training.steps == 3


@pytest.mark.slow
def test_blast_top_hit_is_the_first_hit_of_the_authors_command(dataset, tmp_path):
    if shutil.which("blastn") is None:
        pytest.skip("BLAST+ is not installed")
    records = with_barcodes(load_records(dataset, split="train+test_unseen",
                                         columns=["dna_barcode", "split", "genus", "species"]))
    train = records.filter(records.column("split") == "train")
    queries = records.filter(records.column("split") == "test_unseen")
    scores, predictions = blast_top_hit(train, queries, ranks=("genus",), cleaning="barcodebert",
                                        hit="first-reported")
    # README of their branch: makeblastdb -in train.fas -dbtype nucl; blastn -query q.fas -db ... -outfmt 6.
    keys, asked = train.barcodes(mode="barcodebert"), queries.barcodes(mode="barcodebert")
    (tmp_path / "train.fas").write_text("".join(f">k{i}\n{s}\n" for i, s in enumerate(keys)))
    (tmp_path / "q.fas").write_text("".join(f">q{i}\n{s}\n" for i, s in enumerate(asked)))
    subprocess.run(["makeblastdb", "-in", "train.fas", "-dbtype", "nucl", "-out", "train.fas"], cwd=tmp_path,
                   check=True, capture_output=True)
    subprocess.run(["blastn", "-query", "q.fas", "-db", "train.fas", "-out", "hits.tsv", "-outfmt", "6"],
                   cwd=tmp_path, check=True, capture_output=True)
    hits = pd.read_csv(tmp_path / "hits.tsv", sep="\t", header=None).drop_duplicates(subset=[0])
    genus = np.asarray(train.column("genus"), dtype=object)
    expected = np.full(len(queries), None, dtype=object)
    expected[hits[0].str[1:].astype(int)] = genus[hits[1].str[1:].astype(int)]
    assert predictions["predicted_genus"].tolist() == expected.tolist()
    truth = np.asarray(queries.column("genus"), dtype=object)
    assert scores["micro"].iloc[0] == pytest.approx(np.mean(expected == truth))


@pytest.fixture(scope="module")
def benchmark(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    model_dir = create_dna_model("4-2-2-tiny", k=6, hidden=16, intermediate=32, layers=1,
                                 heads=2).save_pretrained(out / "tiny")
    result = run_dna_benchmark(dataset, model_dir, out / "run", model_name="tiny", baselines=("kmer-profile-4",),
                               blast=shutil.which("blastn") is not None, epochs=1, batch_size=64,
                               probe_epochs=1, device="cpu")
    return result, out / "run"


@pytest.mark.slow
def test_benchmark_protocol_json_counts_equal_the_authors_split(dataset, benchmark):
    result, out = benchmark
    record = json.loads((out / "protocol.json").read_text())
    assert record == json.loads(json.dumps(result.protocol))
    expected = authors_splits(dataset)
    everything = _metadata(dataset)
    for name in SPLITS:
        counts = record["splits"][name]
        assert counts["records"] == (everything["split"] == name).sum()
        assert counts["records_used"] == counts["distinct_sequences"] == len(expected[name])
    assert record["protocol"] == "paper" and record["settings"]["cleaning"] == "barcodebert"
    # Training length: 1 epoch of the de-duplicated, labelled train records at batch 64, last batch dropped.
    n_train = (expected["train"]["species"] != "").sum()
    tuned = record["columns"][f"tiny: {FINETUNED}"]
    assert tuned["steps"] == n_train // 64 and tuned["epochs"] == 1 and tuned["pooling"] == "all-positions"
    assert tuned["optimizer"] == "AdamW" and tuned["lr"] == pytest.approx(2.5e-5)
    assert tuned["splits"]["test"]["records_used"] == len(expected["test"])
    probe = record["columns"][f"tiny: {LINEAR}"]
    assert probe["trained"] == "linear layer only" and probe["steps"] == n_train // 64
    nearest = record["columns"][f"tiny: {NEAREST}"]
    assert nearest["splits"]["test_unseen"]["records_used"] == len(expected["test_unseen"])
    assert record["deviations"] == ["epochs 1 (authors: 35)", "batch size 64 (authors: 16)",
                                    "probe epochs 1 (authors: 35)"]
    assert "Deviations from the authors' protocol in force: epochs 1" in (out / "dna_benchmark.md").read_text()
    assert set(pd.read_csv(out / "dna_benchmark_details.tsv", sep="\t")["protocol"]) == {"paper*"}


@pytest.mark.slow
def test_each_column_scores_the_deduplicated_records(dataset, benchmark):
    result, out = benchmark
    expected = authors_splits(dataset)
    for folder in ("finetuned", "linear_probe"):
        predictions = pd.read_csv(out / folder / "predictions.tsv", sep="\t")
        assert sorted(predictions["processid"]) == sorted(expected["test"]["processid"])
    details = result.details.set_index(["model", "task", "split", "rank"])
    unseen = expected["test_unseen"]
    assert details.loc[("tiny", "1-NN", "test_unseen", "genus"), "queries"] == (unseen["genus"] != "").sum()
    if ("BLAST (top hit)", "BLAST top hit", "test", "species") in details.index:
        assert details.loc[("BLAST (top hit)", "BLAST top hit", "test", "species"), "queries"] == \
            len(expected["test"])


def test_cli_names_the_protocol_and_its_deviations(dataset, tmp_path, capsys):
    code = main(["benchmark", "dna", "--data", str(dataset), "--out", str(tmp_path / "b"), "--baselines",
                 "kmer-profile-3", "--no-blast", "--protocol", "bioscan5m", "--probe-epochs", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and "the bioscan5m protocol" in printed and "deduplicate none (authors: whole-dataset)" in printed
    record = json.loads((tmp_path / "b" / "protocol.json").read_text())
    everything = _metadata(dataset)
    assert record["splits"]["test"]["records_used"] == (everything["split"] == "test").sum()
    assert main(["benchmark", "dna", "--data", str(dataset), "--out", str(tmp_path / "p"), "--baselines",
                 "kmer-profile-3", "--no-blast", "--cleaning", "standard", "--linear-probe", "embeddings",
                 "--probe-epochs", "2"]) == 0
    record = json.loads((tmp_path / "p" / "protocol.json").read_text())
    assert record["protocol"] == "paper"
    assert record["deviations"] == ["cleaning standard (authors: barcodebert)",
                                    "linear probe embeddings (authors: frozen-finetune)",
                                    "probe epochs 2 (authors: 35)"]
    assert record["splits"]["test"]["records_used"] == len(authors_splits(dataset)["test"])


def test_protocols_are_the_authors_and_ours():
    paper = PAPER_DNA_PROTOCOL
    assert (paper.epochs, paper.batch_size, paper.lr, paper.weight_decay, paper.grad_clip) == (35, 16, 2.5e-5, 0.0,
                                                                                                None)
    assert paper.deviations() == []
    assert "pooling masked-mean (authors: all-positions)" in dna_protocol("bioscan5m").deviations()
    with pytest.raises(BioscanError, match="unknown protocol"):
        dna_protocol("mine")
    with pytest.raises(BioscanError, match="pooling must be one of"):
        paper.with_options(pooling="max")


def test_pretraining_defaults_to_pretrain_and_other_heldout(dataset, shared_data):
    frame = _metadata(dataset)
    chosen = frame[frame["split"].isin(["pretrain", "other_heldout"])]
    cleaned = [b for b in clean_barcodes(chosen["dna_barcode"]) if b]
    assert sorted(load_pretraining_barcodes(dataset)) == sorted(set(cleaned))
    with pytest.raises(BioscanError, match="takes in test and test_unseen"):
        load_pretraining_barcodes(dataset, "all")
    with pytest.raises(BioscanError, match="takes in test \\("):
        load_pretraining_barcodes(dataset, "seen+pretrain")
    named = frame[frame["split"].isin(["pretrain", "test"])]
    assert len(load_pretraining_barcodes(dataset, "pretrain+test")) == len({b for b in clean_barcodes(
        named["dna_barcode"]) if b})
    # The authors' pre_training.csv: whole-file de-duplication, trailing N stripped, pretrain+other_heldout.
    frame["nucleotides"] = frame["dna_barcode"].str.rstrip("N")
    theirs = frame.drop_duplicates(subset=["nucleotides"])
    theirs = theirs[theirs["split"].isin(["pretrain", "other_heldout"])]["nucleotides"]
    ours = load_pretraining_barcodes(dataset, cleaning="barcodebert", deduplicate="whole-dataset")
    assert sorted(ours) == sorted(theirs[theirs != ""]) and len(ours) < len(cleaned)
    # A source without splits (a BOLD TSV): every record.
    bold = shared_data / "bold_public_datapackage_samples" / "BOLD_Public.18-Dec-2023.sample999.tsv"
    assert load_pretraining_barcodes(bold) == load_pretraining_barcodes(bold, None)
    assert len(load_pretraining_barcodes(bold)) == len({b for b in load_records(bold).barcodes() if b})


def test_pretrain_cli_refuses_test_records_in_one_line(dataset, tmp_path, capsys):
    code = main(["pretrain", "--data", str(dataset), "--split", "all", "--model", "4-2-2-tiny", "--steps", "1",
                 "--out", str(tmp_path / "m")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and "test and test_unseen" in error
    assert not (tmp_path / "m").exists()


def test_cycle_momentum_is_torch_onecycle_beta1(tmp_path):
    from bioscan5m.train.engine import TrainConfig, train

    steps, applied = 23, []
    model = torch.nn.Linear(3, 2)
    data = [(torch.randn(3), torch.tensor(1)) for _ in range(8)]
    group = {"params": list(model.parameters()), "weight_decay": 0.0}  # the optimizer keeps this dict

    def step(module, batch, ctx):
        applied.append((group["betas"][0], group["lr"]))  # what the engine set for this step
        return {"loss": torch.nn.functional.cross_entropy(module(batch[0]), batch[1]), "samples": len(batch[0])}

    train(model, step, data, TrainConfig(tmp_path, steps=steps, batch_size=4, lr=1e-3, cycle_momentum=True,
                                         device="cpu", precision="fp32", log_every=1), param_groups=[group],
          save_model=lambda trained, out: None)
    # torch's OneCycleLR on a dummy AdamW, read step by step: beta1 and the lr factor.
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=steps)
    theirs = []
    for _ in range(steps):
        theirs.append((optimizer.param_groups[0]["betas"][0], optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    from bioscan5m.train.schedules import one_cycle, one_cycle_momentum

    ours = [(one_cycle_momentum(s, steps), 1e-3 * one_cycle(s, steps)) for s in range(steps)]
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.array(applied), np.array(theirs), rtol=1e-9, atol=1e-12)
