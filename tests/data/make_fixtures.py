"""Rebuild the vendored test fixtures in this folder from the staged real data in ../shared/data.

Run from the repository root: ``python tests/data/make_fixtures.py [SHARED_DATA [OUT]]``. Every output is
byte-for-byte reproducible (gzip without a timestamp), so a rerun leaves ``git status`` clean.
See README.md here for the sources, their licences and what each file holds.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNSEEN = "barcodebert_unseen/unseen_2024-02-29_aab3f82.tsv"
UNSEEN_EVERY = 10  # every 10th data row, starting with the first
BOLD_V5 = [
    "bold_public_datapackage_samples/BOLD_Public.18-Dec-2023.sample999.tsv",
    "bold_public_datapackage_samples/BOLD_Public.21-Jun-2024.curated.NL_873b975.tsv",
]
CROPS = "bioscan1m_repo_images/cropped_images"


def write_gzip(text: bytes, dest: Path) -> None:
    """gzip with mtime 0 and no file name in the header, so the bytes depend on the content only."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as out:
        out.write(text)


def every_nth_row(path: Path, step: int) -> bytes:
    """The header and every ``step``-th data line, as they are in the file (no re-quoting)."""
    lines = path.read_bytes().splitlines(keepends=True)
    return b"".join([lines[0], *lines[1::step]])


def main(shared: Path, out: Path = HERE) -> None:
    """Write every vendored file from the staged data in ``shared`` into ``out`` (this folder by default)."""
    write_gzip(every_nth_row(shared / UNSEEN, UNSEEN_EVERY), out / "barcodebert_unseen" / "unseen_every10th.tsv.gz")
    for name in BOLD_V5:
        write_gzip((shared / name).read_bytes(), out / "bold_v5" / f"{Path(name).name}.gz")
    crops = out / "bioscan1m_crops"
    crops.mkdir(parents=True, exist_ok=True)
    for image in sorted((shared / CROPS).glob("*.jpg")):
        shutil.copyfile(image, crops / image.name)


if __name__ == "__main__":
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"
    main(shared, Path(sys.argv[2]) if len(sys.argv) > 2 else HERE)
