"""Less serial time in identify, the same answers: batches of queries overlapped on several threads (and the
calibration of partial queries run beside the k-mer index's build) give what one at a time gives; the queries are read once; a
query gets the same row alone as among many. On real BOLD barcodes (and vendored real barcodes from a bare clone)."""

import numpy as np
import pandas as pd
import pytest

from bioscan5m.data.schema import TAXONOMIC_RANKS
from bioscan5m.tasks.identify import BarcodeIdentifier, identify
from bioscan5m.tasks.identify import identifier as identifier_module
from bioscan5m.tasks.identify.blocks import InTurnExecutor, overlapped
from bioscan5m.tasks.identify.queries import reverse_complement


@pytest.fixture(scope="module")
def bold(shared_data, tmp_path_factory):
    """A 600-barcode reference file (real BOLD records) and queries from 300 other records: as given,
    reverse-complemented, 150 nt 5' ends and 313 nt 3' ends, some repeated."""
    from bioscan5m.data.records import load_records

    records = load_records(shared_data / "insect_bold_degobbi" / "insect_bold_records.tsv.gz",
                           columns=[*TAXONOMIC_RANKS, "processid", "dna_barcode"], use_cache=False)
    frame = records.to_pandas()
    frame["dna_barcode"] = records.barcodes(clean=True)
    frame = frame[frame["dna_barcode"].str.len() >= 600].drop_duplicates("dna_barcode")
    frame = frame.sample(n=900, random_state=5).reset_index(drop=True)
    path = tmp_path_factory.mktemp("reference") / "reference.tsv"
    frame.iloc[:600].rename(columns={"dna_barcode": "nucleotides"}).to_csv(path, sep="\t", index=False)
    held_out = frame["dna_barcode"].iloc[600:].tolist()
    queries = (held_out + [reverse_complement(s) for s in held_out[::3]] + [s[:150] for s in held_out[::4]]
               + [s[-313:] for s in held_out[1::4]] + held_out[:50])
    return path, {f"q{i}": s for i, s in enumerate(queries)}


def _one_at_a_time(run, items, depth):
    return overlapped(run, items, 1)


def test_overlapped_batches_and_calibration_answer_as_one_at_a_time(bold, monkeypatch):
    reference, queries = bold
    params = {"n_simulated": 150, "threads": 2, "batch_size": 64, "use_cache": False, "progress": False}
    calls = []
    monkeypatch.setattr(identifier_module, "overlapped",
                        lambda run, items, depth: calls.append(depth) or overlapped(run, items, depth))
    together = BarcodeIdentifier(**params).fit(reference)
    table, hits = together.predict_with_hits(queries, 5)
    assert calls == [2]  # the query batches, two at a time
    # One at a time: the query batches, and the fit's tasks (the containment index, then the partial simulated
    # queries' calibration searches, which otherwise run beside the k-mer index's build).
    monkeypatch.setattr(identifier_module, "overlapped", _one_at_a_time)
    monkeypatch.setattr(identifier_module, "side_tasks", lambda threads: InTurnExecutor())
    alone = BarcodeIdentifier(**params).fit(reference)
    assert {f: c.to_dict() for f, c in together.calibration_.items()} == {
        f: c.to_dict() for f, c in alone.calibration_.items()}
    alone_table, alone_hits = alone.predict_with_hits(queries, 5)
    pd.testing.assert_frame_equal(table, alone_table)
    pd.testing.assert_frame_equal(hits, alone_hits)
    # The batches answered every query: fragments, other strand and repeats included.
    assert len(table) == len(queries) and (table["status"] == "ok").mean() > 0.9
    assert (table["strand"] == "-").sum() == len(range(0, 300, 3))


def test_identify_reads_the_queries_once_and_writes_what_predict_gives(bold, tmp_path, monkeypatch):
    reference, queries = bold
    fasta = tmp_path / "queries.fasta"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in queries.items()))
    reads = []
    real = identifier_module.read_queries
    monkeypatch.setattr(identifier_module, "read_queries", lambda q: reads.append(q) or real(q))
    params = {"n_simulated": 150, "threads": 2, "progress": False, "cache_dir": tmp_path / "cache"}
    written = identify(reference, fasta, tmp_path / "out.tsv", **params)
    assert len(reads) == 1
    predicted = BarcodeIdentifier(**params).fit(reference).predict(fasta)
    pd.testing.assert_frame_equal(written, predicted)


def test_the_same_index_and_answers_whatever_the_threads(bold):
    """BLAS sums a block's dot products in an order that depends on the block's rows: the k-mer search's
    blocks do not depend on --threads, so neither do the calibration nor the answers."""
    reference, queries = bold
    params = {"n_simulated": 300, "use_cache": False, "progress": False}
    fitted = [BarcodeIdentifier(threads=threads, **params).fit(reference) for threads in (1, 3)]
    np.testing.assert_array_equal(fitted[0].cosine_to_identity_, fitted[1].cosine_to_identity_)
    one, three = ({f: c.to_dict() for f, c in m.calibration_.items()} for m in fitted)
    assert one == three
    for one_thread, three_threads in zip(*[m.predict_with_hits(queries, 5) for m in fitted]):  # table, hits
        pd.testing.assert_frame_equal(one_thread, three_threads)


@pytest.mark.parametrize("method", ["kmer+align", "kmer"])
def test_a_query_gets_the_same_answer_alone_as_in_a_file(vendored_data, method, monkeypatch):
    """Every number of a query's row is the same whether it is identified alone (one request to the web app)
    or among many (a file): FAISS's cosines differ in the last bits between a query searched alone and a block
    of 20 or more, and so did confidences, novelty scores and near-equal hits' order until the candidates were
    rescored exactly. Real barcodes (BarcodeBERT's unseen species, vendored), in every field form; on the
    exact index and on the approximate one."""
    from bioscan5m.data.records import load_records
    from bioscan5m.tasks.identify import kmer_index

    frame = load_records(vendored_data / "barcodebert_unseen" / "unseen_every10th.tsv.gz", use_cache=False).to_pandas()
    frame = frame[frame["dna_barcode"].str.len() >= 500].reset_index(drop=True)
    reference, held_out = frame.iloc[:300], frame["dna_barcode"].iloc[300:360].tolist()
    forms = (held_out + [reverse_complement(s) for s in held_out[:20]] + [s[:150] for s in held_out[20:40]]
             + [s[-313:] for s in held_out[40:]])
    queries = {f"q{i}": s for i, s in enumerate(forms)}
    for approximate_above in (10**9, 100):
        monkeypatch.setattr(kmer_index, "APPROXIMATE_ABOVE", approximate_above)
        model = BarcodeIdentifier(method, n_simulated=150, threads=1, use_cache=False, progress=False).fit(reference)
        together, hits = model.predict_with_hits(queries, 5)
        alone = [model.predict_with_hits({name: barcode}, 5) for name, barcode in queries.items()]
        pd.testing.assert_frame_equal(pd.concat([a[0] for a in alone], ignore_index=True), together, check_exact=True)
        pd.testing.assert_frame_equal(pd.concat([a[1] for a in alone], ignore_index=True), hits, check_exact=True)
        assert (together["status"] == "ok").mean() > 0.9 and together["species_confidence"].nunique() > 20
