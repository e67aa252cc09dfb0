"""Zero-shot clustering (Task II): AMI, Ward trees exact and scalable, the protocol, the CLI and its plots."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.cluster.hierarchy import linkage
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_mutual_info_score

from bioscan5m.cli import main
from bioscan5m.data.records import load_records
from bioscan5m.embeddings.store import Embeddings, extract_embeddings
from bioscan5m.errors import BioscanError
from bioscan5m.tasks.cluster import (
    PAPER_PROTOCOL,
    ZSC_RANKS,
    ClusteringProtocol,
    WardClusterer,
    combine_embeddings,
    cut_tree,
    evaluate_encoders,
    knn_connectivity,
    make_clusterer,
    make_planted_hierarchy,
    select_species_sample,
    standardize,
    weighted_ward_children,
    zero_shot_clustering,
)

BOLD = "insect_bold_degobbi/insect_bold_records.tsv.gz"
LABEL_COLUMNS = ["dna_barcode", *ZSC_RANKS]


@pytest.fixture(scope="module")
def bold(shared_data):
    """All real BOLD COI-5P records of the staged INSECT table (taxonomy and barcodes only)."""
    return load_records(shared_data / BOLD, columns=LABEL_COLUMNS)


@pytest.fixture(scope="module")
def bold_sample(bold):
    """About 400 real records: every record of randomly drawn species that have 10 to 60 records."""
    species = bold.labels("species")
    counts = np.bincount(species[species >= 0])
    small = np.where((species >= 0) & (counts[np.maximum(species, 0)] <= 60), species, -1)
    return bold.filter(select_species_sample(small, 10, 400, seed=1))


@pytest.fixture(scope="module")
def bold_kmer(bold_sample, tmp_path_factory):
    return extract_embeddings(bold_sample, "kmer-profile-5", tmp_path_factory.mktemp("kmer5"), progress=False)


def test_ami_is_one_for_the_true_partition_and_near_zero_for_a_shuffled_one(bold):
    species = bold.labels("species")
    species = np.random.default_rng(0).choice(species[species >= 0], 20_000, replace=False)
    assert len(np.unique(species)) > 800
    assert adjusted_mutual_info_score(species, species) == pytest.approx(1.0)
    relabelled = np.unique(species, return_inverse=True)[1] * 7 + 3  # names do not matter, only the partition
    assert adjusted_mutual_info_score(species, relabelled) == pytest.approx(1.0)
    shuffled = np.random.default_rng(0).permutation(species)
    assert abs(adjusted_mutual_info_score(species, shuffled)) < 0.01


def test_cut_tree_gives_scikit_learns_ward_partitions():
    vectors, _ = make_planted_hierarchy(400, (3, 4, 5), dim=8, spread=0.9, seed=3)
    tree = WardClusterer().fit(vectors)
    for k in (2, 3, 12, 60, 399):
        expected = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(vectors)
        got = tree.cut(k)
        assert len(np.unique(got)) == k
        assert adjusted_mutual_info_score(expected, got) == pytest.approx(1.0)
    assert np.array_equal(tree.cut(400), np.arange(400))  # every record on its own
    with pytest.raises(BioscanError, match="cannot cut 400 records into 401 clusters"):
        tree.cut(401)


def test_weighted_ward_equals_ward_on_the_clusters_members():
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(60, 5))
    sizes = rng.integers(1, 6, size=60)
    # Ward over the members (each cluster = copies of its centroid) merges the copies first at no cost,
    # then must build the same tree as weighted Ward over the centroids.
    members = np.repeat(centroids, sizes, axis=0)
    owner = np.repeat(np.arange(60), sizes)
    full = linkage(members, method="ward")[:, :2].astype(np.int64)
    weighted = weighted_ward_children(centroids, sizes)
    for k in (2, 5, 17, 40, 60):
        assert adjusted_mutual_info_score(cut_tree(full, k), cut_tree(weighted, k)[owner]) == pytest.approx(1.0)
    unweighted = weighted_ward_children(centroids, np.ones(60))
    plain = linkage(centroids, method="ward")[:, :2].astype(np.int64)
    assert all(adjusted_mutual_info_score(cut_tree(plain, k), cut_tree(unweighted, k)) == pytest.approx(1.0)
               for k in (2, 9, 30))


def test_knn_connectivity_is_symmetric_and_connected():
    from scipy.sparse.csgraph import connected_components

    # Five far-apart blobs: the raw 5-nearest-neighbour graph has five pieces that must be joined.
    rng = np.random.default_rng(1)
    blobs = np.concatenate([rng.normal(loc=100 * i, size=(40, 3)) for i in range(5)])
    graph = knn_connectivity(blobs, n_neighbors=5)
    assert graph.shape == (200, 200)
    assert (graph != graph.T).nnz == 0
    assert connected_components(graph, directed=False)[0] == 1
    assert graph.nnz <= 200 * 6 * 2 + 2 * 2 * 5  # k neighbours (+ self) both ways, plus a few joining links


def test_scalable_ward_is_close_to_exact_ward_on_a_planted_hierarchy():
    vectors, truth = make_planted_hierarchy(4000, (4, 5, 5, 4), dim=24, spread=0.9, seed=0)
    exact = WardClusterer().fit(vectors)
    # 250 top clusters < 400 leaves: coarse levels come from the exact stage, leaves from the graph stage.
    scalable = WardClusterer(n_neighbors=15, top_clusters=250).fit(vectors)
    for level in range(truth.shape[1]):
        k = len(np.unique(truth[:, level]))
        exact_ami = adjusted_mutual_info_score(truth[:, level], exact.cut(k))
        scalable_ami = adjusted_mutual_info_score(truth[:, level], scalable.cut(k))
        assert exact_ami > 0.75  # the top level (4 groups) is the hardest at this spread
        assert abs(exact_ami - scalable_ami) <= 0.02, (level, exact_ami, scalable_ami)


def test_ward_switches_to_the_scalable_tree_only_above_an_explicit_exact_limit():
    assert make_clusterer("ward", 10**6).n_neighbors is None  # the paper: exact Ward at every size
    assert make_clusterer("ward", 20_000, exact_limit=20_000).n_neighbors is None
    assert make_clusterer("ward", 20_001, exact_limit=20_000).n_neighbors is not None
    assert make_clusterer("ward-knn", 10).n_neighbors is not None
    with pytest.raises(BioscanError, match="unknown clusterer 'single'.*ward-knn"):
        make_clusterer("single", 10)


def test_protocol_rejects_unknown_names_and_empty_sizes_before_any_work():
    assert ClusteringProtocol() == PAPER_PROTOCOL
    assert (PAPER_PROTOCOL.reducer, PAPER_PROTOCOL.n_components, PAPER_PROTOCOL.n_neighbors) == ("umap", 50, 30)
    assert (PAPER_PROTOCOL.min_dist, PAPER_PROTOCOL.clusterer) == (0.0, "ward")
    with pytest.raises(BioscanError, match="unknown reducer 'tsne'; choose from umap, pca, none"):
        ClusteringProtocol(reducer="tsne")
    with pytest.raises(BioscanError, match="unknown clusterer 'single'"):
        ClusteringProtocol(clusterer="single")
    with pytest.raises(BioscanError, match="n_components must be at least 1, got 0"):
        ClusteringProtocol(n_components=0)
    assert ClusteringProtocol(exact_limit=100).clusterer_for(101) == "ward-knn"
    assert ClusteringProtocol(exact_limit=None).clusterer_for(10**6) == "ward"
    assert ClusteringProtocol(clusterer="kmeans").clusterer_for(10**6) == "kmeans"


@pytest.mark.slow
def test_umap_is_unchanged_on_a_connected_graph_and_starts_from_pca_on_a_fragmented_one(caplog):
    import umap

    from bioscan5m.tasks.cluster import reduce_embeddings
    from bioscan5m.tasks.cluster.reduce import UMAP_EXACT_BELOW

    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(UMAP_EXACT_BELOW + 100, 8)).astype(np.float32)  # one connected neighbour graph
    ours = reduce_embeddings(cloud, "umap", n_components=5, seed=0)
    plain = umap.UMAP(n_components=5, n_neighbors=30, min_dist=0.0, random_state=0, n_jobs=1).fit_transform(cloud)
    np.testing.assert_array_equal(ours, plain)  # the paper's UMAP, bit for bit
    assert "separate pieces" not in caplog.text

    # 60 tight, far-apart groups: more than 2 x 5 pieces, so UMAP's spectral start is skipped.
    groups, truth = make_planted_hierarchy(UMAP_EXACT_BELOW + 100, (60,), dim=8, spread=0.01, seed=1)
    reduced = reduce_embeddings(groups, "umap", n_components=5, seed=0)
    assert "has 60 separate pieces: UMAP starts from PCA" in caplog.text
    assert reduced.shape == (len(groups), 5) and np.isfinite(reduced).all()
    labels = WardClusterer().fit(reduced).cut(60)
    assert adjusted_mutual_info_score(truth[:, 0], labels) > 0.99  # the groups stay apart


def test_umap_gives_the_same_bytes_every_run_even_when_arpack_restarts():
    import itertools
    from concurrent.futures import ThreadPoolExecutor

    import scipy.sparse.linalg
    import umap

    from bioscan5m.tasks.cluster import reduce_embeddings

    # The corners of a 7-cube with 29 neighbours (itself, 7 at distance 1, 21 at 2, no ties): every record's
    # neighbourhood is the same, so the graph is regular, the all-ones start vector of UMAP's eigsh is an
    # eigenvector and ARPACK must restart from a random vector, which SciPy drew from OS entropy (before
    # the fix each run gave another layout).
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=7)), dtype=np.float32)
    eigsh = scipy.sparse.linalg.eigsh
    first = reduce_embeddings(corners, "umap", n_components=5, n_neighbors=29, seed=0)
    second = reduce_embeddings(corners, "umap", n_components=5, n_neighbors=29, seed=0)
    assert first.tobytes() == second.tobytes()
    assert scipy.sparse.linalg.eigsh is eigsh  # SciPy is left as it was
    with ThreadPoolExecutor(2) as pool:  # threads at once (e.g. the web app's workers) get the same bytes
        together = list(pool.map(lambda _: reduce_embeddings(corners, "umap", n_components=5, n_neighbors=29,
                                                              seed=0), range(2)))
    assert all(result.tobytes() == first.tobytes() for result in together)
    assert scipy.sparse.linalg.eigsh is eigsh
    assert not np.array_equal(first, reduce_embeddings(corners, "umap", n_components=5, n_neighbors=29, seed=1))

    # Where ARPACK needs no restart nothing changes: UMAP's own result, bit for bit.
    cloud = np.random.default_rng(0).normal(size=(150, 8)).astype(np.float32)
    plain = umap.UMAP(n_components=5, n_neighbors=30, min_dist=0.0, random_state=0, n_jobs=1).fit_transform(cloud)
    np.testing.assert_array_equal(reduce_embeddings(cloud, "umap", n_components=5, seed=0), plain)


def test_kmeans_and_hdbscan_recover_separated_groups():
    vectors, truth = make_planted_hierarchy(600, (3, 4), dim=8, spread=0.2, seed=2)
    kmeans = make_clusterer("kmeans", 600).fit(vectors).cut(12)
    assert adjusted_mutual_info_score(truth[:, 1], kmeans) > 0.95
    hdbscan = make_clusterer("hdbscan", 600).fit(vectors).cut(12)  # finds its own k
    assert adjusted_mutual_info_score(truth[:, 0], hdbscan) > 0.5
    assert len(np.unique(hdbscan)) >= 3


@pytest.mark.slow
def test_paper_protocol_on_real_barcodes_clusters_species(bold_sample, bold_kmer):
    """UMAP (50 d, 30 neighbours, min_dist 0) + Ward on k-mer profiles of ~400 real BOLD records."""
    table = zero_shot_clustering(bold_kmer, bold_sample).set_index("rank")
    assert list(table.index) == list(ZSC_RANKS)
    species = bold_sample.labels("species")
    assert table.loc["species", "n_classes"] == len(np.unique(species)) >= 10
    assert table.loc["species", "n_clusters"] == table.loc["species", "n_classes"]
    # Measured 0.97; k-mer profiles separate the species of a few-hundred-record sample very well.
    assert table.loc["species", "ami"] > 0.85
    assert table.loc["genus", "ami"] > 0.8
    assert np.isnan(table.loc["class", "ami"])  # all Insecta: AMI is undefined with one class
    assert table.loc["class", "n_classes"] == 1
    bin_labels = bold_sample.labels("dna_bin")
    assert table.loc["dna_bin", "n_records"] == (bin_labels >= 0).sum() < len(bold_sample)


def test_records_without_a_label_are_left_out_at_that_rank(bold_sample, bold_kmer, capsys):
    protocol = ClusteringProtocol(reducer="pca", n_components=10)
    table = zero_shot_clustering(bold_kmer, bold_sample, ["genus", "subfamily", "dna_bin"], protocol,
                                 progress=True)
    assert f"pca of {len(bold_kmer):,} x 1024" in capsys.readouterr().err  # the bar names its stage
    table = table.set_index("rank")
    for rank in ("genus", "subfamily", "dna_bin"):
        labels = bold_sample.labels(rank)
        assert table.loc[rank, "n_records"] == (labels >= 0).sum()
        assert table.loc[rank, "n_classes"] == len(np.unique(labels[labels >= 0]))
    assert table.loc["genus", "ami"] > 0.8  # PCA-10 + Ward is weaker than UMAP, still far above chance


def test_reduced_vectors_are_reused_until_the_embeddings_settings_or_libraries_change(bold_sample, bold_kmer, tmp_path,
                                                                          monkeypatch):
    from bioscan5m.tasks.cluster import protocol as protocol_module

    reduced = tmp_path / "cache-root" / "reduced"
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "cache-root"))
    report = tmp_path / "report"
    calls = []
    real = protocol_module.reduce_embeddings
    monkeypatch.setattr(protocol_module, "reduce_embeddings", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    pca = ClusteringProtocol(reducer="pca", n_components=10)
    first = evaluate_encoders({"k": bold_kmer}, bold_sample, report, ["genus"], pca, scatter_rank="genus")
    assert calls == ["pca", "pca"]  # the 10-d reduction and the 2-d map
    assert len(list(reduced.glob("pca10-*.npy"))) == 1  # in the cache folder, not in the report
    assert not (report / "reduced").exists()
    again = evaluate_encoders({"k": bold_kmer}, bold_sample, report, ["genus"],
                              ClusteringProtocol(reducer="pca", n_components=10, clusterer="kmeans"),
                              scatter_rank="genus")
    assert calls == ["pca", "pca"]  # another clusterer: nothing reduced again
    assert again.loc[0, "clusterer"] == "kmeans" and first.loc[0, "clusterer"] == "ward"
    evaluate_encoders({"k": bold_kmer}, bold_sample, report, ["genus"],
                      ClusteringProtocol(reducer="pca", n_components=12), scatter_rank=None)
    assert calls == ["pca", "pca", "pca"]  # other settings: a new reduction
    shifted = Embeddings(bold_kmer.ids, bold_kmer.vectors + 1e-3, bold_kmer.manifest)
    evaluate_encoders({"k": shifted}, bold_sample, report, ["genus"], pca, scatter_rank=None)
    assert calls == ["pca", "pca", "pca", "pca"]  # other vectors: a new reduction
    for saved in reduced.glob("pca10-*.npy"):
        saved.write_bytes(b"damaged")
    table = evaluate_encoders({"k": bold_kmer}, bold_sample, report, ["genus"], pca, scatter_rank=None)
    assert calls[-1] == "pca" and len(calls) == 5  # a damaged file is recomputed ...
    assert table.loc[0, "ami"] == pytest.approx(first.loc[0, "ami"])  # ... to the same result
    evaluate_encoders({"k": bold_kmer}, bold_sample, tmp_path / "fresh", ["genus"], pca, scatter_rank=None,
                      reuse_reduced=False)
    assert len(calls) == 6 and len(list(reduced.glob("*.npy"))) == 4  # nothing new kept
    stamp = protocol_module.reduction_stamp()
    assert f"umap-learn={version('umap-learn')}" in stamp and f"scikit-learn={version('scikit-learn')}" in stamp
    monkeypatch.setattr(protocol_module, "reduction_stamp", lambda: stamp.replace("umap-learn=", "umap-learn=0"))
    evaluate_encoders({"k": bold_kmer}, bold_sample, report, ["genus"], pca, scatter_rank=None)
    assert len(calls) == 7  # another release of UMAP (or scikit-learn, ...): reduced again


def test_ids_missing_from_the_labels_raise_a_clear_error(bold_sample, bold_kmer):
    ids = bold_kmer.ids.astype(object)
    ids[:3] = ["NOT-A-RECORD-1", "NOT-A-RECORD-2", "NOT-A-RECORD-3"]
    stray = Embeddings(ids=ids, vectors=bold_kmer.vectors, manifest=bold_kmer.manifest)
    with pytest.raises(BioscanError) as error:
        zero_shot_clustering(stray, bold_sample, protocol=ClusteringProtocol(reducer="none"))
    message = str(error.value)
    assert f"3 of {len(ids)} embedding ids are not in the labels table" in message
    assert "NOT-A-RECORD-1" in message and "insect_bold_records" in message


def test_modalities_are_z_scored_and_joined_by_record_id():
    rng = np.random.default_rng(0)
    ids = np.array([f"R{i}" for i in range(6)])
    dna = Embeddings(ids, rng.normal(5, 3, size=(6, 4)).astype(np.float32), {"encoder": {"name": "dna"}})
    order = np.array([4, 0, 2, 1, 3])  # shuffled, and R5 has no image
    image = Embeddings(ids[order], rng.normal(size=(5, 2)).astype(np.float32), {"encoder": {"name": "img"}})
    both = combine_embeddings([dna, image])
    assert both.name == "dna + img"
    assert list(both.ids) == ["R0", "R1", "R2", "R3", "R4"]
    assert both.vectors.shape == (5, 6)
    np.testing.assert_allclose(both.vectors.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(both.vectors.std(axis=0), 1, atol=1e-5)
    # Row R2 of the image block is the standardised image vector of R2, wherever it was stored.
    np.testing.assert_allclose(both.vectors[2, 4:], standardize(image.vectors)[2], atol=1e-6)
    assert np.all(standardize(np.ones((3, 2))) == 0)  # constant columns do not divide by zero
    with pytest.raises(BioscanError, match="share no record id"):
        combine_embeddings([dna, Embeddings(np.array(["X"]), np.zeros((1, 2), np.float32))])


@pytest.mark.slow
def test_cluster_command_writes_the_table_and_plots(bold_sample, bold_kmer, shared_data, tmp_path, capsys):
    emb_dir = tmp_path / "kmer"
    bold_kmer.save(emb_dir)
    out = tmp_path / "zsc"
    status = main(["cluster", "--embeddings", str(emb_dir), "--embeddings", str(emb_dir), str(emb_dir),
                   "--labels", str(shared_data / BOLD), "--out", str(out), "--ranks", "family", "species",
                   "--reducer", "pca", "--dims", "20", "--scatter-rank", "genus"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "kmer-profile-5 + kmer-profile-5" in printed and "species" in printed
    table = pd.read_csv(out / "ami.tsv", sep="\t")
    assert list(table.columns) == ["encoder", "rank", "n_records", "n_classes", "n_clusters", "clusterer", "ami"]
    assert len(table) == 4 and set(table["rank"]) == {"family", "species"}
    assert table["ami"].between(0.5, 1.0).all()
    for name in ("ami_by_rank.png", "pca_kmer-profile-5_genus.png", "pca_kmer-profile-5_+_kmer-profile-5_genus.png"):
        with Image.open(out / name) as image:
            image.load()
            assert image.format == "PNG" and image.width > 300 and image.height > 200
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
            assert len(np.unique(pixels, axis=0)) > 10  # lines/points were drawn, not a blank page
    assert not list(out.glob(".*.part"))


def test_cluster_command_rejects_ids_from_another_source(bold_kmer, shared_data, tmp_path, capsys):
    emb_dir = tmp_path / "kmer"
    bold_kmer.save(emb_dir)
    other = shared_data / "barcodebert_unseen" / "unseen_2024-02-29_aab3f82.tsv"
    status = main(["cluster", "--embeddings", str(emb_dir), "--labels", str(other), "--out", str(tmp_path / "z")])
    assert status == 2
    error = capsys.readouterr().err
    assert "error:" in error and f"of {len(bold_kmer)} embedding ids are not in the labels table" in error
    assert "Traceback" not in error
    assert not (tmp_path / "z" / "ami.tsv").exists()


def test_benchmark_zsc_command_applies_the_protocol_options(shared_data, tmp_path, capsys):
    out = tmp_path / "zsc"
    status = main(["benchmark", "zsc", "--data", str(shared_data / BOLD), "--split", "none", "--encoders",
                   "kmer-profile-4", "--max-records", "300", "--ranks", "family", "genus", "--reducer", "pca",
                   "--dims", "10", "--clusterer", "ward-knn", "--knn", "5", "--scatter-rank", "none",
                   "--out", str(out)])
    assert status == 0
    assert "kmer-profile-4" in capsys.readouterr().out
    table = pd.read_csv(out / "ami.tsv", sep="\t").set_index("rank")
    assert list(table.index) == ["family", "genus"]
    assert (table["clusterer"] == "ward-knn").all()
    assert table["n_records"].max() <= 300
    assert (table["n_clusters"] == table["n_classes"]).all()
    assert table.loc["family", "ami"] > 0.4
    assert (out / "ami_by_rank.png").is_file()
    assert not list(out.glob("pca_*.png")) and not list(out.glob("umap_*.png"))  # --scatter-rank none
