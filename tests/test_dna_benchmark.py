"""The Task I benchmark on a synthetic BIOSCAN-5M: the paper's table with reference and measured rows."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bioscan5m.data.partition import with_barcodes
from bioscan5m.data.records import load_records
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.errors import BioscanError
from bioscan5m.models.registry import create_dna_model
from bioscan5m.tasks.dna_benchmark import (
    FINETUNED,
    LINEAR,
    NEAREST,
    TABLE_COLUMNS,
    blast_top_hit,
    paper_rows,
    run_dna_benchmark,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), records=4000, images=False, seed=1)


def test_paper_rows_are_the_published_numbers():
    table = paper_rows().set_index("model")
    assert list(table.columns) == list(TABLE_COLUMNS[1:]) and len(table) == 8
    assert table.loc["BarcodeBERT pretrained on BIOSCAN-5M (8-4-4)", [FINETUNED, LINEAR, NEAREST]].tolist() == \
        [99.28, 94.47, 47.03]
    assert table.loc["BLAST (top hit)", NEAREST] == 58.74 and math.isnan(table.loc["BLAST (top hit)", LINEAR])
    assert set(table["source"]) == {"paper"}


@pytest.mark.slow
def test_benchmark_writes_the_paper_table_with_our_rows(dataset, tmp_path):
    torch.manual_seed(0)
    model_dir = create_dna_model("4-2-2-tiny", k=6, hidden=32, intermediate=64, layers=1,
                                 heads=2).save_pretrained(tmp_path / "tiny")
    out = tmp_path / "bench"
    result = run_dna_benchmark(dataset, model_dir, out, model_name="tiny BarcodeBERT",
                               baselines=("kmer-profile-4",), blast=True, steps=20, lr=5e-3, head_lr_scale=10,
                               probe_epochs=5, device="cpu")

    table = result.table
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["model"].tolist()[8:] == ["tiny BarcodeBERT", "kmer-profile-4", "BLAST (top hit)"]
    assert table["source"].tolist() == ["paper"] * 8 + ["this run"] * 3
    ours = table.iloc[8:].set_index("model")
    assert ours.loc["tiny BarcodeBERT"].notna().all()
    assert math.isnan(ours.loc["kmer-profile-4", FINETUNED]) and math.isnan(ours.loc["BLAST (top hit)", LINEAR])

    # Each headline number is the micro accuracy (%) of its protocol in the per-rank details.
    details = result.details.set_index(["model", "task", "split", "rank"])
    assert ours.loc["tiny BarcodeBERT", FINETUNED] == pytest.approx(
        100 * details.loc[("tiny BarcodeBERT", "fine-tuned", "test", "species"), "micro"])
    assert ours.loc["kmer-profile-4", LINEAR] == pytest.approx(
        100 * details.loc[("kmer-profile-4", "linear probe", "test", "species"), "micro"])
    assert ours.loc["kmer-profile-4", NEAREST] == pytest.approx(
        100 * details.loc[("kmer-profile-4", "1-NN", "test_unseen", "genus"), "micro"])
    assert ours.loc["BLAST (top hit)", NEAREST] == pytest.approx(
        100 * details.loc[("BLAST (top hit)", "BLAST top hit", "test_unseen", "genus"), "micro"])
    # Synthetic species have distinct barcodes: alignment and k-mers name seen species almost always.
    assert ours.loc["BLAST (top hit)", FINETUNED] > 95 and ours.loc["kmer-profile-4", LINEAR] > 90
    # Unseen species are never named right (they are not among the keys).
    assert (result.details.query("split == 'test_unseen' and rank == 'species'")["micro"] == 0).all()

    saved = pd.read_csv(out / "dna_benchmark.tsv", sep="\t")
    assert saved["model"].tolist() == table["model"].tolist()
    assert saved[LINEAR].tolist() == pytest.approx(table[LINEAR].round(2).tolist(), nan_ok=True)
    markdown = (out / "dna_benchmark.md").read_text()
    assert "| model | source | fine-tuned species acc. | linear probe | 1-NN genus (unseen) |" in markdown
    assert "| BLAST (top hit) | paper | 99.78 | – | 58.74 |" in markdown
    assert f"| kmer-profile-4 | this run | – | {ours.loc['kmer-profile-4', LINEAR]:.2f} |" in markdown
    page = result.files["html"].read_text()  # report.html: the same table, as HTML
    assert result.files["html"] == out / "report.html" and page.count("<tr>") == len(table) + 1
    assert f"<td class=\"num\">{ours.loc['kmer-profile-4', LINEAR]:.2f}</td>" in page
    assert (out / "finetuned" / "classifier.json").is_file()
    assert pd.read_csv(out / "dna_benchmark_details.tsv", sep="\t").shape == result.details.shape

    # Run again into the same folder (as `demo` does): the benchmark's own fine-tuning run is replaced, and
    # the same seed gives the same table.
    again = run_dna_benchmark(dataset, model_dir, out, model_name="tiny BarcodeBERT",
                              baselines=("kmer-profile-4",), blast=True, steps=20, lr=5e-3, head_lr_scale=10,
                              probe_epochs=5, device="cpu")
    pd.testing.assert_frame_equal(again.table, table)


def test_blast_top_hit_names_each_query_after_its_best_key(dataset):
    records = with_barcodes(load_records(dataset, split="train+test", columns=["dna_barcode", "split", "genus",
                                                                               "species"]))
    train = records.filter(records.column("split") == "train")
    test = records.filter(records.column("split") == "test")
    # A query identical to a key must take that key's species.
    scores, predictions = blast_top_hit(train, train.filter(np.arange(len(train)) < 50), ranks=("species",))
    assert scores["micro"].iloc[0] > 0.95 and len(predictions) == 50
    scores, predictions = blast_top_hit(train, test, ranks=("genus", "species"))
    assert list(scores["rank"]) == ["genus", "species"]
    assert scores["micro"].iloc[0] >= scores["micro"].iloc[1] > 0.9
    assert list(predictions.columns) == ["processid", "genus", "predicted_genus", "species", "predicted_species"]


def test_benchmark_errors_name_the_problem(dataset, vendored_data, tmp_path):
    bold = vendored_data / "bold_v5" / "BOLD_Public.18-Dec-2023.sample999.tsv.gz"
    with pytest.raises(BioscanError, match="no BIOSCAN-5M split assignments"):
        run_dna_benchmark(bold, None, tmp_path)
    with pytest.raises(BioscanError, match="nothing to benchmark"):
        run_dna_benchmark(dataset, None, tmp_path, baselines=(), blast=False)
    with pytest.raises(BioscanError, match="no such file or directory"):
        run_dna_benchmark(tmp_path / "missing", None, tmp_path)
