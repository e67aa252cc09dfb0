"""Zero-shot clustering (BIOSCAN-5M Task II): do frozen embeddings group specimens by taxon?

- :mod:`.protocol`: :class:`ClusteringProtocol` (the paper's by default: UMAP to 50 d, Ward with k = true
  classes), :func:`zero_shot_clustering` (AMI per rank), multimodal z-score concatenation;
- :mod:`.reduce`: UMAP / PCA / none; :mod:`.clusterers`: the clusterers by name;
- :mod:`.ward`: exact Ward and the scalable ``ward-knn`` tree for 200k+ records;
- :mod:`.evaluate`: several encoders with the report (TSV, plots) and the embed-cluster-report benchmark;
- :mod:`.planted`: synthetic embeddings with a known nested taxonomy.
"""

from bioscan5m.tasks.cluster.clusterers import (
    CLUSTERERS,
    EXACT_WARD_LIMIT,
    HdbscanClusterer,
    KMeansClusterer,
    make_clusterer,
    resolve_clusterer,
)
from bioscan5m.tasks.cluster.evaluate import (
    evaluate_encoders,
    run_zero_shot_clustering,
    run_zsc_benchmark,
    select_species_sample,
    slug,
)
from bioscan5m.tasks.cluster.planted import make_planted_hierarchy
from bioscan5m.tasks.cluster.protocol import (
    PAPER_PROTOCOL,
    READINGS,
    ZSC_RANKS,
    ClusteringProtocol,
    cluster_embeddings,
    combine_embeddings,
    record_rows,
    standardize,
    zero_shot_clustering,
)
from bioscan5m.tasks.cluster.reduce import REDUCERS, reduce_embeddings
from bioscan5m.tasks.cluster.ward import (
    EXACT_KNN_LIMIT,
    WARD_KNN_NEIGHBORS,
    WARD_TOP_CLUSTERS,
    WardClusterer,
    cut_tree,
    knn_connectivity,
    weighted_ward_children,
)

__all__ = [
    "CLUSTERERS", "EXACT_KNN_LIMIT", "EXACT_WARD_LIMIT", "PAPER_PROTOCOL", "READINGS", "REDUCERS", "WARD_KNN_NEIGHBORS",
    "WARD_TOP_CLUSTERS", "ZSC_RANKS", "ClusteringProtocol", "HdbscanClusterer", "KMeansClusterer",
    "WardClusterer", "cluster_embeddings", "combine_embeddings", "cut_tree", "evaluate_encoders",
    "knn_connectivity", "make_clusterer", "make_planted_hierarchy", "record_rows", "reduce_embeddings",
    "resolve_clusterer", "run_zero_shot_clustering", "run_zsc_benchmark", "select_species_sample", "slug",
    "standardize", "weighted_ward_children", "zero_shot_clustering",
]
