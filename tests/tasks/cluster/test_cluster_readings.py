"""Task II protocol fidelity: both readings of the per-rank AMI, exact Ward at any size, protocol.json.

Each expected value is re-derived here from the protocol's description with scikit-learn and pandas, not by
calling the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import linkage
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_mutual_info_score

from bioscan5m.cli import main
from bioscan5m.data.records import load_records
from bioscan5m.embeddings.store import Embeddings
from bioscan5m.errors import BioscanError
from bioscan5m.tasks.cluster import (
    ClusteringProtocol,
    evaluate_encoders,
    make_planted_hierarchy,
    zero_shot_clustering,
)
from bioscan5m.tasks.cluster.ward import exact_ward_children

RANKS = ("order", "family", "subfamily", "genus", "species")
NO_REDUCTION = ClusteringProtocol(reducer="none")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """600 records of a planted 4-level taxonomy as a BOLD-style TSV, with gaps: no subfamily for most
    records, no genus and species for some (as in BIOSCAN-5M), and their vectors."""
    vectors, levels = make_planted_hierarchy(600, (3, 4, 3, 3), dim=16, seed=3)
    rng = np.random.default_rng(0)
    ids = [f"P{i:04d}" for i in range(len(vectors))]
    table = pd.DataFrame({
        "processid": ids,
        "phylum_name": "Arthropoda",
        "class_name": "Insecta",
        "order_name": [f"Order{a}" for a in levels[:, 0]],
        "family_name": [f"Family{b}" for b in levels[:, 1]],
        "subfamily_name": [f"Subfamily{b}" if rng.random() < 0.3 else "" for b in levels[:, 1]],
        "genus_name": [f"Genus{c}" for c in levels[:, 2]],
        "species_name": [f"Genus{c} species{d}" for c, d in zip(levels[:, 2], levels[:, 3])],
        "nucleotides": "ACGT" * 10,
    })
    unnamed = rng.random(len(table)) < 0.1
    table.loc[unnamed, ["genus_name", "species_name"]] = ""
    path = tmp_path_factory.mktemp("planted") / "planted.tsv"
    table.to_csv(path, sep="\t", index=False)
    records = load_records(path, cache_dir=tmp_path_factory.mktemp("cache"))
    embeddings = Embeddings(ids=np.array(ids, dtype=object), vectors=vectors, manifest={"encoder": {"name": "planted"}})
    return table.replace("", np.nan), records, embeddings


def ward(vectors: np.ndarray, k: int) -> np.ndarray:
    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(vectors)


def test_per_rank_reading_clusters_each_ranks_labelled_records_into_its_classes(planted):
    table, records, embeddings = planted
    result = zero_shot_clustering(embeddings, records, RANKS, NO_REDUCTION).set_index("rank")
    for rank in RANKS:
        names = table[f"{rank}_name"]
        labelled = names.notna().to_numpy()
        k = names[labelled].nunique()
        expected = adjusted_mutual_info_score(names[labelled], ward(embeddings.vectors[labelled], k))
        assert result.loc[rank, "n_records"] == labelled.sum()
        assert result.loc[rank, "n_classes"] == k
        assert result.loc[rank, "ami"] == pytest.approx(expected, abs=1e-9), rank


def test_species_cut_reading_scores_one_species_clustering_against_every_rank(planted):
    table, records, embeddings = planted
    result = zero_shot_clustering(embeddings, records, RANKS, ClusteringProtocol(reducer="none",
                                                                                  reading="species-cut"))
    result = result.set_index("rank")
    species = table["species_name"].fillna("(missing)")
    clusters = ward(embeddings.vectors, species.nunique())  # the missing species is one more class
    for rank in RANKS:
        truth = table[f"{rank}_name"].fillna("(missing)")
        assert result.loc[rank, "n_records"] == len(table)
        assert result.loc[rank, "n_classes"] == truth.nunique()
        assert result.loc[rank, "n_clusters"] == species.nunique()
        assert result.loc[rank, "ami"] == pytest.approx(adjusted_mutual_info_score(truth, clusters), abs=1e-9)
    # The readings differ where labels are missing, and agree where every record is labelled.
    per_rank = zero_shot_clustering(embeddings, records, RANKS, NO_REDUCTION).set_index("rank")
    assert result.loc["subfamily", "ami"] != pytest.approx(per_rank.loc["subfamily", "ami"], abs=1e-3)


def test_unknown_reading_is_refused():
    with pytest.raises(BioscanError, match="unknown reading 'figure'; choose from per-rank, species-cut"):
        ClusteringProtocol(reading="figure")


def test_memory_frugal_exact_ward_builds_the_same_tree_as_scipy():
    vectors, _ = make_planted_hierarchy(1500, (4, 5, 5), dim=12, seed=1)
    x = vectors.astype(np.float64)
    scipy_tree = linkage(x, method="ward")[:, :2].astype(np.int64)
    assert np.array_equal(exact_ward_children(x, memory_budget=0), scipy_tree)  # fastcluster, O(N·D) memory
    assert np.array_equal(exact_ward_children(x, memory_budget=1 << 40), scipy_tree)


def test_protocol_json_records_reading_k_per_rank_and_deviations(planted, tmp_path):
    table, records, embeddings = planted
    evaluate_encoders({"planted": embeddings}, records, tmp_path / "paper", RANKS, ClusteringProtocol(reducer="pca"),
                      scatter_rank=None, reuse_reduced=False)
    record = json.loads((tmp_path / "paper" / "protocol.json").read_text())
    assert record["reading"] == "per-rank"
    ranks = record["encoders"]["planted"]["ranks"]
    for rank in RANKS:
        names = table[f"{rank}_name"].dropna()
        assert (ranks[rank]["records"], ranks[rank]["k"]) == (len(names), names.nunique())
        assert ranks[rank]["clusterer"] == "ward" and ranks[rank]["exact"]
    assert record["deviations"] == ["reducer pca (paper: umap)"]

    evaluate_encoders({"planted": embeddings}, records, tmp_path / "knn", RANKS,
                      ClusteringProtocol(reducer="none", exact_limit=100), scatter_rank=None, reuse_reduced=False)
    record = json.loads((tmp_path / "knn" / "protocol.json").read_text())
    assert record["encoders"]["planted"]["ranks"]["species"]["clusterer"] == "ward-knn"
    assert "approximate Ward (ward-knn) above 100 records" in record["deviations"]
    assert any("ward-knn) at order" in line for line in record["deviations"])


def test_cluster_command_takes_the_reading(planted, tmp_path, capsys):
    table, records, embeddings = planted
    embeddings.save(tmp_path / "emb")
    code = main(["cluster", "--embeddings", str(tmp_path / "emb"), "--labels", str(records.source),
                 "--out", str(tmp_path / "out"), "--reducer", "none", "--reading", "species-cut",
                 "--scatter-rank", "none", "--ranks", *RANKS])
    assert code == 0
    record = json.loads((tmp_path / "out" / "protocol.json").read_text())
    assert record["reading"] == "species-cut"
    assert record["encoders"]["planted"]["ranks"]["subfamily"]["records"] == len(table)
    assert "protocol: the paper's, species-cut reading; deviations from it: reducer none (paper: umap)" in (
        capsys.readouterr().out)
