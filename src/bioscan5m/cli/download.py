"""``bioscan5m download``: fetch the BIOSCAN-5M metadata and image packages, verified."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bioscan5m.cli import _types as t
from bioscan5m.data.download import METADATA, MIRROR_ENV, download_dataset
from bioscan5m.data.schema import IMAGE_PACKAGES, SPLITS, parse_splits
from bioscan5m.errors import BioscanError

_IMAGES = "images"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download the BIOSCAN-5M metadata and images (checksummed, resumable)",
        description=(
            "Download BIOSCAN-5M from Zenodo (falling back to Hugging Face) into a dataset folder, check "
            "each file against its published MD5 checksum (its size and zip integrity where none is "
            "published), and unpack it in the official layout "
            "(ROOT/bioscan5m/metadata/..., ROOT/bioscan5m/images/PACKAGE/SPLIT/...). An interrupted "
            "download continues where it stopped when the command is run again. "
            "Examples: 'bioscan5m download --root data metadata'; "
            "'bioscan5m download --root data metadata images cropped_256 train val'."
        ),
    )
    parser.add_argument(
        "items",
        nargs="*",
        metavar="WHAT",
        help=(
            "what to fetch: 'metadata' (the table of all 5.1 million records) and/or "
            f"'images PACKAGE [SPLIT ...]', PACKAGE one of {', '.join(IMAGE_PACKAGES)} and SPLIT one of "
            f"{', '.join(SPLITS)}, seen, unseen, all or a combination such as train+val "
            "(default: all splits). Nothing given: metadata only."
        ),
    )
    parser.add_argument("--root", required=True, help="dataset folder to download into (created if missing)")
    parser.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help=f"base URL to download from instead of Zenodo/Hugging Face; repeat to give fallbacks "
        f"(default: ${MIRROR_ENV} if set)",
    )
    parser.add_argument(
        "--no-extract", action="store_true", help="keep the zip files as they are instead of unpacking them"
    )
    parser.add_argument(
        "--keep-archives", action="store_true", help="keep the zip files after unpacking them (needs twice the disk)"
    )
    parser.add_argument(
        "--retries", type=t.non_negative_int, default=5, help="how many times to retry a dropped connection, per mirror (default 5)"
    )
    parser.set_defaults(func=run, outputs=(t.Output("root", "folder"),))


def parse_items(items: Sequence[str]) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """``metadata images cropped_256 train val`` -> (("metadata", "images"), "cropped_256", ("train", "val"))."""
    what: list[str] = []
    package, splits = "cropped_256", list(SPLITS)
    tokens = list(items) or [METADATA]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == METADATA:
            what.append(METADATA)
        elif token == _IMAGES:
            if _IMAGES in what:
                raise BioscanError("give 'images PACKAGE ...' only once", value=token)
            if index >= len(tokens) or tokens[index] in (METADATA, _IMAGES):
                raise BioscanError(f"'images' needs a package: one of {', '.join(IMAGE_PACKAGES)}")
            package = tokens[index]
            index += 1
            named = []
            while index < len(tokens) and tokens[index] not in (METADATA, _IMAGES):
                named.append(tokens[index])
                index += 1
            splits = list(parse_splits(named)) if named else splits
            what.append(_IMAGES)
        else:
            raise BioscanError(f"cannot download {token!r}; expected 'metadata' or 'images PACKAGE [SPLIT ...]'",
                               value=token)
    return tuple(dict.fromkeys(what)), package, tuple(splits)


def run(args: argparse.Namespace) -> int:
    what, package, splits = parse_items(args.items)
    paths = download_dataset(
        args.root,
        what,
        image_package=package,
        splits=splits,
        mirrors=args.mirror,
        extract=not args.no_extract,
        keep_archives=args.keep_archives,
        retries=args.retries,
    )
    for path in paths:
        print(path)
    return 0
