"""Task III retrieval: FAISS search, top-k micro/macro accuracy, the paper table and report files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioscan5m.errors import BioscanError
from bioscan5m.report.retrieval import write_retrieval_report
from bioscan5m.report.tables import markdown_table
from bioscan5m.tasks.retrieve import (
    RETRIEVAL_RANKS,
    build_index,
    nearest_keys,
    neighbour_labels,
    paper_table,
    retrieval_accuracy,
)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_rank_list_is_the_papers():
    assert RETRIEVAL_RANKS == ("order", "family", "genus", "species")


def test_accuracy_is_one_when_queries_are_the_keys():
    rng = np.random.default_rng(0)
    keys = _unit(rng.normal(size=(200, 16)))
    labels = {"genus": rng.integers(0, 7, 200), "species": rng.integers(0, 30, 200)}
    similarity, neighbours = nearest_keys(keys, keys, k=5)
    assert neighbours.shape == (200, 5) and (neighbours[:, 0] == np.arange(200)).all()
    np.testing.assert_allclose(similarity[:, 0], 1.0, rtol=1e-5)
    assert (np.diff(similarity, axis=1) <= 1e-6).all()  # best first
    for row in retrieval_accuracy(labels, labels, neighbours, ks=(1, 3, 5)):
        assert row["micro"] == 1.0 and row["macro"] == 1.0
        assert row["n_queries"] == 200


def test_macro_and_micro_differ_on_an_imbalanced_set():
    # 8 queries of class 0, all right; 2 of class 1, both wrong (their nearest key is class 0).
    keys = _unit(np.array([[1.0, 0.0], [0.0, 1.0]]))
    key_labels = {"species": np.array([0, 1])}
    queries = _unit(np.array([[1.0, 0.1]] * 8 + [[1.0, 0.2]] * 2))
    query_labels = {"species": np.array([0] * 8 + [1] * 2)}
    _, neighbours = nearest_keys(keys, queries, k=2)
    top1, top2 = retrieval_accuracy(query_labels, key_labels, neighbours, ks=(1, 2))
    assert top1["micro"] == pytest.approx(0.8)  # 8 of 10 queries
    assert top1["macro"] == pytest.approx(0.5)  # class 0: 100 %, class 1: 0 %
    assert top2["micro"] == top2["macro"] == 1.0  # the right key is always second
    assert top1["n_classes"] == 2


def test_missing_labels_are_left_out_and_never_match():
    neighbours = np.array([[0, 1], [1, 0], [2, 0]])
    query = {"genus": np.array([4, -1, 5])}
    keys = {"genus": np.array([4, 5, -1])}
    (row,) = retrieval_accuracy(query, keys, neighbours, ks=(1,))
    # Query 1 has no genus (ignored); query 2's nearest key has none (a miss).
    assert row["n_queries"] == 2 and row["micro"] == pytest.approx(0.5)
    assert neighbour_labels(np.array([7, 8]), np.array([[1, -1]])).tolist() == [[8, -1]]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_find_well_separated_neighbours(kind):
    rng = np.random.default_rng(1)
    centres = _unit(rng.normal(size=(20, 32)))
    keys = _unit(np.repeat(centres, 50, axis=0) + 0.05 * rng.normal(size=(1000, 32)))
    queries = _unit(centres + 0.05 * rng.normal(size=(20, 32)))
    index = build_index(keys, kind)
    assert index.ntotal == 1000
    _, exact = nearest_keys(keys, queries, k=1)
    _, approximate = index.search(queries, 1)
    assert (approximate[:, 0] // 50 == np.arange(20)).all()  # the right cluster
    assert (exact[:, 0] // 50 == np.arange(20)).all()


def test_bad_inputs_are_user_errors():
    with pytest.raises(BioscanError, match="unknown index kind"):
        build_index(np.ones((3, 2), np.float32), "lsh")
    with pytest.raises(BioscanError, match="do not match"):
        nearest_keys(np.ones((3, 2), np.float32), np.ones((1, 5), np.float32))
    with pytest.raises(BioscanError, match="top-k"):
        retrieval_accuracy({"species": np.array([0])}, {"species": np.array([0])}, np.array([[0]]), ks=(3,))


def _long_table() -> pd.DataFrame:
    rows = []
    for direction in ("image→image", "dna→dna", "image→dna"):
        for queries in ("seen", "unseen"):
            for rank in RETRIEVAL_RANKS:
                for k in (1, 5):
                    value = 0.9 if direction == "dna→dna" else 0.3
                    rows.append({"direction": direction, "queries": queries, "rank": rank, "k": k,
                                 "micro": value, "macro": value / 2, "n_queries": 10, "n_classes": 4})
    return pd.DataFrame(rows)


def test_paper_table_layout_and_report_files(tmp_path):
    table = paper_table(_long_table())
    assert list(table.columns) == ["direction", "average", "k"] + [
        f"{q} {r}" for q in ("seen", "unseen") for r in RETRIEVAL_RANKS]
    assert len(table) == 3 * 2 * 2
    assert table.iloc[0][["direction", "average", "k"]].tolist() == ["image→image", "micro", 1]
    dna = table[(table["direction"] == "dna→dna") & (table["average"] == "macro")]
    assert dna["seen species"].tolist() == [45.0, 45.0]  # percent
    paths = write_retrieval_report(_long_table(), table, tmp_path / "report")
    assert pd.read_csv(paths["table"], sep="\t").shape == table.shape
    assert len(pd.read_csv(paths["long"], sep="\t")) == len(_long_table())
    markdown = paths["markdown"].read_text()
    assert markdown.startswith("| direction | average | k | seen order") and "| dna→dna | micro | 1 | 90.00 |" in markdown
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert markdown_table(pd.DataFrame({"a": [float("nan")]})).splitlines()[-1] == "| – |"


# -- end to end on synthetic BIOSCAN data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """A synthetic dataset and a tiny model aligned on it for two steps through ``bioscan5m align``."""
    from bioscan5m.cli import main
    from bioscan5m.data.synthetic import write_synthetic_dataset

    base = tmp_path_factory.mktemp("clibd")
    root = write_synthetic_dataset(base / "data", 400, images=True, seed=11)
    code = main(["align", "--data", str(root), "--out", str(base / "model"), "--model", "tiny", "--modalities",
                 "image,dna,text", "--steps", "2", "--batch-size", "8"])
    assert code == 0
    return root, base / "model"


@pytest.mark.slow
def test_cli_evaluation_writes_the_paper_table(aligned, tmp_path, capsys):
    from bioscan5m.cli import main
    from bioscan5m.data.records import load_records

    root, model_dir = aligned
    assert (model_dir / "config.json").is_file() and (model_dir / "train_log.jsonl").is_file()
    assert main(["retrieve", "--model", str(model_dir), "--data", str(root), "--out", str(tmp_path)]) == 0
    assert "image→dna   seen: top-1 species accuracy" in capsys.readouterr().out
    long = pd.read_csv(tmp_path / "retrieval_long.tsv", sep="\t")
    seen = long[long["queries"] == "seen"]
    assert set(seen["direction"]) == {"image→image", "dna→dna", "image→dna", "dna→image", "image→text", "dna→text"}
    test = load_records(root, split="test")
    species = test.labels("species")
    row = seen[(seen["direction"] == "dna→dna") & (seen["rank"] == "species") & (seen["k"] == 1)].iloc[0]
    assert row["n_queries"] == (species >= 0).sum() and row["n_classes"] == len(np.unique(species[species >= 0]))
    assert long[["micro", "macro"]].stack().between(0, 1).all()
    for _, group in long.groupby(["direction", "queries", "rank"]):  # top-k never falls as k grows
        assert group.sort_values("k")["micro"].is_monotonic_increasing
    table = pd.read_csv(tmp_path / "retrieval.tsv", sep="\t")
    assert "seen species" in table.columns and len(table) == len(long.groupby(["direction"])) * 2 * 3


@pytest.mark.slow
def test_cli_identifies_barcodes_and_photos(aligned, tmp_path, capsys, monkeypatch):
    import zipfile

    from bioscan5m.cli import main
    from bioscan5m.data.records import load_records

    root, model_dir = aligned
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "cache-root"))
    model_files = sorted(p.relative_to(model_dir) for p in model_dir.rglob("*"))
    data_files = sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))
    train = load_records(root, split="train")
    ids, barcodes = train.ids[:3], train.barcodes()[:3]
    fasta = tmp_path / "query.fasta"
    fasta.write_text("".join(f">{i}\n{b}\n" for i, b in zip(ids, barcodes)))
    assert main(["retrieve", "--model", str(model_dir), "--data", str(root), "--query-fasta", str(fasta),
                 "-k", "2", "--out", str(tmp_path)]) == 0
    hits = pd.read_csv(tmp_path / "neighbours.tsv", sep="\t")
    kept = tmp_path / "cache-root" / "embeddings"
    assert len(list(kept.glob("train+key_unseen-dna.[0-9a-f]*/manifest.json"))) == 1  # kept in the cache folder
    assert sorted(p.relative_to(model_dir) for p in model_dir.rglob("*")) == model_files  # not in the model
    assert sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*")) == data_files
    assert hits["query"].tolist() == [i for i in ids for _ in range(2)] and hits["neighbour"].tolist() == [1, 2] * 3
    # A reference barcode finds itself (or an identical copy) first.
    first = hits[hits["neighbour"] == 1]
    np.testing.assert_allclose(first["similarity"], 1.0, atol=1e-4)
    keys = load_records(root, split="train+key_unseen")
    barcode_of = dict(zip(keys.ids, keys.barcodes()))
    assert [barcode_of[p] for p in first["processid"]] == barcodes
    capsys.readouterr()

    with zipfile.ZipFile(next(root.glob("BIOSCAN_5M_*.zip"))) as archive:
        member = next(name for name in archive.namelist() if "/test/" in name)
        (tmp_path / "bug.jpg").write_bytes(archive.read(member))
    assert main(["retrieve", "--model", str(model_dir), "--data", str(root), "--query-image",
                 str(tmp_path / "bug.jpg"), "--keys", "dna"]) == 0
    assert capsys.readouterr().out.startswith("bug.jpg: ")


@pytest.mark.slow
def test_split_embeddings_are_reused_until_the_weights_change(aligned, tmp_path, monkeypatch):
    import torch

    from bioscan5m.data.records import load_records
    from bioscan5m.embeddings import clibd
    from bioscan5m.models.multimodal import load_multimodal_model
    from bioscan5m.tasks import retrieve

    root, model_dir = aligned
    model = load_multimodal_model(model_dir)[0]
    cache = tmp_path / "cache"
    first = retrieve.evaluate_retrieval(model, root, embeddings_cache=cache)
    assert sorted(p.parent.name.split(".")[0] for p in cache.glob("*/manifest.json")) == [
        f"{split}-{modality}" for split in ("test", "test_unseen", "train+key_unseen") for modality in ("dna", "image")]

    embedded = []
    real = clibd.embed_dataset
    monkeypatch.setattr(clibd, "embed_dataset", lambda *a, **k: embedded.append(k["desc"]) or real(*a, **k))
    again = retrieve.evaluate_retrieval(model, root, embeddings_cache=cache)
    assert embedded == []  # every split came from the cache
    pd.testing.assert_frame_equal(first, again)
    [saved] = cache.glob("test-dna.*/embeddings.npy")
    whole = saved.read_bytes()
    for damaged in (whole[: len(whole) // 2], b""):  # truncated: embedded again, not a crash
        saved.write_bytes(damaged)
        pd.testing.assert_frame_equal(retrieve.evaluate_retrieval(model, root, embeddings_cache=cache), first)
    assert embedded == ["seen queries", "seen queries"] and saved.read_bytes() == whole
    embedded.clear()

    train = load_records(root, split="train")
    fasta = tmp_path / "q.fasta"
    fasta.write_text(f">q1\n{train.barcodes()[0]}\n")
    hits = retrieve.identify(model, root, fasta=fasta, embeddings_cache=cache)
    assert embedded == ["keys"]  # DNA-only keys are a set of their own
    pd.testing.assert_frame_equal(retrieve.identify(model, root, fasta=fasta, embeddings_cache=cache), hits)
    assert embedded == ["keys"]
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # new weights: the saved vectors no longer apply
    retrieve.identify(model, root, fasta=fasta, embeddings_cache=cache)
    assert embedded == ["keys", "keys"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from bioscan5m.cli import main

    assert main(["retrieve", "--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "give --out for the evaluation report" in capsys.readouterr().err
    assert main(["retrieve", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "is also the input" in capsys.readouterr().err  # the report would be written into the dataset
    assert main(["retrieve", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a multimodal model directory" in capsys.readouterr().err
    assert main(["align", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--modalities", "image,smell",
                 "--steps", "1"]) == 2
    assert "unknown modality 'smell'" in capsys.readouterr().err
