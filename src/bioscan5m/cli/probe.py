"""``bioscan5m probe``: how well do frozen DNA embeddings separate taxa? Linear and 1-nearest-neighbour probes."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.data.schema import TARGET_RANKS, TAXONOMIC_RANKS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="score frozen DNA embeddings with a linear or a 1-nearest-neighbour classifier",
        description=(
            "Embed the barcodes of two groups of records with a frozen model and test how much taxonomy the "
            "vectors hold, as in the BIOSCAN-5M paper. 'linear': train a linear classifier (logistic "
            "regression) at --rank on the training records and score it on the test records (paper: train → "
            "test, species). 'knn': give each query record the taxonomy of its most similar key record "
            "(cosine similarity; paper: test_unseen queries against train keys, scored at genus, since the "
            "query species are absent from the keys). Both report micro accuracy (share of records named "
            "right) and macro accuracy (mean over taxa) at every rank from order to species. Writes "
            "<probe>_probe.tsv and <probe>_probe_predictions.tsv into --out and caches the embeddings in the "
            "cache folder (see 'bioscan5m cache')."),
        epilog=("examples: bioscan5m probe linear --model runs/8-4-4 --data BIOSCAN-5M/ --out probes | "
                "bioscan5m probe knn --model kmer-profile --data bold.tsv --holdout 0.2 --out probes"),
    )
    parser.add_argument("probe", choices=("linear", "knn"),
                        help="linear: logistic regression on the vectors; knn: the single most similar record")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a BarcodeBERT folder or checkpoint, or an encoder name: kmer-profile[-K] (k-mer "
                             "frequencies, no training), barcodebert:DIR, hf-dna:MODEL")
    parser.add_argument("--data", required=True, metavar="SOURCE", type=t.existing_path,
                        help="labelled barcodes: a BIOSCAN-5M dataset folder or metadata CSV, a BOLD TSV, ...")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the scores and the embedding cache")
    parser.add_argument("--rank", default=None,
                        help="linear: the rank the classifier learns (default species); knn: the headline rank "
                             f"of the summary (default genus). One of: {', '.join(TARGET_RANKS)}")
    parser.add_argument("--train-split", default=None,
                        help="training records (linear) or keys (knn); default: train")
    parser.add_argument("--test-split", default=None,
                        help="test records (linear) or queries (knn); default: test for linear, test_unseen "
                             "for knn")
    parser.add_argument("--holdout", type=t.open_fraction, default=None, metavar="FRACTION",
                        help="for files without BIOSCAN-5M splits (BOLD TSV, FASTA): test on this share of the "
                             "records, e.g. 0.2")
    parser.add_argument("--holdout-by", default=None, choices=("record", *TAXONOMIC_RANKS[1:]),
                        help="what --holdout sets aside: single records (default for linear) or whole taxa of a "
                             "rank, e.g. species (default for knn: unseen species, whose genus has others)")
    parser.add_argument("--epochs", type=t.positive_int, default=None,
                        help="linear: passes over the training records (default 30)")
    parser.add_argument("--device", default="auto", type=t.device, help="cpu, cuda, cuda:1 ... (default: %(default)s)")
    parser.add_argument("--batch-size", type=t.positive_int, default=None, metavar="N",
                        help="barcodes per forward pass of the model (default: per model)")
    parser.add_argument("--seed", type=t.any_int, default=0, help="random seed (default: %(default)s)")
    t.add_trust_remote_code_argument(parser)
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("data", "model")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.probes import run_probe

    result = run_probe(
        args.probe, args.data, args.model, args.out, rank=args.rank, train_split=args.train_split,
        test_split=args.test_split, holdout=args.holdout, holdout_by=args.holdout_by, seed=args.seed,
        device=args.device, batch_size=args.batch_size,
        probe_options={"epochs": args.epochs} if args.epochs is not None else None,
    )
    sides = ("training records", "test records") if args.probe == "linear" else ("keys", "queries")
    print(f"{args.probe} probe of {result.encoder}: {result.n_train:,} {sides[0]}, {result.n_test:,} {sides[1]}; "
          f"{result.rank} accuracy {100 * result.accuracy():.2f}% -> {result.files['scores']}")
    for row in result.scores.itertuples(index=False):
        print(f"  {row.rank:<10} micro {100 * row.micro:6.2f}%  macro {100 * row.macro:6.2f}%  "
              f"({row.queries:,} records, {row.classes:,} taxa)")
    return 0
