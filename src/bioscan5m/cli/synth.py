"""``bioscan5m synth``: write a synthetic BIOSCAN-5M-like dataset (metadata CSV and image zip)."""

from __future__ import annotations

import argparse
import time

from bioscan5m.cli import _types as t
from bioscan5m.data.schema import IMAGE_PACKAGES, SPLITS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic BIOSCAN-5M-like dataset for trying the toolkit without downloads",
        description=(
            "Write a synthetic dataset in the exact layout of BIOSCAN-5M: the 23-column metadata CSV "
            "(invented but realistic taxonomy, COI-like DNA barcodes, BINs, splits, places, sizes) and, "
            "optionally, a zip of procedurally drawn specimen photos. "
            "The same seed always gives the same files."
        ),
    )
    parser.add_argument("--out", required=True, help="dataset root folder to write (created if missing)")
    parser.add_argument("--records", type=t.positive_int, default=5000,
                        help="number of specimens (records); the real dataset has 5,150,850 (default: 5000)")
    parser.add_argument("--images", action=argparse.BooleanOptionalAction, default=True,
                        help="also draw a photo of every specimen into the image zip (default: yes)")
    parser.add_argument("--seed", type=t.any_int, default=0,
                        help="random seed: same seed, same dataset (default: 0)")
    parser.add_argument("--image-package", default="cropped_256",
                        help=f"which BIOSCAN-5M image package to imitate: one of {', '.join(IMAGE_PACKAGES)} "
                             "(default: cropped_256, 256 px crops around the animal)")
    t.add_force_argument(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "dataset"),))


def run(args: argparse.Namespace) -> int:
    # Imported here: the image renderer (Pillow) would otherwise load with every bioscan5m command's parser.
    from bioscan5m.data.synthetic import METADATA_CSV, count_splits, write_synthetic_dataset

    start = time.perf_counter()
    root = write_synthetic_dataset(
        args.out, args.records, images=args.images, seed=args.seed, image_package=args.image_package
    )
    counts = count_splits(root)
    print(f"wrote {args.records:,} records to {root / METADATA_CSV}")
    if args.images:
        print(f"wrote {args.records:,} images to {root / f'BIOSCAN_5M_{args.image_package}.zip'}")
    print("split records: " + ", ".join(f"{split} {counts.get(split, 0):,}" for split in SPLITS))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
