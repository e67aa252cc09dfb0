"""How long ``identify`` takes to read its inputs: ``read_reference`` (records cache off; building the records
cache, as a first run does; reading it, as later runs do) and ``read_queries``, each call timed alone in a fresh process (imports excluded), wall and CPU seconds and the
growth of peak RSS. ``--compare-src`` times another checkout's ``src`` the same way, runs alternating, so that
both see the same load on a shared machine; medians are printed.

    python benchmarks/identify_reading.py --reference /tmp/idspeed/reference.tsv \\
        --queries /tmp/idspeed/queries.fasta --runs 9 --compare-src ../main/src

(``identify_speed.py --workdir /tmp/idspeed`` writes those two inputs.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Runs in the child: one call, timed alone; prints "wall cpu peak-RSS-growth-MiB".
_CHILD = """
import resource, sys, tempfile, time
import bioscan5m.data.records
from bioscan5m.tasks.identify.reference import read_queries, read_reference
what, path, cache = sys.argv[1:4]
call = {"uncached": lambda: read_reference(path, use_cache=False),
        "build": lambda: read_reference(path, cache_dir=tempfile.mkdtemp(dir=cache)),
        "cached": lambda: read_reference(path, cache_dir=cache), "queries": lambda: read_queries(path)}[what]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
call()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(wall, cpu, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024)
"""


def run_once(src: str, what: str, path: str, cache: str) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, what, path, cache], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compare-src", help="another checkout's src folder, timed alternately")
    args = parser.parse_args()
    sources = {"this": str(Path(__file__).resolve().parents[1] / "src")}
    if args.compare_src:
        sources["other"] = str(Path(args.compare_src).resolve())
    cases = [("uncached", args.reference), ("build", args.reference), ("cached", args.reference),
             ("queries", args.queries)]
    print("| call | src | wall median (s) | CPU median (s) | peak RSS growth (MiB) |")
    print("|---|---|---:|---:|---:|")
    for what, path in cases:
        times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sources}
        with tempfile.TemporaryDirectory() as cache:
            for name, src in sources.items():  # the records cache that the "cached" runs read
                os.makedirs(os.path.join(cache, name))
                run_once(src, what, path, os.path.join(cache, name))
            for _ in range(args.runs):
                for name, src in sources.items():
                    times[name].append(run_once(src, what, path, os.path.join(cache, name)))
        for name, runs in times.items():
            wall, cpu, rss = (statistics.median(column) for column in zip(*runs))
            print(f"| {what} | {name} | {wall:.3f} | {cpu:.3f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
