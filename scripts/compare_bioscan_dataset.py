"""Compare bioscan5m's BIOSCAN5M with the authors' bioscan_dataset.BIOSCAN5M item by item.

Runs in the side environment built by ``benchmarks/setup_reference_env.sh`` (bioscan-dataset needs torchvision); bioscan5m
is imported from this checkout's ``src/``. It writes a synthetic BIOSCAN-5M with images
(:func:`bioscan5m.data.synthetic.write_synthetic_dataset`), derives the other three image packages from it
(re-encoded, flipped, rotated; some greyscale and CMYK files), lays the data out twice from the same metadata
bytes (extracted folders for the authors' class, which reads only those; zips for three packages and a
folder for one for ours), then instantiates both classes for every split, group and ``+`` combination and
the options (modality, image_package, reduce_repeated_barcodes, max_nucleotides, target_type,
target_format, output_format, transforms) and compares every item: same type, NumPy dtype, value (NaN equal
to NaN), dict key order, decoded image mode, size and pixels, transformed tensors; and every column of their
``metadata`` frame (values, categories, index dtypes).

The authors' class checks its files against the official release's checksums (the metadata CSV's MD5 and
a few named official images); a synthetic dataset cannot pass them, so ``_check_integrity`` alone is
replaced by a function returning True. Nothing else of theirs is touched.

    benchmarks/.venv-reference/bin/python scripts/compare_bioscan_dataset.py --work /tmp/compat --records 2000

Prints one line per configuration and a JSON summary (``--json`` also writes it); exits 1 if any item differs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np
import pandas
import torch
from PIL import Image

from bioscan5m.data.datasets import BIOSCAN5M as Ours
from bioscan5m.data.images import IMAGES_SUBDIR
from bioscan5m.data.records import METADATA_PATHS
from bioscan5m.data.schema import SPLITS

METADATA = METADATA_PATHS[0]
RANKS = ["phylum", "class", "order", "family", "subfamily", "genus", "species", "dna_bin"]
#: Every metadata column the authors' frame holds, and the columns they add.
COLUMNS = ["processid", "chunk", *RANKS, "dna_barcode", "country", "province_state", "coord-lat", "coord-lon",
           "image_measurement_value", "area_fraction", "scale_factor", "split",
           *[f"{rank}_index" for rank in RANKS], "image_path"]
SPLIT_SPECS = [*SPLITS, "all", "seen", "unseen", "validation", "pretrain+train", "train+val", "seen+pretrain",
               "val+test_unseen+other_heldout", " test + key_unseen "]


def theirs_class():
    import bioscan_dataset.bioscan5m as authors

    # The only change: the checksum checks of the official files (metadata MD5, named official images).
    authors.BIOSCAN5M._check_integrity = lambda self, verbose=1: True
    return authors.BIOSCAN5M


# --- data -------------------------------------------------------------------------------------------


def _variant(package: str, index: int, image: Image.Image) -> Image.Image:
    """The image of ``package`` derived from the synthetic cropped_256 one, some in other modes."""
    if package == "cropped":
        return image.convert("L") if index % 5 == 0 else image
    if package == "original_256":
        flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return flipped.convert("CMYK") if index % 7 == 0 else flipped
    return image.transpose(Image.Transpose.ROTATE_90)  # original_full


def build(work: Path, records: int, seed: int) -> tuple[Path, Path]:
    """(authors' root, our root) over the same metadata file and images."""
    from bioscan5m.data.synthetic import write_synthetic_dataset

    source = work / "synthetic"
    if not (source / METADATA).is_file():
        write_synthetic_dataset(source, records, images=True, seed=seed, image_package="cropped_256")
    theirs, ours = work / "authors", work / "ours"
    for root in (theirs, ours):
        shutil.rmtree(root, ignore_errors=True)
        (root / METADATA).parent.mkdir(parents=True)
        shutil.copyfile(source / METADATA, root / METADATA)
    prefix = f"{IMAGES_SUBDIR}/cropped_256/"
    zips = {package: zipfile.ZipFile(ours / f"BIOSCAN_5M_{package}.zip", "w")
            for package in ("cropped_256", "original_256", "original_full")}
    with zipfile.ZipFile(source / "BIOSCAN_5M_cropped_256.zip") as archive:
        members = sorted(name for name in archive.namelist() if name.startswith(prefix) and name.endswith(".jpg"))
        for index, member in enumerate(members):
            data = archive.read(member)
            relative = member[len(prefix):]
            for package in ("cropped_256", "cropped", "original_256", "original_full"):
                if package == "cropped_256":
                    encoded = data
                else:
                    buffer = io.BytesIO()
                    _variant(package, index, Image.open(io.BytesIO(data))).save(buffer, "JPEG", quality=85)
                    encoded = buffer.getvalue()
                path = theirs / IMAGES_SUBDIR / package / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encoded)
                if package in zips:
                    zips[package].writestr(f"{IMAGES_SUBDIR}/{package}/{relative}", encoded)
                else:  # ours reads this package from a folder
                    mine = ours / IMAGES_SUBDIR / package / relative
                    mine.parent.mkdir(parents=True, exist_ok=True)
                    mine.write_bytes(encoded)
    for archive in zips.values():
        archive.close()
    return theirs, ours


# --- comparison -------------------------------------------------------------------------------------


def difference(a, b, where: str = "item") -> str | None:
    """None when ``a`` (ours) and ``b`` (theirs) are the same item, else what differs."""
    if type(a) is not type(b):
        return f"{where}: type {type(a).__name__} != {type(b).__name__} ({a!r:.60} vs {b!r:.60})"
    if isinstance(a, Image.Image):
        if (a.mode, a.size) != (b.mode, b.size):
            return f"{where}: image {a.mode} {a.size} != {b.mode} {b.size}"
        return None if np.array_equal(np.asarray(a), np.asarray(b)) else f"{where}: image pixels differ"
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            return f"{where}: tensor {a.dtype} {tuple(a.shape)} != {b.dtype} {tuple(b.shape)} or values differ"
        return None
    if isinstance(a, np.ndarray):
        ok = a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        return None if ok else f"{where}: array differs"
    if isinstance(a, (tuple, list)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            found = difference(a[key], b[key], f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(a, (float, np.floating)) and math.isnan(a):
        return None if math.isnan(b) else f"{where}: nan != {b!r}"
    if isinstance(a, np.generic) and a.dtype != b.dtype:
        return f"{where}: dtype {a.dtype} != {b.dtype}"
    return None if a == b else f"{where}: {a!r:.80} != {b!r:.80}"


def metadata_difference(ours, theirs) -> str | None:
    """None when every column of the authors' ``metadata`` frame is in ours with the same values (NaN equal
    to NaN), categories (in order) and index-column dtypes; else what differs."""
    for column in theirs.columns:
        if column not in ours.columns:
            return f"metadata: no column {column!r}"
        mine, their = ours[column], theirs[column]
        if isinstance(their.dtype, pandas.CategoricalDtype) and (
                not isinstance(mine.dtype, pandas.CategoricalDtype)
                or list(mine.cat.categories) != list(their.cat.categories)):
            return f"metadata[{column!r}]: categories differ"
        if column.endswith("_index") and mine.dtype != their.dtype:
            return f"metadata[{column!r}]: dtype {mine.dtype} != {their.dtype}"
        found = difference([None if pandas.isna(v) else v for v in mine.tolist()],
                           [None if pandas.isna(v) else v for v in their.tolist()], f"metadata[{column!r}]")
        if found:
            return found
    return None


def compare(name: str, theirs_root: Path, ours_root: Path, options: dict, results: list[dict]) -> None:
    start = time.perf_counter()
    Theirs = theirs_class()
    theirs = Theirs(str(theirs_root), **options)
    ours = Ours(ours_root, **options)
    differing, first = 0, None
    if len(ours) != len(theirs):
        differing, first = max(len(ours), len(theirs)), f"length {len(ours)} != {len(theirs)}"
    else:
        for i in range(len(theirs)):
            found = difference(ours[i], theirs[i], f"item {i}")
            if found:
                differing += 1
                first = first or found
    metadata = metadata_difference(ours.metadata, theirs.metadata)
    if metadata:
        differing, first = differing + 1, first or metadata
    results.append({"name": name, "options": {k: repr(v) for k, v in options.items()}, "items": len(theirs),
                    "differing": differing, "first_difference": first})
    print(f"{'OK  ' if not differing else 'DIFF'} {name}: {len(theirs)} items, {differing} differing"
          f"{'' if not first else ' — ' + first} ({time.perf_counter() - start:.1f} s)", flush=True)


class Tag:
    """A named transform, so that the printed options say what was applied."""

    def __init__(self, name: str, function) -> None:
        self.name, self.function = name, function

    def __call__(self, value):
        return self.function(value)

    def __repr__(self) -> str:
        return self.name


def configurations() -> list[tuple[str, dict]]:
    import torchvision.transforms as T

    from bioscan5m.data.transforms import image_transform

    configs: list[tuple[str, dict]] = [("defaults", {})]
    # Every split with every metadata column, every rank as target, both formats, three barcode lengths,
    # with and without deduplication.
    for split in SPLIT_SPECS:
        for reduce in (False, True):
            for max_nucleotides in (660, None, 100):
                target_format = "text" if max_nucleotides is None else "index"
                configs.append((f"{split.strip()} reduce={reduce} max={max_nucleotides} {target_format}", {
                    "split": split, "modality": ["dna", *COLUMNS], "reduce_repeated_barcodes": reduce,
                    "max_nucleotides": max_nucleotides, "target_type": RANKS, "target_format": target_format,
                    "output_format": "dict"}))
    # Target types and formats, tuple and dict.
    for target_type in ("species", "uri", "dna_bin", "order", ["genus", "species"], ["dna_bin", "family", "order"], []):
        for target_format in ("index", "text"):
            for output_format in ("tuple", "dict"):
                configs.append((f"target {target_type} {target_format} {output_format}", {
                    "split": "val+test+key_unseen", "modality": ("barcode", "species"), "target_type": target_type,
                    "target_format": target_format, "output_format": output_format}))
    # Images: every package, every split (cropped_256), the default pair with deduplication.
    for package, split in (("cropped_256", "all"), ("cropped", "train+val+other_heldout"),
                           ("original_256", "pretrain+test"), ("original_full", "train+key_unseen+test_unseen")):
        configs.append((f"images {package} {split}", {"split": split, "image_package": package,
                                                      "modality": ("image", "dna", "processid")}))
    for split in SPLITS:
        configs.append((f"images {split}", {"split": split, "output_format": "dict", "target_type": ["genus", "species"]}))
    configs.append(("images pretrain+train reduce", {"split": "pretrain+train", "reduce_repeated_barcodes": True,
                                                     "modality": ["dna_barcode", "image"]}))
    # Transforms on each modality and the target.
    torchvision_transform = Tag("torchvision Resize(40) CenterCrop(32) ToTensor()",
                                T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor()]))
    ours_transform = Tag("bioscan5m image_transform(48)", image_transform(48))
    dna_transform = Tag("reverse + length", lambda dna: (dna[::-1], len(dna)) if isinstance(dna, str) else dna)
    target_transform = Tag("type + value", lambda target: (type(target).__name__, target))
    for package, transform in (("cropped", torchvision_transform), ("original_256", ours_transform)):
        configs.append((f"transforms {package} {transform!r}", {
            "split": "test+val_unseen", "image_package": package, "transform": transform,
            "dna_transform": dna_transform, "target_transform": target_transform, "target_type": ["order", "genus"]}))
    configs.append(("transforms text dict", {"split": "key_unseen+test_unseen", "modality": "dna",
                                             "dna_transform": dna_transform, "target_transform": target_transform,
                                             "target_format": "text", "output_format": "dict"}))
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="scratch folder (the data are written here)")
    parser.add_argument("--records", type=int, default=2000, help="synthetic records (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--only", default="", help="compare only the configurations whose name contains this")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    theirs_root, ours_root = build(args.work, args.records, args.seed)
    built = time.perf_counter() - start
    results: list[dict] = []
    for name, options in [config for config in configurations() if args.only in config[0]]:
        compare(name, theirs_root, ours_root, options, results)
    import bioscan_dataset
    import torchvision

    summary = {
        "records": args.records, "configurations": len(results), "items": sum(r["items"] for r in results),
        "differing": sum(r["differing"] for r in results), "data_seconds": round(built, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "versions": {"bioscan-dataset": bioscan_dataset.__version__, "pandas": pandas.__version__,
                     "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "pillow": Image.__version__},
        "results": results,
    }
    text = json.dumps(summary, indent=1)
    if args.json:
        args.json.write_text(text)
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}))
    return 1 if summary["differing"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
