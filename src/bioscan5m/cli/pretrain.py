"""``bioscan5m pretrain``: masked-language-model pretraining of BarcodeBERT on DNA barcodes."""

from __future__ import annotations

import argparse
import os

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.cli._training_options import add_optimizer_options, add_run_options
from bioscan5m.data.schema import MAX_NUCLEOTIDES


def register(subparsers) -> None:
    from bioscan5m.models.registry import DNA_MODELS

    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a BarcodeBERT DNA model (masked k-mers) on barcodes",
        description=(
            "Teach a BarcodeBERT model the structure of DNA barcodes by hiding half of the k-mers of each "
            "barcode and training it to fill them in. Barcodes are cleaned (gaps removed, upper case, "
            f"leading/trailing N stripped), cut to {MAX_NUCLEOTIDES} nucleotides and de-duplicated. The "
            "trained model is written to --out (config.json, model.safetensors, kmer_tokenizer.json, tokenizer.json "
            "for transformers' AutoTokenizer, and a model card README.md) with "
            "checkpoints/ and train_log.jsonl; run it again with --resume after an interruption. Runs on "
            "several GPUs under torchrun (--batch-size is then the total over all GPUs)."
        ),
        epilog=(
            "example: bioscan5m pretrain --data BIOSCAN-5M/ --split pretrain+other_heldout --model 8-4-4 "
            "--out runs/8-4-4 --steps 100000 --batch-size 256 --save-every 2000"
        ),
    )
    parser.add_argument("--data", required=True, metavar="SOURCE", type=t.existing_path,
                        help="barcodes: a BIOSCAN-5M dataset folder or metadata CSV, a BOLD TSV, or a FASTA "
                             "file")
    parser.add_argument("--split", default=None,
                        help="BIOSCAN-5M split(s) to train on (default: pretrain+other_heldout, as in the "
                             "paper; every record of a source without splits); test and test_unseen are "
                             "refused unless named here")
    parser.add_argument("--cleaning", choices=("standard", "barcodebert"), default="standard",
                        help="barcode cleaning: standard (gaps, leading/trailing N removed, cut to 660 nt) "
                             "or barcodebert (the authors': trailing N only, keeping the k-mer frame) "
                             "(default: %(default)s)")
    parser.add_argument("--deduplicate", choices=("selection", "whole-dataset"), default="selection",
                        help="one copy of each barcode among the chosen records (selection), or the authors' "
                             "rule: over the whole metadata file, first row kept, before the split is taken "
                             "(default: %(default)s)")
    parser.add_argument("--model", default="8-4-4", choices=list(DNA_MODELS),
                        help="architecture: k-layers-heads; 8-4-4 is the paper's, *-tiny ones suit a CPU "
                             "(default: %(default)s)")
    parser.add_argument("--init", default=None, metavar="MODEL",
                        help="start from these weights (a model folder, the authors' checkpoint or a Hugging "
                             "Face id such as bioscan-ml/BarcodeBERT) instead of random ones")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the model, checkpoints and log")
    parser.add_argument("--steps", type=t.positive_int, required=True, help="optimizer steps to train for")
    parser.add_argument("--batch-size", type=t.positive_int, default=256,
                        help="barcodes per micro-batch, all GPUs together (default: %(default)s)")
    parser.add_argument("--accumulate", type=t.positive_int, default=1,
                        help="micro-batches per optimizer step, to train large batches on little memory")
    add_optimizer_options(parser, lr=5e-4)
    parser.add_argument("--mask-ratio", type=t.open_fraction, default=0.5,
                        help="share of k-mers hidden in each barcode (default: %(default)s, as in the paper)")
    parser.add_argument("--masking", default="mask",
                        help="mask: every hidden k-mer becomes [MASK] (the authors' choice, default); bert: "
                             "80%% [MASK], 10%% random k-mer, 10%% unchanged")
    parser.add_argument("--no-random-offset", action="store_true",
                        help="always start the k-mers at the first nucleotide (default: a random start in "
                             "[0, k))")
    add_run_options(parser, save_every=1000)
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("data", "init")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.models.registry import create_dna_model
    from bioscan5m.train.distributed import dist_info
    from bioscan5m.train.engine import TrainConfig
    from bioscan5m.train.pretrain import load_pretraining_barcodes, pretrain
    from bioscan5m.train.seeding import seed_everything

    barcodes = load_pretraining_barcodes(args.data, args.split, cleaning=args.cleaning,
                                         deduplicate=args.deduplicate)
    seed_everything(args.seed)  # the initial weights are part of what the seed fixes
    model = create_dna_model(args.model, pretrained=args.init)
    config = TrainConfig(
        out_dir=args.out, steps=args.steps, batch_size=args.batch_size, accumulate=args.accumulate, lr=args.lr,
        weight_decay=args.weight_decay, precision=args.precision, device=args.device, seed=args.seed,
        save_every=args.save_every, log_every=args.log_every, num_workers=args.workers, resume=args.resume,
        allow_change=args.allow_change,
        definition={
            "data": {"source": os.path.abspath(args.data), "split": args.split},
            "init": os.path.abspath(args.init) if args.init and os.path.exists(args.init) else args.init,
        },
    )
    result = pretrain(model, barcodes, config, mask_ratio=args.mask_ratio, masking=args.masking,
                      random_offset=not args.no_random_offset)
    if dist_info().is_main:
        _write_model_card(args, model, result, len(barcodes))
        loss = "n/a" if result.loss is None else f"{result.loss:.4f}"
        print(f"pretrained {args.model} on {len(barcodes):,} unique barcodes: step {result.steps}, "
              f"loss {loss}, {result.tokens_per_second:,.0f} tokens/s on {result.device} ({result.precision}); "
              f"model in {args.out}")
    return 0


def _write_model_card(args: argparse.Namespace, model, result, n_barcodes: int) -> None:
    """Replace the architecture-only card saved with the weights by one with this run's data and steps."""
    from pathlib import Path

    from bioscan5m.models.card import MASKED_LM, ModelCard

    split = f", split {args.split}" if args.split else ""
    init = args.init and (Path(args.init).name if Path(args.init).exists() else args.init)
    training = {"unique barcodes": n_barcodes, "steps": result.steps, "batch size": args.batch_size,
                "accumulation": args.accumulate, "peak learning rate": args.lr, "weight decay": args.weight_decay,
                "masked share": args.mask_ratio, "masking": args.masking, "random offset": not args.no_random_offset,
                "precision": result.precision, "seed": args.seed, "final loss": result.loss}
    ModelCard(MASKED_LM, args.model, model.card_architecture(), data=f"{Path(args.data).name}{split}",
              training=training, base_model=init).write(args.out)
