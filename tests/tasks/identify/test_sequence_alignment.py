"""The compiled alignment (Myers' bit-vector kernel) gives what edlib gives, pair for pair: edlib is the
oracle, called with its own start locations and no shortcut."""

import edlib
import numpy as np
import pytest

from bioscan5m.tasks.identify.queries import reverse_complement
from bioscan5m.tasks.identify.sequence_alignment import PackedBarcodes, candidate_alignments, pack_barcodes


def _edlib_alignment(query: str, reference: str) -> tuple[float, int, float]:
    """(identity, aligned length, share of the query aligned) of the shorter barcode aligned inside the longer,
    by one plain edlib call."""
    short, long = (query, reference) if len(query) <= len(reference) else (reference, query)
    if not short:
        return 0.0, 0, 0.0
    result = edlib.align(short, long, mode="HW", task="locations",
                         additionalEqualities=[("N", base) for base in "ACGT"])
    start, end = result["locations"][0]
    aligned = max(len(short), end - start + 1)
    coverage = 1.0 if len(query) <= len(reference) else min(1.0, (end - start + 1) / len(query))
    return max(0.0, 1.0 - result["editDistance"] / aligned), aligned, coverage


def _check_against_edlib(rows: list[tuple[str, list[str]]], threads: int = 2) -> None:
    """Each query aligned to its references (one row of candidates each, -1 beyond them) by
    :func:`candidate_alignments`, references given as a list and packed, equals edlib's answers."""
    references = sorted({r for _, refs in rows for r in refs})
    where = {r: i for i, r in enumerate(references)}
    width = max(len(refs) for _, refs in rows) + 1
    candidates = np.full((len(rows), width), -1, dtype=np.int64)
    for i, (_, refs) in enumerate(rows):
        candidates[i, :len(refs)] = [where[r] for r in refs]
    queries = [q for q, _ in rows]
    expected = np.zeros((3, *candidates.shape))
    for i, (query, refs) in enumerate(rows):
        for j, reference in enumerate(refs):
            expected[:, i, j] = _edlib_alignment(query, reference)
    filled = candidates >= 0
    for given in (references, pack_barcodes(references)):
        identity, aligned, coverage = candidate_alignments(queries, given, candidates, threads=threads)
        for got, want, dtype in ((identity, expected[0], np.float32), (aligned, expected[1], np.int32),
                                 (coverage, expected[2], np.float32)):
            assert got.dtype == dtype
            mismatched = np.argwhere(filled & (got != want.astype(dtype)))
            assert not len(mismatched), [(rows[i][0], rows[i][1][j], got[i, j], want[i, j]) for i, j in mismatched[:3]]
        assert np.all(identity[~filled] == -np.inf) and not aligned[~filled].any() and not coverage[~filled].any()


def _mutated(rng: np.random.Generator, sequence: str, rate: float) -> str:
    """``sequence`` with substitutions, insertions and deletions (and an N now and then) at ``rate``."""
    out = []
    for base in sequence:
        roll = rng.random()
        if roll < rate / 3:
            out.append(rng.choice(list("ACGTN")))
        elif roll < 2 * rate / 3:
            out.append(base + rng.choice(list("ACGT")))
        elif roll >= rate:
            out.append(base)
    return "".join(out)


def test_alignments_equal_edlib_on_made_up_barcodes():
    """Pairs of every kind, from a bare clone: equal lengths, fragments inside, query longer, diverged past
    the first distance limits (64, 128) so that pairs are aligned again, after a close candidate in the same
    row (whose distance sets the next limit), lengths at the 64-base block edges, tandem repeats whose ends
    tie, Ns, empty barcodes."""
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(150):
        barcode = "".join(rng.choice(list("ACGT"), int(rng.integers(560, 700))))
        start = int(rng.integers(0, 300))
        fragment = _mutated(rng, barcode[start:start + int(rng.integers(100, 350))], 0.05)
        relatives = [_mutated(rng, barcode, rate) for rate in (0.01, 0.05, 0.15, 0.3, 0.45)]
        repeat = "ACGTTG" * 30
        rows += [(barcode, relatives), (relatives[1], [barcode, *relatives[2:], fragment]),
                 (fragment, [barcode, relatives[0], relatives[3]]), (relatives[3][:len(barcode)], [barcode]),
                 ("TT" + relatives[2] + "GGA", [barcode, relatives[4]]), (repeat[:100], ["CC" + repeat + "AA"]),
                 (_mutated(rng, repeat[:90], 0.1), [repeat])]
        for length in (63, 64, 65, 128, 129):
            rows.append((barcode[:length], [barcode, relatives[2], reverse_complement(barcode)]))
    rows += [("", ["ACGT"]), ("ACGT", [""]), ("ANGT", ["ACGT", "NNNN", "TTACGTT"]), ("CCTT", ["AAGG"]), ("A", ["C"])]
    distances = [edlib.align(*sorted((q, r), key=len), mode="HW")["editDistance"] for q, refs in rows for r in refs]
    assert sum(d > 128 for d in distances) > 100 and sum(64 < d <= 128 for d in distances) > 100  # aligned again
    _check_against_edlib(rows)
    _check_against_edlib(rows[:200], threads=1)


def test_alignments_equal_edlib_on_real_barcodes(unseen_barcodes):
    """Real barcodes (BarcodeBERT's unseen species, many with Ns) and their field forms both ways round
    (query shorter or longer) against themselves, a relative, the reverse complement and masked forms."""
    sequences = [s for s in unseen_barcodes if len(s) >= 600][:80]
    rows = []
    for barcode, other in zip(sequences, sequences[1:] + sequences[:1]):
        masked = barcode[:200] + "N" * 5 + barcode[205:]
        forms = [barcode, barcode[:150], barcode[-313:], barcode[250:350], masked, masked[150:450], "NNN" + barcode[:150]]
        for form in forms:
            rows.append((form, [barcode, other, reverse_complement(barcode)]))
        rows.append((barcode, forms[1:]))
        rows.append((other, forms))
    assert sum("N" in q for q, _ in rows) > 50
    _check_against_edlib(rows)


def test_packed_barcodes_know_their_count_and_bases():
    packed = pack_barcodes(["ACGTN", "", "GA", "acgR", "TÉ"])
    assert isinstance(packed, PackedBarcodes) and len(packed) == 5
    assert packed.starts.tolist() == [0, 5, 5, 7, 11, 13]
    assert packed.codes.tolist() == [0, 1, 2, 3, 4, 2, 0, 5, 5, 5, 5, 3, 5]  # a non-ASCII letter too


@pytest.mark.parametrize("other", ["R", "-"])
def test_a_letter_other_than_acgtn_matches_nothing(other):
    """Cleaned barcodes hold only ACGTN; any other letter counts as a mismatch, even against itself."""
    identity, aligned, _ = candidate_alignments([f"AC{other}T"], [f"AC{other}T"], np.zeros((1, 1), np.int64))
    assert (identity[0, 0], aligned[0, 0]) == (np.float32(0.75), 4)
