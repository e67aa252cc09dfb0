"""Time to open ``BIOSCAN5M`` datasets, and what the file order of several splits costs.

A single split comes straight from the record cache; several splits (``"pretrain+train"``, ``"all"``) are put
in the metadata file's row order, as the authors' loader gives them, which needs the split of every file
row: read once per metadata file (one pass over it) and kept beside the record cache. This script opens, in
one process and in this order: the record cache build, a single split, each multi-split selection twice
(first: with the file-order pass; second: from the kept answer), and reads 10,000 items of the last one.

    python benchmarks/dataset_open.py --root ROOT [--split train pretrain+train all]

Without ``--root`` a synthetic metadata file of ``--records`` rows (no images) is written first.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path


def timed(label: str, function) -> object:
    start = time.perf_counter()
    result = function()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = f"{len(result):,}" if hasattr(result, "__len__") else ""
    print(f"| {label} | {rows} | {time.perf_counter() - start:.2f} | {peak:.0f} |", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="a BIOSCAN-5M dataset root (default: a synthetic one)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--split", nargs="+", default=["train", "pretrain+train", "all"])
    args = parser.parse_args()
    from bioscan5m.data.datasets import BIOSCAN5M
    from bioscan5m.data.records import load_records

    scratch = Path(tempfile.mkdtemp(prefix="bioscan5m-open-"))
    try:
        root = args.root
        if root is None:
            from bioscan5m.data.synthetic import write_synthetic_dataset

            root = write_synthetic_dataset(scratch / "synthetic", args.records, images=False, seed=0)
        cache = scratch / "cache"  # a fresh cache: every first open below is a real first open
        print("| step | records | seconds | peak RSS (MiB) |\n|---|---:|---:|---:|")
        timed("build the record cache (load_records, all splits)", lambda: load_records(root, cache_dir=cache))
        dataset = None
        for split in args.split:
            for attempt in ("first", "again") if "+" in split or split in ("all", "seen", "unseen") else ("first",):
                dataset = timed(f"BIOSCAN5M(split={split!r}, modality='dna') {attempt}",
                                lambda split=split: BIOSCAN5M(root, split=split, modality="dna", cache_dir=cache))
        count = min(10_000, len(dataset))
        timed(f"read {count:,} items of the last one", lambda: [dataset[i] for i in range(count)])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
