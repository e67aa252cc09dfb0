"""Warm open of one split through the record cache: what keying the cache by content costs.

Runs ``load_records(CSV, split=SPLIT, cache_dir=CACHE)`` in fresh processes with the ``src`` folder given by
``--src`` (so two checkouts can be compared on the same file): once cold (cache folder emptied first, which
also forgets remembered hashes), then ``--repeats`` warm opens; prints the cold time and the median and
minimum warm time (load only, imports excluded), and the time of one warm open after ``touch`` (the content
hash is computed again, the table is not rebuilt).

    python benchmarks/warm_open.py --csv synth200k/bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv \\
        --src src --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CODE = """
import json, time
from bioscan5m.data.records import load_records
start = time.perf_counter()
records = load_records({csv!r}, split={split!r}, cache_dir={cache!r})
print("RESULT", json.dumps({{"rows": len(records), "load_s": time.perf_counter() - start}}))
"""


def measure(src: str, csv: str, split: str, cache: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "BIOSCAN5M_CACHE_DIR": cache,
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CODE.format(csv=csv, split=split, cache=cache)],
                          capture_output=True, text=True, env=env, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="bioscan5m-warm-open-")
    try:
        cold = measure(args.src, args.csv, args.split, cache)
        warm = [measure(args.src, args.csv, args.split, cache)["load_s"] for _ in range(args.repeats)]
        Path(args.csv).touch()
        touched = measure(args.src, args.csv, args.split, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{args.src}: {cold['rows']:,} rows of {args.split}; cold {cold['load_s']:.2f} s; warm median "
          f"{statistics.median(warm) * 1000:.1f} ms, min {min(warm) * 1000:.1f} ms; after touch "
          f"{touched['load_s'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
