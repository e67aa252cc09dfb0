"""Zero-shot clustering of real BOLD barcodes: AMI per rank for the k-mer profile (and BarcodeBERT).

Takes a few thousand records of species with at least 10 records from the staged BOLD table (species drawn
at random with up to 20 records each, seeded), embeds them with each encoder (cached under ``--out/embeddings``), and runs the
paper's protocol (UMAP 50 d, 30 neighbours, min_dist 0; Ward with k = number of classes; AMI).

    python benchmarks/zsc_bold.py                                    # k-mer profiles, 3,000 records
    python benchmarks/zsc_bold.py --barcodebert runs/8-4-4 --records 10000 --device cuda

Prints the AMI table as Markdown; ``--out`` keeps ami.tsv, ami_by_rank.png and the 2-D maps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bioscan5m.tasks.cluster import CLUSTERERS, ClusteringProtocol, run_zsc_benchmark

BOLD = Path(__file__).resolve().parents[2] / "shared" / "data" / "insect_bold_degobbi" / "insect_bold_records.tsv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(BOLD), help="records with taxonomy (default: staged BOLD)")
    parser.add_argument("--split", help="BIOSCAN-5M split(s) to use, e.g. test+test_unseen (BOLD has none)")
    parser.add_argument("--encoders", nargs="+", default=["kmer-profile-4", "kmer-profile-5", "kmer-profile-6"])
    parser.add_argument("--barcodebert", metavar="DIR", help="also a BarcodeBERT checkpoint (folder or hub id)")
    parser.add_argument("--records", type=int, default=3000, help="at most this many records (default 3000)")
    parser.add_argument("--min-per-species", type=int, default=10, help="species with fewer records are left out")
    parser.add_argument("--max-per-species", type=int, default=20,
                        help="records drawn per species (default 20; 0 = all of them)")
    parser.add_argument("--clusterer", default="ward", choices=CLUSTERERS,
                        help="ward (default), ward-knn, kmeans, hdbscan")
    parser.add_argument("--device", help="cpu, cuda... for BarcodeBERT (default: a GPU when there is one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="zsc_bold", help="output folder (default: ./zsc_bold)")
    args = parser.parse_args()

    encoders = list(args.encoders) + ([f"barcodebert:{args.barcodebert}"] if args.barcodebert else [])
    start = time.perf_counter()
    table = run_zsc_benchmark(args.source, encoders, args.split, args.out, max_records=args.records,
                              min_records_per_species=args.min_per_species,
                              max_records_per_species=args.max_per_species or None, seed=args.seed,
                              protocol=ClusteringProtocol(clusterer=args.clusterer, seed=args.seed),
                              device=args.device)
    seconds = time.perf_counter() - start
    first = table[table["encoder"] == table["encoder"].iloc[0]]
    print(f"{first['n_records'].max():,} records; classes per rank: "
          + ", ".join(f"{r} {c:,}" for r, c in zip(first["rank"], first["n_classes"])))
    wide = table.pivot(index="encoder", columns="rank", values="ami")[list(dict.fromkeys(table["rank"]))]
    print((100 * wide).round(1).to_markdown() if _has_tabulate() else (100 * wide).round(1).to_string())
    print(f"\nAMI in %; {seconds:.0f} s in all; report in {args.out}/")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
