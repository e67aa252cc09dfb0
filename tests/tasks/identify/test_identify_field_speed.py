"""The fast paths of identify on real BOLD barcodes: the strand vote, the posting-list containment search
(exact, and sampled to bound its memory), the k-mer index's embedding summed from k-mer codes, distinct
queries searched once, the reference file stamp."""

import os

import numpy as np
import pandas as pd
import pytest

from bioscan5m.data.schema import TAXONOMIC_RANKS
from bioscan5m.models.kmer import kmer_counts
from bioscan5m.tasks.identify import BarcodeIdentifier
from bioscan5m.tasks.identify import identifier as identifier_module
from bioscan5m.tasks.identify.containment import STRAND_MARGIN, KmerContainment, strand_votes
from bioscan5m.tasks.identify.kmer_index import KmerIndex, principal_axes, unit_rows
from bioscan5m.tasks.identify.queries import reverse_complement


@pytest.fixture(scope="module")
def barcodes(shared_data):
    """3,000 distinct real BOLD barcodes (>= 600 nt) with taxonomy, in a fixed random order."""
    from bioscan5m.data.records import load_records

    records = load_records(shared_data / "insect_bold_degobbi" / "insect_bold_records.tsv.gz",
                           columns=[*TAXONOMIC_RANKS, "processid", "dna_barcode"], use_cache=False)
    frame = records.to_pandas()
    frame["dna_barcode"] = records.barcodes(clean=True)
    frame = frame[frame["dna_barcode"].str.len() >= 600].drop_duplicates("dna_barcode")
    return frame.sample(3000, random_state=0).reset_index(drop=True).astype({r: object for r in TAXONOMIC_RANKS})


def _forms(sequence: str) -> list[str]:
    """A barcode as it comes from the field: full length, 150 nt 5' end, 313 nt 3' end, 100 nt middle."""
    return [sequence, sequence[:150], sequence[-313:], sequence[250:350]]


def test_strand_vote_never_picks_the_wrong_strand_of_held_out_barcodes(barcodes):
    reference = KmerContainment().build(barcodes["dna_barcode"].tolist()[:2000])
    held_out = [form for seq in barcodes["dna_barcode"].tolist()[2000:2400] for form in _forms(seq)]
    flipped = [reverse_complement(s) for s in held_out]
    as_given = strand_votes(held_out, flipped, reference.frequency, reference.keep)
    reversed_ = strand_votes(flipped, held_out, reference.frequency, reference.keep)
    np.testing.assert_allclose(as_given, -reversed_)
    # Decided wrong: never; left to the search of both strands (margin under STRAND_MARGIN): rarely.
    assert (as_given <= -STRAND_MARGIN).sum() == 0
    assert (as_given >= STRAND_MARGIN).mean() >= 0.99


def _set_shares(queries: list[str], references: list[str], k: int = 8) -> np.ndarray:
    """Share of each query's distinct ACGT k-mers held by each reference, the slow obvious way."""
    def kmers(seq):
        return {seq[i:i + k] for i in range(len(seq) - k + 1) if set(seq[i:i + k]) <= set("ACGT")}

    sets = [kmers(r) for r in references]
    return np.array([[len(q & r) / max(len(q), 1) for r in sets] for q in map(kmers, queries)])


def test_containment_search_equals_set_containment(barcodes):
    references = barcodes["dna_barcode"].tolist()[:300]
    queries = [form for seq in barcodes["dna_barcode"].tolist()[300:320] for form in _forms(seq)[1:]]
    queries.append(references[5][100:260])  # one inside a reference: share 1
    index = KmerContainment(threads=2).build(references)
    share, found = index.search(queries, 10)
    expected = _set_shares(queries, references)
    # Best first, equal shares in reference order.
    order = np.lexsort((np.broadcast_to(np.arange(len(references)), expected.shape), -expected), axis=1)[:, :10]
    np.testing.assert_array_equal(found, order)
    np.testing.assert_allclose(share, np.take_along_axis(expected, order, 1), rtol=1e-6)
    assert found[-1, 0] == 5 and share[-1, 0] == 1.0
    # Left-out references are skipped.
    _, found_without = index.search(queries[-1:], 10, exclude=np.array([5]))
    without = expected[-1].copy()
    without[5] = -1.0
    np.testing.assert_array_equal(found_without[0], np.lexsort((np.arange(len(references)), -without))[:10])


def _related_barcodes(n_species: int, per_species: int, length: int, seed: int) -> list[str]:
    """AT-rich random barcodes, each copied with ~3% substitutions: 8-mers held by one reference up to
    most of them, as in COI (some with a bitmap, some with a posting list)."""
    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    out = []
    for _ in range(n_species):
        ancestor = rng.choice(bases, length, p=[0.3, 0.15, 0.15, 0.4])
        for _ in range(per_species):
            copy = ancestor.copy()
            changed = rng.random(length) < 0.03
            copy[changed] = rng.choice(bases, changed.sum())
            out.append("".join(copy))
    return out


def test_bit_sliced_containment_search_equals_set_containment(tmp_path):
    references = _related_barcodes(15, 10, 400, seed=1)  # 150: three 64-bit words, the last one partial
    index = KmerContainment(threads=2).build(references)
    assert len(index.bitmaps) > 0 and len(index.postings) > 0
    fragments = [references[i][start:start + 120] for i, start in ((3, 0), (77, 250), (149, 100))]
    queries = [*fragments, *_related_barcodes(2, 1, 300, seed=2), references[10][:60] + "N" * 20 + references[10][80:200],
               "ACGTACG", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
    expected = _set_shares(queries, references)
    rows = np.arange(len(references))
    for n in (10, len(references) + 5):
        share, found = index.search(queries, n)
        shown = min(n, len(references))
        order = np.lexsort((np.broadcast_to(rows, expected.shape), -expected), axis=1)[:, :shown]
        held = np.take_along_axis(expected, order, 1) > 0  # references holding none of the query's 8-mers are not hits
        np.testing.assert_array_equal(found[:, :shown], np.where(held, order, -1))
        np.testing.assert_allclose(share[:, :shown][held], np.take_along_axis(expected, order, 1)[held], rtol=1e-6)
        assert (found[:, shown:] == -1).all() and (share[found < 0] == -np.inf).all()
    # Left-out references are skipped; a query without a whole 8-mer finds nothing.
    _, found = index.search(fragments, 10, exclude=np.array([3, 77, 149, 64]))
    assert not np.isin(found, [3, 77, 149, 64]).any() and (found[:, 0] >= 0).all()
    assert (index.search(["ACGTACG"], 3)[1] == -1).all()
    # Saved and loaded (memory-mapped), the same answers; a truncated file is a damaged index.
    index.save(tmp_path)
    loaded = KmerContainment.load(tmp_path, index.sampling, len(references))
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10)):
        np.testing.assert_array_equal(got, want)
    np.save(tmp_path / "containment_postings.npy", index.postings[:-1])
    with pytest.raises(ValueError, match="damaged"):
        KmerContainment.load(tmp_path, index.sampling, len(references))


def test_kmer_index_embedding_equals_the_dense_profile_projection(barcodes):
    sequences = barcodes["dna_barcode"].tolist()[:1500]
    index = KmerIndex(k=6, dim=32, threads=2).build(sequences)
    odd = ["ACGTNNNNACGTACGGT", "AC", "acgtacgtTTGA", "N" * 30]  # N, too short, lower case, nothing countable
    queries = [s[:150] for s in sequences[:50]] + odd + sequences[-20:]
    # The obvious way: dense unit-length 6-mer count profiles, centred, times the PCA components.
    profiles = unit_rows(kmer_counts(queries, 6))
    np.testing.assert_allclose(index.profiles(queries), profiles, atol=1e-7)
    expected = unit_rows((profiles - index.mean) @ index.components.T)
    np.testing.assert_allclose(index.embed(queries), expected, atol=1e-5)
    np.testing.assert_array_equal(index.embed_all(queries), index.embed(queries))
    assert index.embed([]).shape == (0, 32)
    # The index holds the references' embeddings: each reference finds itself first.
    similarity, found = index.search(sequences[:200], 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(200))
    np.testing.assert_allclose(similarity[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("rows", [1200, 300, 200])
def test_principal_axes_are_scikit_learns_pca_to_the_bit(rows):
    """The k-mer index's PCA, computed without scikit-learn, is scikit-learn's to the last bit: randomized
    with the range found on either side (more or fewer rows than columns), and full for few rows, both on
    one BLAS thread (which principal_axes always uses)."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(rows)
    x = np.where(rng.random((rows, 1024)) < 0.15, rng.random((rows, 1024)), 0).astype(np.float32)
    x = unit_rows(x)
    dim = min(128, rows - 1)
    randomized = dim < min(x.shape) // 2
    with threadpool_limits(1, user_api="blas"):
        pca = PCA(dim, svd_solver="randomized" if randomized else "full",
                  iterated_power=3 if randomized else "auto", random_state=7).fit(x)
    mean, axes = principal_axes(x.copy(), dim, 7)
    assert np.array_equal(mean, pca.mean_) and np.array_equal(axes, pca.components_)
    assert axes.shape == (dim, 1024) and (np.abs(axes).argmax(1) == np.argmax(axes, 1)).all()


def test_the_kmer_index_does_not_depend_on_the_blas_threads():
    """BLAS sums in an order that depends on its threads: the PCA runs on one whatever the caller (numpy
    takes as many as the machine has cores), so the axes and the index are the same on every machine."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(3)
    barcodes = ["".join(rng.choice(list("ACGT"), 658)) for _ in range(3000)]
    built = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            built.append(KmerIndex(threads=2).build(barcodes))
    assert np.array_equal(built[0].components, built[1].components)
    assert np.array_equal(built[0].index.reconstruct_n(0, 3000), built[1].index.reconstruct_n(0, 3000))


def test_sampled_containment_index_stays_bounded_and_still_names_fragments(barcodes):
    references = barcodes["dna_barcode"].tolist()
    full = KmerContainment().build(references)
    held = int(full.frequency.sum())  # (8-mer, reference) pairs
    bounded = KmerContainment(max_postings=held // 6).build(references)
    assert full.sampling == 1 and bounded.sampling == 7
    assert bounded.frequency.sum() < held / 5
    # Bitmaps (common 8-mers) and posting lists (the rest) never take more than posting lists alone would.
    assert len(full.bitmaps) > 0 and full.nbytes <= 4 * held and bounded.nbytes < full.nbytes / 5
    # Fragments of reference barcodes (5' mini-barcodes and 3' Leray amplicons) find their own barcode.
    rows = np.arange(0, 3000, 10)
    fragments = [references[i][:150] for i in rows] + [references[i][-313:] for i in rows]
    share, found = bounded.search(fragments, len(references))
    source = np.concatenate([rows, rows])
    # Its own barcode holds every sampled 8-mer of a fragment, so it is among the best (others may tie).
    source_share = share[found == source[:, None]]
    assert (source_share == 1.0).all() and (share[:, 0] == 1.0).all()
    # Ties among the best are not too many to align: the best 10 hold the source for most fragments.
    assert np.mean([s in f[:10] for s, f in zip(source, found)]) >= 0.9


@pytest.fixture(scope="module")
def small_reference(barcodes, tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "reference.tsv"
    barcodes.iloc[:800].rename(columns={"dna_barcode": "nucleotides"}).to_csv(path, sep="\t", index=False)
    return path


def test_an_unchanged_reference_file_is_not_read_again(small_reference, tmp_path, monkeypatch):
    params = {"n_simulated": 100, "threads": 1, "progress": False, "cache_dir": tmp_path}
    first = BarcodeIdentifier(**params).fit(small_reference)
    assert not first.from_cache_
    reads = []
    real_read = identifier_module.read_reference
    monkeypatch.setattr(identifier_module, "read_reference", lambda ref, **options: reads.append(ref) or real_read(ref, **options))
    again = BarcodeIdentifier(**params).fit(small_reference)
    assert again.from_cache_ and again.cache_path_ == first.cache_path_ and reads == []
    # The cached state answers as the fitted one, fragments (memory-mapped containment index) included.
    assert isinstance(again._containment().postings, np.memmap)
    held_out = pd.read_csv(small_reference, sep="\t")["nucleotides"].tolist()[::40]
    queries = held_out + [s[:150] for s in held_out] + [reverse_complement(s[-313:]) for s in held_out]
    pd.testing.assert_frame_equal(again.predict(queries), first.predict(queries))
    # Touched (a new modification time): read again, same content so the same index.
    info = os.stat(small_reference)
    os.utime(small_reference, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    touched = BarcodeIdentifier(**params).fit(small_reference)
    assert len(reads) == 1 and touched.from_cache_ and touched.cache_path_ == first.cache_path_
    # Edited: read again, a new index.
    pd.read_csv(small_reference, sep="\t").iloc[:700].to_csv(small_reference, sep="\t", index=False)
    edited = BarcodeIdentifier(**params).fit(small_reference)
    assert len(reads) == 2 and not edited.from_cache_ and edited.cache_path_ != first.cache_path_


def test_repeated_queries_get_the_same_row_and_unanswered_ones_novelty_one(barcodes, small_reference, tmp_path):
    model = BarcodeIdentifier(n_simulated=100, threads=2, progress=False, cache_dir=tmp_path).fit(small_reference)
    seq = barcodes["dna_barcode"].iloc[900]
    queries = {"a": seq, "b": reverse_complement(seq), "c": seq, "d": seq[:150], "short": "ACGTAC", "e": seq[:150],
               "polyA": "A" * 200}
    table, hits = model.predict_with_hits(queries, 3)
    table = table.set_index("query_id")
    assert list(table.index) == list(queries)
    # Each repeat of a barcode gets its rows of hits under its own id, in query order.
    assert list(dict.fromkeys(hits["query_id"])) == ["a", "b", "c", "d", "e"] and len(hits) == 15
    hit_columns = [c for c in hits.columns if c not in ("query_id", "strand")]
    for twin, of in (("c", "a"), ("b", "a"), ("e", "d")):
        pd.testing.assert_frame_equal(hits.loc[hits["query_id"] == twin, hit_columns].reset_index(drop=True),
                                      hits.loc[hits["query_id"] == of, hit_columns].reset_index(drop=True))
    columns = [c for c in table.columns if c != "strand"]
    pd.testing.assert_series_equal(table.loc["a", columns], table.loc["c", columns], check_names=False)
    pd.testing.assert_series_equal(table.loc["a", columns], table.loc["b", columns], check_names=False)
    pd.testing.assert_series_equal(table.loc["d"], table.loc["e"], check_names=False)
    assert list(table.loc[["a", "b", "d"], "strand"]) == ["+", "-", "+"]
    assert list(table.loc[["short", "polyA"], "status"]) == ["too_short", "low_complexity"]
    assert (table.loc[["short", "polyA"], "novelty_score"] == 1.0).all()
    assert not table.loc[["short", "polyA"], "novel_species"].any()
    assert table["novelty_score"].notna().all()


