"""End-to-end speed of ``bioscan5m identify`` against VSEARCH on the held-out BOLD queries (issue 11, item 8).

Same reference and queries as ``identify_bold.py`` (seeded hold-out; ``--queries 0`` = every held-out
record). Timed from process start to the TSV written: ``bioscan5m identify`` with its index built in the
run (empty cache), then again with the index cached, and ``vsearch --usearch_global --strand both`` with
the same threads. The CPU seconds each used are printed too: on a machine shared with other work the
wall-clock ratio moves with the load, the CPU ratio much less. ``--repeats N`` runs the three N times, one
after the other in turn (so that a slow spell of the machine falls on all of them), and prints each round's
ratios and the median of every figure.

    python benchmarks/identify_speed.py --threads 2 --repeats 3

``--workdir DIR`` keeps the inputs, e.g. to time or profile one phase of ``bioscan5m identify`` on them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from identify_bold import DATA, choose_queries, load

from bioscan5m.peers.programs import find_program, write_fasta


def timed(command: list[str]) -> tuple[float, float]:
    """Wall-clock seconds of ``command`` and the CPU seconds (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--queries", type=int, default=0, help="held-out queries (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three runs (medians printed)")
    parser.add_argument("--workdir", type=Path, help="keep the inputs (reference.tsv, queries.fasta, "
                                                     "reference.fasta) and outputs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    reference, queries = choose_queries(load(args.data), args.queries or None, args.seed)
    with tempfile.TemporaryDirectory(prefix="identify-speed-") as scratch:
        tmp = args.workdir or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        reference.rename(columns={"dna_barcode": "nucleotides"}).drop(columns=["kind"], errors="ignore").to_csv(
            tmp / "reference.tsv", sep="\t", index=False)
        write_fasta(tmp / "reference.fasta", reference["processid"], reference["dna_barcode"])
        write_fasta(tmp / "queries.fasta", queries["processid"], queries["dna_barcode"])
        ours = [sys.executable, "-m", "bioscan5m", "identify", "--reference", str(tmp / "reference.tsv"),
                "--queries", str(tmp / "queries.fasta"), "--out", str(tmp / "out.tsv"), "--threads",
                str(args.threads), "--cache-dir", str(tmp / "cache")]
        vsearch = [find_program("vsearch"), "--usearch_global", str(tmp / "queries.fasta"), "--db",
                   str(tmp / "reference.fasta"), "--id", "0.5", "--strand", "both", "--threads", str(args.threads),
                   "--blast6out", str(tmp / "vsearch.tsv"), "--quiet"]
        load_before = os.getloadavg()[0]
        rounds = []
        for round_ in range(1, args.repeats + 1):
            shutil.rmtree(tmp / "cache", ignore_errors=True)  # the first run builds the index
            times = {"built": timed(ours), "cached": timed(ours), "vsearch": timed(vsearch)}
            rounds.append(times)
            if args.repeats > 1:
                peer = times["vsearch"][0]
                print(f"round {round_}: built {times['built'][0]:.1f} s (x{peer / times['built'][0]:.1f}), cached "
                      f"{times['cached'][0]:.1f} s (x{peer / times['cached'][0]:.1f}), vsearch {peer:.1f} s",
                      flush=True)
    median = {name: (statistics.median(r[name][0] for r in rounds), statistics.median(r[name][1] for r in rounds))
              for name in rounds[0]}
    (built, built_cpu), (cached, cached_cpu), (peer, peer_cpu) = median["built"], median["cached"], median["vsearch"]
    ratio = {name: statistics.median(r["vsearch"][0] / r[name][0] for r in rounds) for name in ("built", "cached")}
    print(f"{len(queries):,} queries against {len(reference):,} reference records, {args.threads} threads; "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
          + (f"; medians of {args.repeats} rounds" if args.repeats > 1 else ""))
    print(f"identify, index built in the run: {built:.1f} s (x{ratio['built']:.1f} VSEARCH), CPU {built_cpu:.1f} s")
    print(f"identify, index cached:           {cached:.1f} s (x{ratio['cached']:.1f} VSEARCH), CPU {cached_cpu:.1f} s")
    print(f"vsearch --usearch_global --strand both: {peer:.1f} s, CPU {peer_cpu:.1f} s "
          f"(CPU ratios: x{peer_cpu / built_cpu:.1f} built, x{peer_cpu / cached_cpu:.1f} cached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
