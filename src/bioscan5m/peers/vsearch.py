"""VSEARCH (``--usearch_global``) as a barcode identification peer: the accepted hits per query."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from bioscan5m.peers.blast import HIT_COLUMNS
from bioscan5m.peers.programs import fasta_pair, run_search


def vsearch_search(
    reference: str | os.PathLike[str],
    queries: str | os.PathLike[str],
    *,
    threads: int = 1,
    max_hits: int = 1,
    min_identity: float = 0.5,
    max_rejects: int = 32,
) -> pd.DataFrame:
    """Global alignment of each query against a reference FASTA (VSEARCH's own k-mer pre-filter).

    With the defaults (``max_hits=1``, ``max_rejects=32``, VSEARCH's defaults) each query gets its top
    hit; both strands are searched (``--strand both``). Columns: :data:`~bioscan5m.peers.blast.HIT_COLUMNS`
    (bitscore is 0: VSEARCH does not compute one; identity = matching columns / alignment columns, terminal
    gaps excluded); queries with no hit at ``min_identity`` or better are absent.
    """
    hits = run_search("bioscan5m-vsearch-", lambda out: [
        "vsearch", "--usearch_global", queries, "--db", reference, "--id", str(min_identity),
        "--maxaccepts", str(max_hits), "--maxrejects", str(max_rejects), "--threads", str(threads),
        "--strand", "both", "--userout", out, "--userfields", "query+target+id+alnlen+qstrand", "--quiet",
    ], range(5), ("query_id", "subject_id", "identity", "alignment_length", "strand"))
    hits["bitscore"] = 0.0
    hits = hits.sort_values(["query_id", "identity"], ascending=[True, False], kind="stable")
    return hits.groupby("query_id", sort=False).head(max_hits).reset_index(drop=True)[list(HIT_COLUMNS)]


def vsearch_top_hits(reference_ids: Sequence[str], reference_sequences: Sequence[str], query_ids: Sequence[str],
                     query_sequences: Sequence[str], *, threads: int = 1, max_hits: int = 1) -> pd.DataFrame:
    """Write both sets to FASTA in a temporary folder and search (see :func:`vsearch_search`)."""
    with fasta_pair("bioscan5m-vsearch-", reference_ids, reference_sequences, query_ids, query_sequences
                    ) as (_, reference_fasta, query_fasta):
        return vsearch_search(reference_fasta, query_fasta, threads=threads, max_hits=max_hits)
