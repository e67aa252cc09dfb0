"""``bioscan5m identify``: name new DNA barcodes from a reference with taxonomy."""

from __future__ import annotations

import argparse
import gc

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option


def register(subparsers) -> None:
    from bioscan5m.tasks.identify import DEFAULT_METHOD, METHODS

    parser = subparsers.add_parser(
        "identify",
        help="identify DNA barcodes (order to species) against a reference with taxonomy",
        description=(
            "What is this barcode? For every query barcode, predict its order, family, subfamily, genus "
            "and species from the most similar reference barcodes, with a confidence for each rank, the "
            "closest reference record and its identity, and whether the query is probably a species "
            "missing from the reference. The reference is indexed once and cached."
        ),
    )
    parser.add_argument("--reference", required=True, metavar="REF", type=t.existing_path,
                        help="reference barcodes with taxonomy: a BOLD TSV, a BIOSCAN-5M metadata CSV or dataset "
                             "folder, a FASTA with SINTAX headers (>id;tax=o:...,g:...,s:...), or a FASTA file "
                             "together with --taxonomy (plain or .gz)")
    parser.add_argument("--queries", required=True, metavar="QUERIES", type=t.existing_path,
                        help="barcodes to identify, either strand, full length or partial: a FASTA or FASTQ file "
                             "(plain or .gz) or any table the reference may be")
    parser.add_argument("--out", required=True, metavar="TSV",
                        help="where to write the predictions (tab-separated, one row per query)")
    parser.add_argument("--taxonomy", metavar="TSV", type=t.existing_file,
                        help="with a FASTA reference: a TSV of taxonomy per sequence id (columns processid or id, "
                             "then phylum, class, order, family, subfamily, genus, species; or QIIME2's "
                             "'Feature ID' and 'Taxon')")
    parser.add_argument("--method", default=DEFAULT_METHOD, metavar="METHOD",
                        help=f"how hits are found (default {DEFAULT_METHOD}): 'kmer' k-mer search only, "
                             "'kmer+align' k-mer search then exact alignment of the best candidates, 'blast' "
                             "BLAST+ blastn, 'vsearch' VSEARCH global alignment (both must be installed), "
                             "'barcodebert:DIR' the embeddings of a model made by pretrain or finetune "
                             f"(one of {', '.join(METHODS)}, barcodebert:DIR)")
    parser.add_argument("--hits", type=t.non_negative_int, default=0, metavar="N",
                        help="also write the N best reference hits of each query (reference id, BIN, identity %%, "
                             "aligned length, strand, taxonomy), like BLAST's tabular output, to --hits-out")
    parser.add_argument("--hits-out", metavar="TSV",
                        help="where --hits go (default: --out with .hits.tsv in place of its suffix)")
    parser.add_argument("--min-confidence", type=t.probability, default=0.7, metavar="P",
                        help="confidence a rank needs to enter the lineage column (default 0.7)")
    parser.add_argument("--threads", type=t.positive_int, default=None, metavar="N",
                        help="CPU threads to use (default: all)")
    add_cache_dir_option(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="index the reference afresh and keep nothing on disk")
    t.add_force_argument(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "file", ("reference", "queries", "taxonomy")),))


def run(args: argparse.Namespace) -> int:
    # The cycle collector's passes over every imported module's objects (0.2-0.4 s of a run holding the
    # GIL, mostly while scikit-learn is imported) find next to nothing to free here: they are made rare
    # during the run (Python's defaults: 700, 10, 10), and restored for a caller that goes on in this process.
    previous = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        return _identify(args)
    finally:
        gc.set_threshold(*previous)


def _identify(args: argparse.Namespace) -> int:
    from bioscan5m.data.records import load_records
    from bioscan5m.errors import BioscanError
    from bioscan5m.tasks.identify import default_hits_path, identify

    if args.hits < 0:
        raise BioscanError(f"--hits must be 0 or more, not {args.hits}", value=args.hits)
    if not 0 <= args.min_confidence <= 1:
        raise BioscanError(f"--min-confidence must be between 0 and 1, not {args.min_confidence}",
                           value=args.min_confidence)
    reference = load_records(args.reference, taxonomy=args.taxonomy) if args.taxonomy else args.reference
    table = identify(reference, args.queries, args.out, method=args.method, threads=args.threads,
                     cache_dir=args.cache_dir, use_cache=not args.no_cache, hits=args.hits, hits_out=args.hits_out,
                     min_confidence=args.min_confidence)
    print(f"identified {len(table)} barcodes with {args.method}: {summary(table)}; predictions in {args.out}"
          + (f", top hits in {args.hits_out or default_hits_path(args.out)}" if args.hits else ""))
    return 0


def summary(table) -> str:
    """Each query counted once: no answer, probably new, named to species, or named less surely."""
    answered = table["status"] == "ok"
    novel = answered & table["novel_species"]
    confident = answered & ~novel & (table["species_confidence"] >= 0.9)
    parts = [f"{int(confident.sum())} named to species with confidence >= 0.9",
             f"{int(novel.sum())} probably new species",
             f"{int((answered & ~novel & ~confident).sum())} named with less confidence"]
    unanswered = table.loc[~answered, "status"].value_counts()
    if len(unanswered):
        parts.append(f"{int((~answered).sum())} without an answer ("
                     + ", ".join(f"{count} {status}" for status, count in unanswered.items()) + ")")
    return ", ".join(parts)
