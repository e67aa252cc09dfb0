"""BLAST+ and VSEARCH wrappers on a tiny set of real BOLD barcodes."""

import numpy as np
import pytest

from bioscan5m.data.records import load_records
from bioscan5m.errors import BioscanError
from bioscan5m.peers.blast import HIT_COLUMNS, blast_top_hits
from bioscan5m.peers.programs import find_program
from bioscan5m.peers.vsearch import vsearch_top_hits


@pytest.fixture(scope="module")
def tiny_set(shared_data):
    """10 reference records and 1 held-out query for each of 3 congeneric species (Amara, Carabidae)."""
    records = load_records(shared_data / "insect_bold_degobbi" / "insect_bold_records.tsv.gz",
                           columns=["genus", "species", "dna_barcode"], use_cache=False)
    frame = records.to_pandas().assign(barcode=records.barcodes(clean=True, iupac="mask"))
    frame = frame[(frame["genus"] == "Amara") & (frame["barcode"].str.len() >= 600)].sort_values("processid")
    chosen = sorted(frame["species"].value_counts().loc[lambda c: c >= 11].index)[:3]
    reference, queries = [], []
    for species in chosen:
        rows = frame[frame["species"] == species]
        reference.append(rows.iloc[:10])
        queries.append(rows.iloc[[10]])
    import pandas as pd

    return pd.concat(reference).reset_index(drop=True), pd.concat(queries).reset_index(drop=True)


@pytest.mark.parametrize("search", [blast_top_hits, vsearch_top_hits], ids=["blast", "vsearch"])
def test_top_hit_is_the_right_species(tiny_set, search):
    reference, queries = tiny_set
    assert queries["species"].nunique() == 3
    hits = search(reference["processid"], reference["barcode"], queries["processid"], queries["barcode"],
                  threads=1, max_hits=1)
    assert tuple(hits.columns) == HIT_COLUMNS
    assert sorted(hits["query_id"]) == sorted(queries["processid"])
    species_of = dict(zip(reference["processid"], reference["species"]))
    truth = dict(zip(queries["processid"], queries["species"]))
    for row in hits.itertuples():
        assert species_of[row.subject_id] == truth[row.query_id]
        assert 0.95 <= row.identity <= 1.0


def test_blast_keeps_several_hits_best_first(tiny_set):
    reference, queries = tiny_set
    hits = blast_top_hits(reference["processid"], reference["barcode"], queries["processid"][:1],
                          queries["barcode"][:1], max_hits=5)
    assert len(hits) == 5
    assert hits["subject_id"].is_unique
    assert (np.diff(hits["bitscore"].to_numpy()) <= 0).all()


def test_missing_program_is_a_clear_error(monkeypatch, tiny_set):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BioscanError, match="'vsearch' was not found on PATH: install VSEARCH"):
        find_program("vsearch")
    reference, queries = tiny_set
    with pytest.raises(BioscanError, match="'makeblastdb' was not found"):
        blast_top_hits(reference["processid"], reference["barcode"], queries["processid"], queries["barcode"])


@pytest.mark.parametrize("search", [blast_top_hits, vsearch_top_hits], ids=["blast", "vsearch"])
def test_reverse_complemented_queries_are_found_on_the_minus_strand(tiny_set, search):
    from bioscan5m.tasks.identify.queries import reverse_complement

    reference, queries = tiny_set
    flipped = [reverse_complement(seq) for seq in queries["barcode"]]
    hits = search(reference["processid"], reference["barcode"], queries["processid"], flipped, threads=1, max_hits=1)
    assert sorted(hits["query_id"]) == sorted(queries["processid"])
    assert (hits["strand"] == "-").all() and (hits["identity"] >= 0.95).all()
    species_of = dict(zip(reference["processid"], reference["species"]))
    truth = dict(zip(queries["processid"], queries["species"]))
    assert all(species_of[s] == truth[q] for q, s in zip(hits["query_id"], hits["subject_id"]))
    forward = search(reference["processid"], reference["barcode"], queries["processid"], queries["barcode"],
                     threads=1, max_hits=1)
    assert (forward["strand"] == "+").all()
