"""``bioscan5m embed``: turn the DNA barcodes or images of a split into embedding vectors on disk."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="compute embedding vectors of barcodes or images with a frozen encoder (cached)",
        description=(
            "Run a frozen encoder over the records of one split and save one vector per record: "
            "embeddings.npy (float32, one row per record), ids.tsv (the record ids, same order) and "
            "manifest.json (encoder, checkpoint hash, data file, split, date). Running it again with the same "
            "encoder, checkpoint and data reuses the saved vectors; any change recomputes them. "
            "Examples: 'bioscan5m embed --data bold.tsv --encoder kmer-profile-5 --out emb/kmer5'; "
            "'bioscan5m embed --data BIOSCAN_5M --split test+test_unseen --encoder hf-image:facebook/dinov2-base "
            "--out emb/dinov2'."
        ),
    )
    parser.add_argument("--data", required=True, metavar="SOURCE", type=t.existing_path,
                        help="dataset folder or table: BIOSCAN-5M metadata CSV/JSON-LD, BOLD TSV, FASTA (.gz ok)")
    parser.add_argument("--split", help="only these splits, e.g. test, test+test_unseen, unseen (default: all)")
    parser.add_argument(
        "--encoder", required=True, metavar="NAME",
        help="kmer-profile[-K] (k-mer frequencies, default K=5), barcodebert:DIR (a BarcodeBERT model), "
             "hf-dna:MODEL (a Hugging Face DNA model id or folder), hf-image:MODEL (a Hugging Face image "
             "model, e.g. facebook/dino-vitb16, facebook/dinov2-base, openai/clip-vit-base-patch16), "
             "timm:MODEL (a timm image model, e.g. vit_base_patch16_224.dino; needs pip install "
             "'bioscan5m[timm]')",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the vectors, ids and manifest")
    parser.add_argument("--images", metavar="ROOT", type=t.existing_folder,
                        help="dataset folder holding the image zips or bioscan5m/images/ (default: the --data "
                             "folder)")
    parser.add_argument("--image-package", default="cropped_256",
                        help="image package to read: cropped_256 (default), original_256, cropped, original_full")
    parser.add_argument("--pooling", choices=("cls", "mean"),
                        help="image models: one vector from the [CLS] token (hf-image default) or the mean of the "
                             "patches (timm default: the model's own pooling)")
    parser.add_argument("--batch-size", type=t.positive_int, metavar="N", help="items per forward pass (default: per encoder)")
    parser.add_argument("--device", default="auto", type=t.device, help="cpu, cuda, cuda:1... (default: a GPU when there is one)")
    parser.add_argument("--force", action="store_true", help="recompute even when saved vectors match, and write --out even where it is an input or a device")
    t.add_trust_remote_code_argument(parser)
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("data", "images")),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.embeddings.store import embed_source

    embeddings = embed_source(
        args.data, args.encoder, args.out, split=args.split, pooling=args.pooling, device=args.device,
        batch_size=args.batch_size, image_root=args.images, image_package=args.image_package, force=args.force,
    )
    how = "reused saved" if embeddings.from_cache else "computed"
    print(f"{how} {len(embeddings):,} embeddings of dimension {embeddings.dim} with {embeddings.name} "
          f"-> {args.out}")
    return 0
