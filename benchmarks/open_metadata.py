"""Time and memory to open BIOSCAN-5M metadata: ``load_records`` against the authors' loader.

Each measurement runs in its own subprocess; its wall time is taken inside the child (imports and the
load timed apart) and its peak RSS from ``os.wait4`` (the child's ``getrusage``). For ``load_records``
"cold" builds the Parquet cache from the CSV (the cache is deleted first) and "warm" reads the cache; the
authors' loader has no cache, so its "cold" and "warm" are simply its first and second run (the OS file
cache may already hold the CSV for both). Both loaders end with a pandas DataFrame: ``load_records(...)``
is followed by ``.to_pandas()``.

    bash benchmarks/setup_reference_env.sh        # once: the authors' bioscan-dataset in its own venv
    python benchmarks/open_metadata.py --csv BIOSCAN_5M_Insect_Dataset_metadata.csv \\
        --reference-python benchmarks/.venv-reference/bin/python

Without ``--csv`` a synthetic metadata CSV of ``--records`` rows is generated first. Prints a table and
writes it as Markdown (``--markdown``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"

OURS = """
import json, time
start = time.perf_counter()
from bioscan5m.data.records import load_records
import pandas  # imported by the reference loader too: keep it out of the load time
imported = time.perf_counter()
records = load_records({csv!r}, split={split!r}, cache_dir={cache!r})
frame = records.to_pandas()
done = time.perf_counter()
print("RESULT", json.dumps({{"rows": len(frame), "import_s": imported - start, "load_s": done - imported}}))
"""

REFERENCE = """
import json, time
start = time.perf_counter()
from bioscan_dataset import load_bioscan5m_metadata
imported = time.perf_counter()
frame = load_bioscan5m_metadata({csv!r}, split={split!r})
done = time.perf_counter()
print("RESULT", json.dumps({{"rows": len(frame), "import_s": imported - start, "load_s": done - imported}}))
"""


def measure(python: str, code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh ``python``; return its RESULT dict plus ``peak_rss_mib`` of that child."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([python, "-c", textwrap.dedent(code)], stdout=out, stderr=err, env=env)
        # wait4 gives the resource usage of this child alone (RUSAGE_CHILDREN would mix all children).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"measurement failed ({python}):\n{stderr[-3000:]}")
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def synthetic_csv(records: int, out: Path) -> Path:
    try:
        from bioscan5m.data.synthetic import write_synthetic_dataset
    except ImportError as error:
        raise SystemExit(f"no synthetic generator available ({error}); pass --csv PATH") from None
    root = write_synthetic_dataset(out, records, images=False)
    return root / "bioscan5m" / "metadata" / "csv" / "BIOSCAN_5M_Insect_Dataset_metadata.csv"


def run(args: argparse.Namespace) -> list[dict]:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    csv = Path(args.csv) if args.csv else synthetic_csv(args.records, work / f"synthetic-{args.records}")
    csv = csv.resolve()
    cache = work / "cache"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    rows = []
    for split in (args.split, None):
        scope = split or "full table"
        shutil.rmtree(cache, ignore_errors=True)
        for run_name in ("cold", "warm"):
            result = measure(sys.executable, OURS.format(csv=str(csv), split=split, cache=str(cache)), env)
            rows.append({"loader": "bioscan5m load_records", "open": scope, "run": run_name, **result})
            print(_format_row(rows[-1]), flush=True)
        if args.reference_python:
            for run_name in ("cold", "warm"):
                result = measure(args.reference_python, REFERENCE.format(csv=str(csv), split=split))
                rows.append({"loader": "bioscan_dataset.load_bioscan5m_metadata", "open": scope, "run": run_name,
                             **result})
                print(_format_row(rows[-1]), flush=True)
    return rows


def _format_row(row: dict) -> str:
    return (f"{row['loader']:<42} {row['open']:<11} {row['run']:<5} rows {row['rows']:>9,}  "
            f"import {row['import_s']:6.2f} s  load {row['load_s']:8.2f} s  peak RSS {row['peak_rss_mib']:8.0f} MiB")


def markdown(rows: list[dict], csv_label: str) -> str:
    lines = [
        f"Opening `{csv_label}` (load = time after imports, to a pandas DataFrame; peak RSS of the process).",
        "",
        "| loader | open | run | rows | import (s) | load (s) | peak RSS (MiB) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['loader']} | {row['open']} | {row['run']} | {row['rows']:,} | {row['import_s']:.2f} | "
                     f"{row['load_s']:.2f} | {row['peak_rss_mib']:.0f} |")
    ratios = _ratios(rows)
    if ratios:
        lines += ["", "| open | reference load ÷ ours (warm) | reference peak RSS ÷ ours (warm) |", "|---|---:|---:|"]
        lines += [f"| {scope} | {time_ratio:.1f}× | {memory_ratio:.1f}× |" for scope, time_ratio, memory_ratio in ratios]
    return "\n".join(lines) + "\n"


def _ratios(rows: list[dict]) -> list[tuple[str, float, float]]:
    """For each open, reference ÷ ours on warm runs (the reference's better run of the two)."""
    ratios = []
    for scope in dict.fromkeys(row["open"] for row in rows):
        ours = [r for r in rows if r["open"] == scope and r["loader"].startswith("bioscan5m") and r["run"] == "warm"]
        reference = [r for r in rows if r["open"] == scope and r["loader"].startswith("bioscan_dataset")]
        if ours and reference:
            best_time = min(r["load_s"] for r in reference)
            best_memory = min(r["peak_rss_mib"] for r in reference)
            ratios.append((scope, best_time / ours[0]["load_s"], best_memory / ours[0]["peak_rss_mib"]))
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", help="BIOSCAN-5M metadata CSV (default: generate a synthetic one)")
    parser.add_argument("--records", type=int, default=100_000, help="rows of the synthetic CSV (default 100000)")
    parser.add_argument("--split", default="train", help="the split to open (default train)")
    parser.add_argument("--reference-python", help="python of a venv with bioscan-dataset "
                        "(see benchmarks/setup_reference_env.sh); without it only load_records is measured")
    parser.add_argument("--workdir", default=str(WORK), help="scratch folder for the cache and synthetic data")
    parser.add_argument("--markdown", default=str(WORK / "open_metadata.md"), help="where to write the Markdown table")
    args = parser.parse_args(argv)
    rows = run(args)
    text = markdown(rows, Path(args.csv).name if args.csv else f"synthetic CSV, {args.records:,} records")
    for scope, time_ratio, memory_ratio in _ratios(rows):
        print(f"{scope}: reference load time / ours (warm) = {time_ratio:.1f}x, peak RSS = {memory_ratio:.1f}x")
    Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(args.markdown).write_text(text)
    print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
