"""Probes of frozen embeddings: 1-NN and linear probe against direct computations, floors on real BOLD barcodes."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioscan5m.cli import main
from bioscan5m.data.partition import holdout_mask, with_barcodes
from bioscan5m.data.records import load_records
from bioscan5m.data.schema import SCORED_RANKS
from bioscan5m.errors import BioscanError
from bioscan5m.models.kmer import kmer_profiles
from bioscan5m.tasks.metrics import macro_accuracy
from bioscan5m.tasks.probes import (
    LinearProbe,
    NearestNeighbourProbe,
    class_lineage,
    linear_probe,
    nearest_neighbour_probe,
    run_probe,
    scored_ranks,
)

BOLD = "insect_bold_degobbi/insect_bold_records.tsv.gz"
COLUMNS = ["dna_barcode", "split", *SCORED_RANKS]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bold(shared_data):
    """The real BOLD COI-5P records (90,815 with a barcode, 902 species) of the degobbi insect set."""
    return with_barcodes(load_records(shared_data / BOLD, columns=COLUMNS))


@pytest.fixture(scope="module")
def bold_subset(bold):
    """Every tenth species of the BOLD set (deterministic), at most 60 records each: ~4,000 records."""
    species = bold.labels("species")
    rank_in_species = pd.Series(np.arange(len(bold))).groupby(species).cumcount().to_numpy()
    return bold.filter((species % 10 == 0) & (rank_in_species < 60))


def test_scored_ranks_go_from_order_down_to_the_trained_rank():
    assert scored_ranks("species") == ("order", "family", "subfamily", "genus", "species")
    assert scored_ranks("genus") == ("order", "family", "subfamily", "genus")
    assert scored_ranks("dna_bin") == (*SCORED_RANKS, "dna_bin")
    with pytest.raises(BioscanError, match="unknown rank 'specis'"):
        scored_ranks("specis")


def test_lineage_maps_each_species_to_its_genus_family_and_order(bold):
    lineage = class_lineage(bold, "species", ("order", "family", "genus", "species"))
    names = bold.label_map("species").names
    where = names.index("Aedes albopictus")
    assert (lineage["genus"][where], lineage["family"][where], lineage["order"][where]) == \
        ("Aedes", "Culicidae", "Diptera")
    assert lineage["species"][where] == "Aedes albopictus" and len(lineage["genus"]) == len(names)
    # Every species of the set has a genus, and it is the first word of its name in BOLD's binomials.
    first_words = np.array([name.split()[0] for name in names], dtype=object)
    assert np.mean(lineage["genus"] == first_words) > 0.99


def test_nearest_neighbour_equals_brute_force_cosine_argmax(bold_subset):
    features = kmer_profiles(bold_subset.barcodes(), k=4)
    labels = bold_subset.labels("genus")
    queries = holdout_mask(bold_subset, 0.2, seed=1)
    probe = NearestNeighbourProbe().fit(features[~queries], labels[~queries])
    similarity, position = probe.kneighbors(features[queries], 1)

    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosine = unit[queries] @ unit[~queries].T
    brute = cosine.argmax(1)
    np.testing.assert_allclose(similarity[:, 0], cosine.max(1), rtol=1e-5)
    # Where the best key is unique, FAISS must pick exactly it (ties between identical barcodes may differ).
    top2 = np.sort(cosine, axis=1)[:, -2:]
    unique = top2[:, 1] - top2[:, 0] > 1e-5
    assert unique.sum() > 100
    np.testing.assert_array_equal(position[unique, 0], brute[unique])
    # And the scored accuracy is the brute-force one (tied keys of identical barcodes share their genus).
    truth = labels[queries]
    assert probe.score(features[queries], truth) == pytest.approx(np.mean(labels[~queries][brute] == truth), abs=2e-3)


def test_linear_probe_scores_are_its_own_weights_argmax_and_match_sklearn(bold_subset):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features = kmer_profiles(bold_subset.barcodes(), k=3)
    labels = bold_subset.labels("species")
    test = holdout_mask(bold_subset, 0.25, seed=0)
    probe = LinearProbe(epochs=20, device="cpu").fit(features[~test], labels[~test])
    assert probe.coef_.shape == (len(np.unique(labels[~test])), 64)

    # The probe is exactly softmax regression with these weights on standardised features.
    standard = (features[test] - features[~test].mean(0)) / features[~test].std(0)
    direct = probe.classes_[(standard @ probe.coef_.T + probe.intercept_).argmax(1)]
    np.testing.assert_array_equal(probe.predict(features[test]), direct)
    assert probe.score(features[test], labels[test]) == pytest.approx(np.mean(direct == labels[test]))
    np.testing.assert_allclose(probe.predict_proba(features[test][:5]).sum(1), 1.0, rtol=1e-5)

    # It lands where scikit-learn's exact optimiser does (both well above 90% on real species).
    scaler = StandardScaler().fit(features[~test])
    reference = LogisticRegression(max_iter=300).fit(scaler.transform(features[~test]), labels[~test])
    ours = probe.score(features[test], labels[test])
    theirs = float(np.mean(reference.predict(scaler.transform(features[test])) == labels[test]))
    assert ours > 0.9 and theirs > 0.9 and abs(ours - theirs) < 0.03


def test_probes_map_predictions_to_every_rank(bold_subset):
    features = kmer_profiles(bold_subset.barcodes(), k=3)
    test = holdout_mask(bold_subset, 0.25, seed=0)
    train_records, test_records = bold_subset.filter(~test), bold_subset.filter(test)
    scores, predictions = linear_probe(features[~test], train_records, features[test], test_records, "species",
                                       epochs=20, device="cpu")
    assert list(scores["rank"]) == ["order", "family", "subfamily", "genus", "species"]
    assert list(scores.columns) == ["rank", "micro", "macro", "queries", "classes"]
    species = scores.set_index("rank").loc["species"]
    assert species["micro"] > 0.9 and species["queries"] == test.sum()
    # A right species implies a right genus, so genus accuracy is at least species accuracy.
    assert scores.set_index("rank").loc["genus", "micro"] >= species["micro"]
    assert species["macro"] == pytest.approx(macro_accuracy(predictions["species"].to_numpy(dtype=object),
                                                            predictions["predicted_species"].to_numpy(dtype=object)))

    # 1-NN: the prediction at every rank is the nearest key's own name.
    scores, predictions = nearest_neighbour_probe(features[~test], train_records, features[test], test_records)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    nearest = (unit[test] @ unit[~test].T).argmax(1)
    genus = train_records.column("genus")[nearest]
    assert np.mean(predictions["predicted_genus"].to_numpy(dtype=object) == genus) > 0.99
    assert list(predictions["processid"]) == list(test_records.ids)


def test_holding_out_whole_species_keeps_their_genus_on_the_key_side(bold):
    held = holdout_mask(bold, 0.1, by="species", seed=0)
    assert 0.1 <= held.mean() < 0.15
    species, genus = bold.column("species"), bold.column("genus")
    assert not set(species[held]) & set(species[~held])  # unseen species
    assert set(genus[held]) <= set(genus[~held])  # their genera are known
    rows = holdout_mask(bold, 0.2, seed=0)
    assert rows.sum() == round(0.2 * len(bold))
    with pytest.raises(BioscanError, match="between 0 and 1"):
        holdout_mask(bold, 1.5)


@pytest.mark.slow
def test_kmer_probes_on_real_bold_barcodes_reach_their_floors(shared_data, tmp_path):
    """Unseen species (whole species held out) are placed in their genus by 1-NN on 4-mer profiles more
    than half the time, against about 12% for always guessing the commonest genus."""
    result = run_probe("knn", shared_data / BOLD, "kmer-profile-4", tmp_path, holdout=0.05, seed=0)
    scores = result.scores.set_index("rank")
    genus_truth = result.predictions["genus"]
    commonest = genus_truth.value_counts(normalize=True).iloc[0]
    assert scores.loc["genus", "micro"] > 0.5 > 2 * commonest
    assert scores.loc["order", "micro"] > 0.9
    assert scores.loc["species", "micro"] == 0.0  # no query species is among the keys
    assert result.n_train + result.n_test == 90_815
    saved = pd.read_csv(result.files["scores"], sep="\t")
    assert saved["micro"].tolist() == pytest.approx(result.scores["micro"].tolist())
    kept = list((Path(os.environ["BIOSCAN5M_CACHE_DIR"]) / "embeddings").glob("kmer-profile-4.*/embeddings.npy"))
    assert len(kept) >= 2 and not (tmp_path / "embeddings").exists()  # keys and queries, in the cache folder


def test_cli_linear_probe_and_its_one_line_errors(shared_data, tmp_path, capsys):
    source = shared_data / "barcodebert_unseen" / "unseen_2024-02-29_aab3f82.tsv"
    code = main(["probe", "linear", "--model", "kmer-profile-3", "--data", str(source), "--holdout", "0.3",
                 "--rank", "order", "--out", str(tmp_path), "--epochs", "10", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "order accuracy" in out
    scores = pd.read_csv(tmp_path / "linear_probe.tsv", sep="\t").set_index("rank")
    assert list(scores.index) == ["order"] and scores.loc["order", "micro"] > 0.8  # 13 orders
    predictions = pd.read_csv(tmp_path / "linear_probe_predictions.tsv", sep="\t")
    assert list(predictions.columns) == ["processid", "order", "predicted_order"]

    for argv, message in [
        (["--rank", "specis"], "unknown rank 'specis'"),
        ([], "no BIOSCAN-5M split assignments"),
        (["--holdout", "0.2", "--holdout-by", "genus", "--rank", "subfamily"], "has no subfamily labels"),
    ]:
        code = main(["probe", "knn", "--model", "kmer-profile", "--data", str(source), "--out", str(tmp_path),
                     *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
