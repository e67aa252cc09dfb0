"""Identification of new DNA barcodes: "what is this barcode?", against a reference with taxonomy.

:class:`BarcodeIdentifier` (scikit-learn style: ``fit(reference).predict(queries)``) searches PCA-compressed
k-mer profiles with FAISS, verifies the best candidates by exact alignment, and names each rank by a
similarity-weighted, lineage-consistent vote with confidences calibrated on the reference itself; it
also scores how likely the query's species is missing from the reference. Queries are searched on both
strands and may be partial barcodes; a query that cannot be answered (too short, low-complexity, no
related reference) gets a ``status`` instead of a name. BLAST+ and VSEARCH can stand
in for the search (``method="blast"`` / ``"vsearch"``). See docs/identify.md.
"""

from bioscan5m.tasks.identify.identifier import (
    DEFAULT_METHOD,
    HIT_COLUMNS,
    METHODS,
    OUTPUT_COLUMNS,
    BarcodeIdentifier,
    default_hits_path,
    default_index_dir,
    identify,
)
from bioscan5m.tasks.identify.queries import STATUSES

__all__ = ["DEFAULT_METHOD", "HIT_COLUMNS", "METHODS", "OUTPUT_COLUMNS", "STATUSES", "BarcodeIdentifier",
           "default_hits_path", "default_index_dir", "identify"]
