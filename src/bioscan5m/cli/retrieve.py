"""``bioscan5m retrieve``: evaluate an aligned model by nearest-neighbour retrieval, or identify new specimens."""

from __future__ import annotations

import argparse
from pathlib import Path

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.errors import BioscanError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "retrieve",
        help="identify specimens by their nearest image/DNA neighbours with an aligned model (Task III)",
        description=(
            "With --out only: the Task III evaluation. Every test specimen (seen species) and test_unseen "
            "specimen (unseen species) is matched to its nearest reference specimens (train + key_unseen) "
            "by image, DNA or taxonomy text, and scored top-1/3/5 per rank from order to species (micro: "
            "per specimen, macro: mean per taxon); writes retrieval.tsv/.md (the paper's table), "
            "retrieval_long.tsv and retrieval.png. With --query-image or --query-fasta: the nearest "
            "reference specimens of your own images or barcodes and the taxonomy they suggest."),
    )
    parser.add_argument("--model", required=True, metavar="DIR", type=t.existing_folder, help="model folder written by 'bioscan5m align'")
    parser.add_argument("--data", required=True, metavar="ROOT", type=t.existing_folder, help="BIOSCAN-5M dataset folder (the references)")
    parser.add_argument("--out", metavar="DIR", help="folder for the report (or for the neighbours table of queries)")
    parser.add_argument("--query-image", nargs="+", metavar="JPG", type=t.existing_file, help="specimen photo(s) to identify")
    parser.add_argument("--query-fasta", metavar="FASTA", type=t.existing_file, help="DNA barcodes to identify (FASTA, plain or .gz)")
    parser.add_argument("--keys", choices=("image", "dna"),
                        help="compare queries with the references' images or barcodes (default: the query's kind; "
                        "--keys dna with photos is image-to-DNA retrieval)")
    parser.add_argument("-k", type=t.positive_int, default=5, help="neighbours listed per query (default: 5)")
    parser.add_argument("--index", default="flat",
                        help="search index: flat (exact, default); hnsw or ivf (approximate, for millions of "
                        "references)")
    parser.add_argument("--image-package", default="cropped_256", help="image package (default: cropped_256)")
    parser.add_argument("--batch-size", type=t.positive_int, default=64, help="specimens embedded at a time (default: 64)")
    parser.add_argument("--workers", type=t.non_negative_int, default=0, help="image-decoding worker processes (default: 0)")
    parser.add_argument("--device", default="cpu", type=t.device, help="cpu, cuda, cuda:1 ... (default: cpu)")
    parser.add_argument("--no-cache", action="store_true",
                        help="embed every split afresh and keep nothing; by default each split's embeddings are kept "
                        "in the cache folder and reused while the model and data stay the same")
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("data", "model", "query_image", "query_fasta")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.embeddings.store import store_folder
    from bioscan5m.models.multimodal import load_multimodal_model

    cache = None if args.no_cache else store_folder()
    querying = bool(args.query_image or args.query_fasta)
    if not querying and not args.out:
        raise BioscanError("give --out for the evaluation report, or --query-image/--query-fasta to identify")
    model = load_multimodal_model(args.model, device=args.device).model
    if querying:
        return _identify(model, args, cache)
    from bioscan5m.report.retrieval import write_retrieval_report
    from bioscan5m.tasks.retrieve import evaluate_retrieval, paper_table, retrieval_protocol

    long = evaluate_retrieval(model, args.data, index_kind=args.index, image_package=args.image_package,
                              batch_size=args.batch_size, num_workers=args.workers, embeddings_cache=cache)
    protocol = retrieval_protocol(model.config, long, "per-record", args.index)
    paths = write_retrieval_report(long, paper_table(long), args.out, protocol, data=args.data)
    top1 = long[(long["k"] == 1) & (long["rank"] == "species")]
    for row in top1.itertuples(index=False):
        print(f"{row.direction:>12} {row.queries:>6}: top-1 species accuracy {100 * row.micro:5.1f}% micro, "
              f"{100 * row.macro:5.1f}% macro ({row.n_queries} queries)")
    print(f"report written to {paths['table'].parent}")
    return 0


def _identify(model, args: argparse.Namespace, cache: Path | None) -> int:
    from bioscan5m.fileio import atomic_write
    from bioscan5m.tasks.retrieve import RETRIEVAL_RANKS, identify

    neighbours = identify(model, args.data, images=args.query_image or (), fasta=args.query_fasta,
                          key_modality=args.keys, k=args.k, image_package=args.image_package,
                          batch_size=args.batch_size, num_workers=args.workers, index_kind=args.index,
                          embeddings_cache=cache)
    for row in neighbours[neighbours["neighbour"] == 1].itertuples(index=False):
        names = " > ".join(str(getattr(row, rank)) for rank in RETRIEVAL_RANKS if getattr(row, rank))
        print(f"{row.query}: {names or 'no name'} (nearest {row.processid}, similarity {row.similarity:.3f})")
    if args.out:
        dest = Path(args.out) / "neighbours.tsv"
        with atomic_write(dest) as handle:
            neighbours.to_csv(handle, sep="\t", index=False)
        print(f"{len(neighbours)} neighbours written to {dest}")
    return 0
