"""``bioscan5m align``: train a CLIBD model that puts images, DNA barcodes and taxonomy text in one space."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.cli._training_options import add_allow_change


def _modalities(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "align",
        help="train a model that aligns specimen images, DNA barcodes and taxonomy names (CLIBD)",
        description="Contrastive alignment (CLIBD, Task III): image, DNA-barcode and taxonomy-text encoders are "
        "trained so that the embeddings of one specimen lie close together. Trains on the pretrain and train "
        "splits; text is used only for records named to species. The trained model is written to --out "
        "(config.json, model.safetensors, tokenizers) with checkpoints and a training log; evaluate it with "
        "'bioscan5m retrieve'.",
    )
    parser.add_argument("--data", required=True, metavar="ROOT", type=t.existing_path,
                        help="BIOSCAN-5M dataset folder (metadata CSV and image zips or folders)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the model and checkpoints")
    parser.add_argument("--model", default="tiny",
                        help="model size: 'tiny' trains on a laptop CPU; 'vit-b16-844-bertsmall' is the paper's "
                        "ViT-B/16 + BarcodeBERT 8-4-4 + BERT-small (default: tiny)")
    parser.add_argument("--modalities", type=_modalities, default=("image", "dna", "text"),
                        help="comma-separated modalities to align, from image, dna, text (default: all three)")
    parser.add_argument("--steps", type=t.positive_int, default=1000, help="optimizer steps (default: 1000)")
    parser.add_argument("--batch-size", type=t.positive_int, default=64,
                        help="specimens per step, over all GPUs together (default: 64)")
    parser.add_argument("--accumulate", type=t.positive_int, default=1, help="micro-batches per optimizer step (default: 1)")
    parser.add_argument("--lr", type=t.positive_float, default=1e-3, help="peak learning rate (default: 1e-3)")
    parser.add_argument("--schedule", default="cosine", help="learning-rate schedule: onecycle, cosine, constant")
    parser.add_argument("--freeze", type=_modalities, default=(),
                        help="comma-separated encoders to keep fixed (only their projection trains)")
    parser.add_argument("--lora", type=_modalities, default=(),
                        help="comma-separated encoders to tune through LoRA adapters instead of fully")
    parser.add_argument("--lora-rank", type=t.positive_int, default=8, help="rank of the LoRA adapters (default: 8)")
    parser.add_argument("--dna-checkpoint", metavar="DIR", type=t.existing_path,
                        help="start the DNA encoder from this BarcodeBERT model folder (e.g. from 'bioscan5m pretrain')")
    parser.add_argument("--no-pretrained", action="store_true",
                        help="start the image and text encoders from random weights instead of downloading them")
    parser.add_argument("--text-requires", default="none", choices=("none", "order", "family", "genus", "species"),
                        help="give text only to records named at this rank (default: none, every record has "
                             "text with missing ranks written not_classified, as in CLIBD)")
    parser.add_argument("--text-pooling", default="padded-mean", choices=("padded-mean", "masked-mean"),
                        help="text embedding: the authors' mean over 20 padded positions (default) or the mean "
                             "over real tokens only")
    parser.add_argument("--dna-pooling", default="masked-mean", choices=("masked-mean", "authors-softmax-logits"),
                        help="DNA embedding: the mean of BarcodeBERT's hidden states over real tokens (default), "
                             "or CLIBD's softmax of MLM-head logits averaged over every position (a known "
                             "defect, to reproduce their table)")
    parser.add_argument("--split", default="pretrain+train", help="training splits (default: pretrain+train)")
    parser.add_argument("--image-package", default="cropped_256", help="image package (default: cropped_256)")
    parser.add_argument("--no-augment", action="store_true", help="train without image augmentation")
    parser.add_argument("--device", default="auto", type=t.device, help=t.DEVICE_HELP + " (default: auto)")
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp16 or fp32 (default: auto)")
    parser.add_argument("--workers", type=t.non_negative_int, default=0, help="image-decoding worker processes (default: 0)")
    parser.add_argument("--seed", type=t.any_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--save-every", type=t.non_negative_int, default=0, metavar="STEPS",
                        help="write a checkpoint every STEPS steps (default: only at the end)")
    parser.add_argument("--log-every", type=t.positive_int, default=10, metavar="STEPS",
                        help="print a progress line (step, loss, speed, time left) and log a row every STEPS steps "
                        "(default: 10)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its newest intact checkpoint (same options required)")
    add_allow_change(parser)
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("data", "dna_checkpoint")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.train.contrastive_step import align
    from bioscan5m.train.engine import TrainConfig

    config = TrainConfig(out_dir=args.out, steps=args.steps, batch_size=args.batch_size,
                         accumulate=args.accumulate, lr=args.lr, schedule=args.schedule, device=args.device,
                         precision=args.precision, seed=args.seed, save_every=args.save_every,
                         log_every=args.log_every, num_workers=args.workers, resume=args.resume,
                         allow_change=args.allow_change)
    options = {"modalities": args.modalities, "freeze": args.freeze, "lora": args.lora,
               "lora_rank": args.lora_rank, "text_pooling": args.text_pooling,
               "dna_pooling": args.dna_pooling,
               "text_required_rank": None if args.text_requires == "none" else args.text_requires,
               "dna_checkpoint": args.dna_checkpoint}
    if args.no_pretrained:
        options.update(pretrained_image=False, pretrained_text=False)
    model, result = align(args.data, config, model=args.model, split=args.split, image_package=args.image_package,
                          augment=not args.no_augment, **options)
    loss = "n/a" if result.loss is None else f"{result.loss:.4f}"
    print(f"aligned {', '.join(model.modalities)} for {result.steps} steps: final loss {loss}, "
          f"{result.samples_per_second:.1f} specimens/s on {result.device} ({result.precision}); "
          f"model written to {args.out}")
    return 0
