"""The clustering-protocol options shared by ``bioscan5m cluster`` and ``bioscan5m benchmark zsc``."""

from __future__ import annotations

import argparse
from typing import Any

from bioscan5m.cli import _types as t
from bioscan5m.data.schema import TARGET_RANKS


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the reducer, clusterer and seed options; their defaults are the paper's protocol."""
    from bioscan5m.tasks.cluster import CLUSTERERS, PAPER_PROTOCOL, READINGS, REDUCERS

    paper = PAPER_PROTOCOL
    group = parser.add_argument_group("clustering protocol (defaults: the paper's)")
    group.add_argument("--reducer", choices=REDUCERS, default=paper.reducer,
                       help="dimension reduction before clustering (default: umap, as in the paper)")
    group.add_argument("--dims", type=t.positive_int, default=paper.n_components, metavar="D",
                       help="UMAP/PCA output dimensions (default: %(default)s)")
    group.add_argument("--neighbors", type=t.positive_int, default=paper.n_neighbors, metavar="K",
                       help="UMAP neighbours (default: %(default)s)")
    group.add_argument("--min-dist", type=t.non_negative_float, default=paper.min_dist, metavar="X",
                       help="UMAP min_dist (default: %(default)s)")
    group.add_argument("--metric", default=paper.metric, help="UMAP distance: euclidean (default) or cosine")
    group.add_argument("--clusterer", choices=CLUSTERERS, default=paper.clusterer,
                       help="ward (paper; exact at every size unless --exact-limit), ward-knn (scales "
                            "to 200k+ records), kmeans, hdbscan (finds its own number of clusters)")
    group.add_argument("--exact-limit", type=t.non_negative_int, default=paper.exact_limit, metavar="N",
                       help="cluster more records than N with ward-knn instead of exact Ward (default: exact "
                            "at every size, memory-frugal when the distance matrix does not fit; 0 = always "
                            "ward-knn)")
    group.add_argument("--knn", type=t.positive_int, default=paper.knn, metavar="K",
                       help="neighbours per record in the ward-knn graph (default: %(default)s)")
    group.add_argument("--seed", type=t.any_int, default=paper.seed, help="random seed (default: %(default)s)")
    group.add_argument("--reading", choices=READINGS, default=paper.reading,
                       help="how AMI per rank is read (the paper is ambiguous): per-rank clusters each rank's "
                            "labelled records into that rank's number of classes (default; fits the published "
                            "figure); species-cut scores one species-level clustering of every record against "
                            "each rank, missing labels as a class (the authors' notebook)")
    group.add_argument("--scatter-rank", default="species", choices=(*TARGET_RANKS, "none"), metavar="RANK",
                       help="colour the 2-D map by this rank, or 'none' to skip the map (default: species)")
    group.add_argument("--no-cache", action="store_true",
                       help="reduce afresh and keep nothing; by default UMAP/PCA outputs are kept in the cache "
                            "folder and reused by the next run on the same embeddings with the same settings")


def protocol_options(args: argparse.Namespace) -> dict[str, Any]:
    """``protocol`` (a ``ClusteringProtocol``), ``scatter_rank`` and ``reuse_reduced`` from the parsed options."""
    from bioscan5m.tasks.cluster import ClusteringProtocol

    protocol = ClusteringProtocol(
        reducer=args.reducer, n_components=args.dims, n_neighbors=args.neighbors, min_dist=args.min_dist,
        metric=args.metric, clusterer=args.clusterer, exact_limit=args.exact_limit, knn=args.knn, seed=args.seed,
        reading=args.reading)
    return {"protocol": protocol, "scatter_rank": None if args.scatter_rank == "none" else args.scatter_rank,
            "reuse_reduced": not args.no_cache}


def protocol_summary(table: Any) -> str:
    """One line on the protocol that produced an AMI table (its ``attrs["protocol"]``, the record written to
    ``protocol.json``): its reading and any deviation."""
    record = table.attrs["protocol"]
    deviations = record["deviations"]
    said = "; ".join(deviations) if deviations else "none"
    return f"protocol: the paper's, {record['reading']} reading; deviations from it: {said}"
