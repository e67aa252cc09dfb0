"""``bioscan5m classify``: name new DNA barcodes with a fine-tuned BarcodeBERT classifier."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="name new DNA barcodes with a classifier made by 'bioscan5m finetune' (top-k taxa, probabilities)",
        description=(
            "Apply a fine-tuned BarcodeBERT classifier (the --out folder of 'bioscan5m finetune') to new "
            "barcodes. Each barcode is cleaned as in training (gaps removed, upper case, N stripped at the ends, "
            "cut to 660 nt) and gets the K most probable taxa of the classifier's rank, best first, with their "
            "probabilities. The result is a tab-separated table: id, label_1, prob_1, ..., label_K, prob_K. "
            "The classifier only knows the taxa it was trained on: a barcode of another taxon still gets one of "
            "those names, usually with a low probability."
        ),
        epilog="example: bioscan5m classify --model runs/species --queries new.fasta.gz --out predictions.tsv "
               "--top-k 3",
    )
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="a fine-tuned classifier folder (from 'bioscan5m finetune')")
    parser.add_argument("--queries", required=True, metavar="FASTA",
                        help="barcodes to name: a FASTA file (plain or .gz), or a BOLD TSV / BIOSCAN-5M table")
    parser.add_argument("--out", required=True, metavar="TSV", help="where to write the predictions")
    parser.add_argument("--top-k", type=t.positive_int, default=5, metavar="K",
                        help="how many taxa to list per barcode, best first (default: %(default)s)")
    parser.add_argument("--batch-size", type=t.positive_int, default=256, metavar="N",
                        help="barcodes per forward pass (default: %(default)s)")
    parser.add_argument("--device", default="auto", type=t.device,
                        help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)")
    t.add_force_argument(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "file", ("queries", "model")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.classify import classify_barcodes

    table = classify_barcodes(args.model, args.queries, args.out, top_k=args.top_k, batch_size=args.batch_size,
                              device=args.device)
    print(f"classified {len(table):,} barcodes with {args.model}; top {(table.shape[1] - 1) // 2} taxa per barcode "
          f"in {args.out}")
    return 0
