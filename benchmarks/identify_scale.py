"""identify at BOLD scale (issue 11, item 7): a reference of N distinct barcodes, Q queries, bounded memory.

The reference is synthetic but made of real barcodes: each of its N distinct barcodes is a staged BOLD
barcode (the held-out split's reference) with 1% of its bases substituted at random, keeping the source
record's taxonomy. Queries are other mutated copies (0.5% substituted) of random reference barcodes: 90%
full length, 10% cut to their 150 nt 5' end (which goes through the containment search). Above
200,000 barcodes the k-mer index is approximate (FAISS IVF); its recall@10 against exact search is
measured while it is built and printed here, with the containment index's 8-mer sampling, the build
time, queries per second, the share of queries named to their source's species and the peak RSS.

    python benchmarks/identify_scale.py --references 1000000 --queries 100000 --threads 2
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from identify_bold import DATA, choose_queries, load

from bioscan5m.tasks.identify import BarcodeIdentifier

RANKS = ("order", "family", "subfamily", "genus", "species")
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def mutate(sequences: list[str], rate: float, rng: np.random.Generator) -> list[str]:
    """Each sequence with a ``rate`` share of its bases replaced by a random other base."""
    out = []
    for seq in sequences:
        raw = np.frombuffer(seq.encode("ascii"), dtype=np.uint8).copy()
        where = np.flatnonzero(rng.random(len(raw)) < rate)
        raw[where] = _BASES[(np.searchsorted(_BASES, raw[where]) + rng.integers(1, 4, len(where))) % 4]
        out.append(raw.tobytes().decode("ascii"))
    return out


def synthetic_reference(real: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` distinct barcodes: the real ones first, then mutated copies of random real ones."""
    real = real.drop_duplicates("dna_barcode").reset_index(drop=True)
    parts, seen, total = [real.iloc[:n]], set(real["dna_barcode"].iloc[:n]), min(n, len(real))
    while total < n:
        source = real.iloc[rng.integers(0, len(real), min(n - total, 200_000))].reset_index(drop=True)
        source["dna_barcode"] = mutate(source["dna_barcode"].tolist(), 0.01, rng)
        source = source[~source["dna_barcode"].isin(seen)].drop_duplicates("dna_barcode")
        seen.update(source["dna_barcode"])
        parts.append(source)
        total += len(source)
        print(f"  reference: {total:,} / {n:,} barcodes", file=sys.stderr)
    frame = pd.concat(parts, ignore_index=True).iloc[:n]
    frame["processid"] = [f"SYN{i:07d}" for i in range(len(frame))]
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--references", type=int, default=1_000_000, help="distinct reference barcodes")
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    real, _ = choose_queries(load(args.data), 0, args.seed)
    reference = synthetic_reference(real[["processid", *RANKS, "dna_barcode"]], args.references, rng)
    picked = reference.iloc[rng.integers(0, len(reference), args.queries)].reset_index(drop=True)
    barcodes = mutate(picked["dna_barcode"].tolist(), 0.005, rng)
    short = rng.random(len(barcodes)) < 0.1
    barcodes = [b[:150] if s else b for b, s in zip(barcodes, short)]
    queries = pd.DataFrame({"processid": [f"Q{i}" for i in range(len(barcodes))], "dna_barcode": barcodes})
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with tempfile.TemporaryDirectory(prefix="identify-scale-") as cache:
        start = time.perf_counter()
        model = BarcodeIdentifier(threads=args.threads, cache_dir=cache, progress=False).fit(reference)
        built = time.perf_counter() - start
        start = time.perf_counter()
        table = model.predict(queries)
        searched = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    right = table["species"].to_numpy(object) == picked["species"].to_numpy(object)
    containment = model._containment()
    print(f"reference: {len(reference):,} distinct barcodes ({len(model.reference_):,} after cleaning); "
          f"queries: {len(queries):,} ({int(short.sum()):,} of them 150 nt), {args.threads} threads")
    print(f"k-mer index: {type(model.index_.index).__name__}, recall@10 against exact search "
          f"{model.index_.recall:.3f}")
    print(f"containment index: one 8-mer in {containment.sampling} kept, {int(containment.frequency.sum()):,} "
          f"(8-mer, reference) pairs in {len(containment.bitmaps):,} bitmaps and {len(containment.postings):,} "
          f"postings ({containment.nbytes / 2**20:,.0f} MiB)")
    print(f"index built in {built:.1f} s; {len(queries):,} queries in {searched:.1f} s "
          f"({len(queries) / searched:,.0f} q/s)")
    print(f"named to the source barcode's species: full length {right[~short].mean():.1%}, "
          f"150 nt {right[short].mean():.1%}")
    print(f"peak RSS {peak:,.0f} MiB (of which the synthetic data alone: {rss_data:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
