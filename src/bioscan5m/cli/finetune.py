"""``bioscan5m finetune``: fine-tune BarcodeBERT to name the species (or another rank) of DNA barcodes."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.cli._training_options import add_optimizer_options, add_run_options
from bioscan5m.data.schema import TARGET_RANKS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a BarcodeBERT DNA model to classify barcodes to species (or another rank)",
        description=(
            "Train a classifier that names the taxon of a DNA barcode: a pretrained BarcodeBERT, the average "
            "of its k-mer token vectors, and one linear layer over the taxa of the chosen rank, all trained "
            "together on the labelled records of the training split (records without a name at that rank are "
            "skipped). It is then scored on the evaluation split at that rank and, through each predicted "
            "taxon's genus, family and order, at the ranks above: micro accuracy (share of records named "
            "right) and macro accuracy (mean over taxa). --out receives the classifier (a Hugging Face folder: "
            "weights, config with the taxon names, tokenizer, model card README.md, classifier.json; "
            "'bioscan5m classify' applies it to new barcodes), metrics.tsv, predictions.tsv, checkpoints/ and "
            "train_log.jsonl; --resume continues an interrupted run."),
        epilog=("examples: bioscan5m finetune --model runs/8-4-4 --data BIOSCAN-5M/ --out runs/8-4-4-species "
                "--epochs 5 | bioscan5m finetune --model bioscan-ml/BarcodeBERT --data bold.tsv --holdout 0.2 "
                "--rank genus --out runs/bold-genus --steps 2000"),
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="the pretrained BarcodeBERT: a folder from 'bioscan5m pretrain', the authors' "
                             "checkpoint, a Hugging Face id (bioscan-ml/BarcodeBERT), or an architecture name "
                             "such as 8-4-4 to train from random weights")
    parser.add_argument("--data", required=True, metavar="SOURCE", type=t.existing_path,
                        help="labelled barcodes: a BIOSCAN-5M dataset folder or metadata CSV, a BOLD TSV, ...")
    parser.add_argument("--rank", default="species",
                        help=f"the rank to classify: {', '.join(TARGET_RANKS)} (default: %(default)s; dna_bin = "
                             "Barcode Index Number)")
    parser.add_argument("--train-split", default=None,
                        help="split(s) to train on, e.g. train or train+val (default: train; with --holdout: "
                             "every record)")
    parser.add_argument("--eval-split", default="test",
                        help="split(s) to score on (default: %(default)s; 'none' skips the evaluation)")
    parser.add_argument("--holdout", type=t.open_fraction, default=None, metavar="FRACTION",
                        help="for files without BIOSCAN-5M splits (BOLD TSV, FASTA): score on this random "
                             "share of the records, e.g. 0.2, and train on the rest")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the classifier, metrics, predictions, checkpoints and log")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=t.positive_float, help="passes over the training records (fractions allowed)")
    length.add_argument("--steps", type=t.positive_int, help="optimizer steps to train for")
    parser.add_argument("--batch-size", type=t.positive_int, default=32,
                        help="barcodes per step, all GPUs together (default: %(default)s)")
    add_optimizer_options(parser, lr=1e-4)
    parser.add_argument("--head-lr-scale", type=t.positive_float, default=1.0,
                        help="learning-rate multiplier for the new linear layer (default: %(default)s)")
    parser.add_argument("--random-offset", action="store_true",
                        help="start each barcode's k-mers at a random position in [0, k) (augmentation)")
    add_run_options(parser, save_every=0)
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("data", "model")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.finetune import finetune
    from bioscan5m.train.distributed import dist_info

    result = finetune(
        args.model, args.data, args.out, rank=args.rank, train_split=args.train_split,
        eval_split=None if args.eval_split.lower() == "none" else args.eval_split, holdout=args.holdout,
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        head_lr_scale=args.head_lr_scale, weight_decay=args.weight_decay, random_offset=args.random_offset,
        precision=args.precision, device=args.device, seed=args.seed, save_every=args.save_every,
        log_every=args.log_every, num_workers=args.workers, resume=args.resume, allow_change=args.allow_change,
    )
    if not dist_info().is_main:
        return 0
    print(f"fine-tuned on {result.n_train:,} barcodes ({result.n_classes:,} {args.rank} classes), "
          f"{result.training.steps} steps on {result.training.device}; classifier in {args.out}")
    if result.scores is not None:
        for row in result.scores.itertuples(index=False):
            print(f"  {row.split} {row.rank:<10} micro {100 * row.micro:6.2f}%  macro {100 * row.macro:6.2f}%  "
                  f"({row.queries:,} records, {row.classes:,} taxa)")
    return 0
