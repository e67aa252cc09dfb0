"""``bioscan5m cluster``: zero-shot clustering (Task II) of saved embeddings, scored by AMI per rank."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.cli._clustering_options import add_protocol_arguments, protocol_options, protocol_summary
from bioscan5m.data.schema import TARGET_RANKS


def register(subparsers: argparse._SubParsersAction) -> None:
    from bioscan5m.tasks.cluster import ZSC_RANKS

    parser = subparsers.add_parser(
        "cluster",
        help="cluster embeddings without training and score how well clusters match taxa (AMI per rank)",
        description=(
            "Zero-shot clustering as in the BIOSCAN-5M paper: reduce embeddings with UMAP to 50 dimensions, "
            "cluster them with Ward's method into as many clusters as there are true taxa at each rank, and "
            "score the agreement with the adjusted mutual information (AMI: 1 = clusters are exactly the "
            "taxa, 0 = no better than chance). Writes ami.tsv, ami_by_rank.png (one line per encoder) and "
            "a 2-D map coloured by taxon. "
            "Example: 'bioscan5m cluster --embeddings emb/kmer5 --embeddings emb/dinov2 "
            "--embeddings emb/dinov2 emb/kmer5 --labels bold.tsv --out zsc' compares k-mers, DINOv2 and both "
            "combined."
        ),
    )
    parser.add_argument(
        "--embeddings", required=True, action="append", nargs="+", metavar="DIR", type=t.existing_folder,
        help="folder(s) written by 'bioscan5m embed'; repeat the option to compare encoders, give several "
             "folders after one option to combine modalities (each z-scored, then concatenated)",
    )
    parser.add_argument("--labels", required=True, metavar="SOURCE", type=t.existing_path,
                        help="table with the true taxonomy of the embedded records (the --data given to embed)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for ami.tsv and the PNG plots")
    parser.add_argument("--ranks", nargs="+", choices=TARGET_RANKS, default=list(ZSC_RANKS),
                        help="ranks to score (default: %(default)s; dna_bin = Barcode Index Number)")
    add_protocol_arguments(parser)
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("embeddings", "labels")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.cluster import run_zero_shot_clustering

    table = run_zero_shot_clustering(args.embeddings, args.labels, args.out, args.ranks, **protocol_options(args))
    wide = table.pivot(index="encoder", columns="rank", values="ami")[list(dict.fromkeys(table["rank"]))]
    print("AMI per rank (1 = clusters match the taxa exactly, 0 = chance):")
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    print(protocol_summary(table))
    print(f"wrote {args.out}/ami.tsv, protocol.json, ami_by_rank.png")
    return 0
