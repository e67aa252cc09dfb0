"""BLAST+ (``makeblastdb`` + ``blastn``) as a barcode identification peer: best hits by bitscore."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bioscan5m.errors import BioscanError
from bioscan5m.peers.programs import fasta_pair, run_program, run_search

#: Columns of every hit table returned by the peers (identity in [0, 1]; strand "+" or "-": the strand of
#: the query that matched the reference as given).
HIT_COLUMNS = ("query_id", "subject_id", "identity", "alignment_length", "bitscore", "strand")
_OUTFMT = "6 qseqid sseqid pident length bitscore sstrand"


def make_blast_db(fasta: str | os.PathLike[str], prefix: str | os.PathLike[str]) -> Path:
    """Build a nucleotide BLAST database ``prefix.*`` from a FASTA file; returns ``prefix``."""
    prefix = Path(prefix)
    run_program(["makeblastdb", "-in", fasta, "-dbtype", "nucl", "-out", prefix])
    return prefix


def blast_search(
    database: str | os.PathLike[str],
    queries: str | os.PathLike[str],
    *,
    threads: int = 1,
    max_hits: int = 1,
    task: str = "megablast",
    max_target_seqs: int | None = None,
    ranking: str = "bitscore",
) -> pd.DataFrame:
    """Search a FASTA of queries against a BLAST database; the ``max_hits`` best subjects per query.

    Subjects are ranked by bitscore (then identity), one row per (query, subject) with the subject's best
    HSP; ``ranking="blast"`` keeps blastn's own order instead (its first reported hit is the "top hit" of
    the BarcodeBERT authors' BLAST row). max_target_seqs: blastn's cut-off (None: ``max(max_hits, 5)``;
    500 is blastn's default, which the authors' command line leaves in force). Both strands are searched
    (blastn's default). Columns: :data:`HIT_COLUMNS`; queries without any hit are absent.
    """
    if ranking not in ("bitscore", "blast"):
        raise BioscanError(f"ranking must be 'bitscore' or 'blast', not {ranking!r}", value=ranking)
    if max_target_seqs is None:
        # BLAST's own cut-off can drop the best subject when it is too small; keep a margin.
        max_target_seqs = max(max_hits, 5)
    hits = run_search("bioscan5m-blast-", lambda out: [
        "blastn", "-task", task, "-query", queries, "-db", database, "-out", out, "-outfmt", _OUTFMT,
        "-num_threads", str(threads), "-max_target_seqs", str(max_target_seqs),
    ], range(6), HIT_COLUMNS)
    # sstrand is the subject's strand relative to the query's plus strand: "minus" means the query
    # matched as its reverse complement.
    hits["strand"] = hits["strand"].map({"plus": "+", "minus": "-"}).fillna("+")
    if ranking == "blast":
        hits = hits.drop_duplicates(["query_id", "subject_id"])
        return hits.groupby("query_id", sort=False).head(max_hits).reset_index(drop=True)[list(HIT_COLUMNS)]
    return _best_subjects(hits, max_hits)


def blast_top_hits(reference_ids: Sequence[str], reference_sequences: Sequence[str], query_ids: Sequence[str],
                   query_sequences: Sequence[str], *, threads: int = 1, max_hits: int = 1,
                   **search_options) -> pd.DataFrame:
    """Build a throw-away database from the reference and search the queries (see :func:`blast_search`,
    which takes ``search_options``)."""
    with fasta_pair("bioscan5m-blast-", reference_ids, reference_sequences, query_ids, query_sequences
                    ) as (tmp, reference_fasta, query_fasta):
        database = make_blast_db(reference_fasta, tmp / "reference")
        return blast_search(database, query_fasta, threads=threads, max_hits=max_hits, **search_options)


def _best_subjects(hits: pd.DataFrame, max_hits: int) -> pd.DataFrame:
    hits = hits.sort_values(["query_id", "bitscore", "identity"], ascending=[True, False, False], kind="stable")
    hits = hits.drop_duplicates(["query_id", "subject_id"])
    return hits.groupby("query_id", sort=False).head(max_hits).reset_index(drop=True)[list(HIT_COLUMNS)]
