"""A bounded load test of ``bioscan5m serve`` on loopback: many clients identifying barcodes at once.

Starts ``bioscan5m serve`` (the embedded default unless ``--reference``/``--data`` say otherwise) as its own
process on a free loopback port, waits until it answers, sends one warm-up request, then runs ``--clients``
concurrent clients that each send ``--requests`` ``POST /api/identify`` requests of ``--barcodes`` barcodes
(windows over the dataset's ``test`` + ``test_unseen`` records), ``--rounds`` times. Reports per round the
errors, latency (p50/p95/max), throughput, and the server's resident memory before, at its peak and after:
memory that stops growing after the first round is bounded (kept jobs, thread pools warmed up).

    python benchmarks/serve_load.py                              # 20 clients x 50 requests x 10 barcodes
    python benchmarks/serve_load.py --clients 5 --requests 10    # a quick check

Exits with status 1 if any request failed or one took longer than ``--bound`` seconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bioscan5m.data.records import load_records
from bioscan5m.serve.defaults import default_folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def query_sets(root: Path, size: int, count: int) -> list[str]:
    records = load_records(root, split="test+test_unseen")
    ids, barcodes = [str(i) for i in records.ids], records.barcodes(clean=False)
    sets = []
    for n in range(count):
        start = (n * size) % max(1, len(ids) - size)
        sets.append("".join(f">{ids[i]}\n{barcodes[i]}\n" for i in range(start, start + size)))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--barcodes", type=int, default=10, help="barcodes per request")
    parser.add_argument("--bound", type=float, default=30.0, help="the slowest a request may be, in seconds")
    parser.add_argument("--rounds", type=int, default=2,
                        help="times the whole load is sent (memory after each round shows whether it keeps growing)")
    parser.add_argument("--data", type=Path, help="dataset root to serve and take queries from (default: the demo's)")
    args = parser.parse_args()

    port = free_port()
    command = [sys.executable, "-m", "bioscan5m", "serve", "--port", str(port), "--map-reducer", "pca"]
    if args.data:
        command += ["--data", str(args.data)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            deadline = time.time() + 1800  # the first start of the default builds its dataset
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server stopped: {server.stderr.read().decode()}")
                try:
                    if client.get("/api/info").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.time() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.5)
            root = args.data or default_folder() / "data"
            queries = query_sets(root, args.barcodes, args.clients * args.requests)
            assert client.post("/api/identify", data={"fasta": queries[0]}).status_code == 200  # warm-up
        rounds = [run_round(url, queries, args, server.pid) for _ in range(args.rounds)]
    finally:
        server.terminate()
        server.wait(30)
    failed = []
    for number, (results, elapsed, before, peak, after) in enumerate(rounds, start=1):
        latencies = sorted(t for t, _ in results)
        errors = sum(1 for _, ok in results if not ok)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(f"| round {number}: {args.clients} clients x {args.requests} requests x {args.barcodes} barcodes | "
              f"{len(results)} requests, {errors} errors | p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, "
              f"max {latencies[-1]:.2f} s | {len(results) / elapsed:.1f} requests/s "
              f"({len(results) * args.barcodes / elapsed:.0f} barcodes/s) | server RSS {before:.0f} MB before, "
              f"{peak:.0f} MB peak, {after:.0f} MB after |")
        if errors or latencies[-1] > args.bound:
            failed.append(f"round {number}: {errors} errors, slowest request {latencies[-1]:.2f} s (bound {args.bound} s)")
    if failed:
        raise SystemExit("; ".join(failed))


def run_round(url: str, queries: list[str], args: argparse.Namespace, pid: int
              ) -> tuple[list[tuple[float, int]], float, float, float, float]:
    """One round of the load: (latency and success of each request, seconds, RSS before, peak and after)."""
    before = rss_mb(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak.append(rss_mb(pid))

    def client_run(number: int) -> list[tuple[float, int]]:
        timings = []
        with httpx.Client(base_url=url, timeout=args.bound * 4) as session:
            for n in range(args.requests):
                fasta = queries[number * args.requests + n]
                started = time.perf_counter()
                try:
                    answer = session.post("/api/identify", data={"fasta": fasta, "hits": "3"})
                    ok = answer.status_code == 200 and len(answer.json()["records"]) == args.barcodes
                except httpx.HTTPError:
                    ok = False
                timings.append((time.perf_counter() - started, int(ok)))
        return timings

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        results = [t for timings in pool.map(client_run, range(args.clients)) for t in timings]
    elapsed = time.perf_counter() - started
    done.set()
    time.sleep(1)
    after = rss_mb(pid)
    return results, elapsed, before, max(peak + [after]), after

if __name__ == "__main__":
    main()
