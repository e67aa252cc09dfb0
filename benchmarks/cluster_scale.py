"""Zero-shot clustering at scale: time and peak memory of embed → UMAP → Ward, exact and scalable.

For each N: embed N real BOLD barcodes with the k-mer profile (N ≤ 90k records available), or draw N
synthetic embeddings with a planted 5-level hierarchy (``--synthetic``, or automatically above the real
record count); reduce with UMAP (50 d, 30 neighbours, min_dist 0); cluster with exact Ward (when N ≤
``--exact-max``) and with the scalable ``ward-knn`` tree; score AMI at every rank. Every stage runs in its own
process, so its peak resident memory (ru_maxrss) is its own.

    python benchmarks/cluster_scale.py --sizes 10000                       # what a shared laptop can do
    python benchmarks/cluster_scale.py --sizes 10000 50000 200000 --exact-max 50000 --umap-threads
    python benchmarks/cluster_scale.py --sizes 10000 --top-clusters 5000 500 --keep /tmp/zsc_scale

Prints a Markdown table of stages and the AMI of exact and scalable Ward per rank (and their difference).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BOLD = Path(__file__).resolve().parents[2] / "shared" / "data" / "insect_bold_degobbi" / "insect_bold_records.tsv.gz"
#: Planted hierarchy for synthetic runs: 8 "orders" → 48 → 288 → 1,440 → 5,760 "species".
SYNTHETIC_BRANCHING = (8, 6, 6, 5, 4)


def child(stage: str, work: Path, options: dict) -> dict:
    """Run one stage in this process; return its wall time, peak RSS and results."""
    start = time.perf_counter()
    result: dict = {}
    if stage == "embed":
        result = _embed(work, options)
    elif stage == "umap":
        from bioscan5m.tasks.cluster import reduce_embeddings

        vectors = np.load(work / "vectors.npy")
        reduced = reduce_embeddings(vectors, "umap", seed=None if options["umap_threads"] else 0)
        np.save(work / "reduced.npy", reduced)
    else:
        from sklearn.metrics import adjusted_mutual_info_score

        from bioscan5m.tasks.cluster import WardClusterer

        reduced = np.load(work / "reduced.npy")
        labels = np.load(work / "labels.npz")
        if stage == "exact":
            model = WardClusterer()
        else:
            model = WardClusterer(n_neighbors=options["knn"], top_clusters=int(stage.split("-")[1]))
        model.fit(reduced)
        for rank in labels.files:
            truth = labels[rank]
            kept = truth >= 0
            k = len(np.unique(truth[kept]))
            if k < 2:
                continue
            # One tree over all records, cut at k (labelled subsets would each need a tree of their own).
            result[rank] = float(adjusted_mutual_info_score(truth[kept], model.cut(k)[kept]))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024, "result": result}


def _embed(work: Path, options: dict) -> dict:
    n, seed = options["n"], options["seed"]
    if options["synthetic"]:
        from bioscan5m.tasks.cluster import make_planted_hierarchy

        vectors, levels = make_planted_hierarchy(n, SYNTHETIC_BRANCHING, dim=128, spread=0.8, seed=seed)
        names = [f"level{i}" for i in range(levels.shape[1])]
        np.save(work / "vectors.npy", vectors)
        np.savez(work / "labels.npz", **dict(zip(names, levels.T)))
        return {"source": f"planted hierarchy {SYNTHETIC_BRANCHING}", "dim": 128}
    from bioscan5m.data.records import load_records
    from bioscan5m.data.schema import TARGET_RANKS
    from bioscan5m.embeddings.store import extract_embeddings

    ranks = TARGET_RANKS[TARGET_RANKS.index("order") :]
    records = load_records(options["source"], columns=["dna_barcode", *ranks])
    keep = np.zeros(len(records), dtype=bool)
    keep[np.random.default_rng(seed).choice(len(records), n, replace=False)] = True
    records = records.filter(keep)
    embeddings = extract_embeddings(records, "kmer-profile-5", work / "kmer", progress=False)
    rows = {record_id: i for i, record_id in enumerate(records.ids)}
    order = np.array([rows[record_id] for record_id in embeddings.ids])
    np.save(work / "vectors.npy", embeddings.vectors)
    np.savez(work / "labels.npz", **{rank: records.labels(rank)[order] for rank in ranks})
    return {"source": "BOLD barcodes, kmer-profile-5", "dim": embeddings.dim}


def run_stage(stage: str, work: Path, options: dict) -> dict:
    command = [sys.executable, __file__, "--child", stage, "--work", str(work), "--options", json.dumps(options)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--source", default=str(BOLD), help="table of real barcodes (default: staged BOLD)")
    parser.add_argument("--synthetic", action="store_true", help="planted-hierarchy embeddings at every size")
    parser.add_argument("--exact-max", type=int, default=20_000, help="largest N given to exact Ward")
    parser.add_argument("--knn", type=int, default=15, help="neighbours in the ward-knn graph")
    parser.add_argument("--top-clusters", type=int, nargs="+", default=[5000],
                        help="ward-knn variants: clusters left to the exact stage (default 5000, the library's)")
    parser.add_argument("--keep", metavar="DIR", help="keep embeddings and UMAP output here and reuse them")
    parser.add_argument("--umap-threads", action="store_true", help="unseeded UMAP on every core (faster)")
    parser.add_argument("--skip-umap", action="store_true",
                        help="cluster the embeddings as they are (with --synthetic: planted 50-d vectors standing "
                             "in for UMAP output), to measure the clustering stages alone at large N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.work), json.loads(args.options))))
        return

    from bioscan5m.data.records import load_records

    available = len(load_records(args.source, columns=["dna_barcode"]))
    stages_table = ["| N | data | stage | wall (s) | CPU (s) | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    ami_table = ["| N | rank | exact Ward | ward-knn top | ward-knn | difference |", "|---|---|---|---|---|---|"]
    for n in args.sizes:
        options = {"n": n, "seed": args.seed, "source": args.source, "knn": args.knn,
                   "umap_threads": args.umap_threads, "synthetic": args.synthetic or n > available}
        with tempfile.TemporaryDirectory(prefix="cluster_scale_") as tmp:
            work = Path(args.keep) / f"n{n}-seed{args.seed}" if args.keep else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            results = {}
            stages = [("embed", "labels.npz")] + ([] if args.skip_umap else [("umap", "reduced.npy")])
            for stage, output in stages:
                saved = work / f"{stage}.json"
                if not ((work / output).is_file() and saved.is_file()):
                    saved.write_text(json.dumps(run_stage(stage, work, options)))
                results[stage] = json.loads(saved.read_text())
            if args.skip_umap:
                shutil.copyfile(work / "vectors.npy", work / "reduced.npy")
            if n <= args.exact_max:
                results["exact"] = run_stage("exact", work, options)
            for top in args.top_clusters:
                results[f"scalable-{top}"] = run_stage(f"scalable-{top}", work, options)
        data = results["embed"]["result"]["source"]
        labels = {"embed": "embed", "umap": "UMAP → 50 d", "exact": "exact Ward (tree + cuts)"}
        for stage, r in results.items():
            label = labels.get(stage) or f"ward-knn, k={args.knn}, top {stage.split('-')[1]} (tree + cuts)"
            stages_table.append(f"| {n:,} | {data} | {label} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                                f"{r['peak_mb']:,.0f} |")
        exact = results.get("exact", {}).get("result", {})
        for stage in (s for s in results if s.startswith("scalable")):
            for rank, ami in results[stage]["result"].items():
                top = stage.split("-")[1]
                if rank in exact:
                    ami_table.append(f"| {n:,} | {rank} | {exact[rank]:.3f} | {top} | {ami:.3f} | "
                                     f"{ami - exact[rank]:+.3f} |")
                else:
                    ami_table.append(f"| {n:,} | {rank} | – | {top} | {ami:.3f} | – |")
        # Each size's rows as soon as they exist, so a run stopped later keeps them in its log.
        for table in (stages_table, ami_table):
            print("\n".join(table[:2] + [row for row in table[2:] if row.startswith(f"| {n:,} ")]), flush=True)
    print()
    print("\n".join(stages_table))
    print()
    print("AMI against the true labels (one tree over all N records, cut at each rank's number of classes):")
    print("\n".join(ami_table))


if __name__ == "__main__":
    main()
