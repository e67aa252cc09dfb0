"""``bioscan5m identify``: name new DNA barcodes from a reference with taxonomy."""

from __future__ import annotations

import argparse

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
                             "folder, or a FASTA file together with --taxonomy (plain or .gz)")
    parser.add_argument("--queries", required=True, metavar="QUERIES", type=t.existing_path,
                        help="barcodes to identify: a FASTA file or any table the reference may be")
    parser.add_argument("--out", required=True, metavar="TSV",
                        help="where to write the predictions (tab-separated, one row per query)")
    parser.add_argument("--taxonomy", metavar="TSV", type=t.existing_file,
                        help="with a FASTA reference: a TSV of taxonomy per sequence id (columns processid or id, "
                             "then order, family, subfamily, genus, species)")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                        help=f"how hits are found (default {DEFAULT_METHOD}): 'kmer' k-mer search only, "
                             "'kmer+align' k-mer search then exact alignment of the best candidates, 'blast' "
                             "BLAST+ blastn, 'vsearch' VSEARCH global alignment (both must be installed)")
    parser.add_argument("--threads", type=t.positive_int, default=None, metavar="N",
                        help="CPU threads to use (default: all)")
    add_cache_dir_option(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="index the reference afresh and keep nothing on disk")
    t.add_force_argument(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "file", ("reference", "queries", "taxonomy")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.data.records import load_records
    from bioscan5m.tasks.identify import identify

    reference = load_records(args.reference, taxonomy=args.taxonomy) if args.taxonomy else args.reference
    table = identify(reference, args.queries, args.out, method=args.method, threads=args.threads,
                     cache_dir=args.cache_dir, use_cache=not args.no_cache)
    confident = int((table["species_confidence"] >= 0.9).sum())
    novel = int(table["novel_species"].sum())
    print(f"identified {len(table)} barcodes with {args.method}: {confident} named to species with confidence "
          f">= 0.9, {novel} probably new species; predictions in {args.out}")
    return 0
