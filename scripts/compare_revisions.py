"""Run the same CLI commands on two revisions and diff every output byte for byte.

    python scripts/compare_revisions.py REV_A REV_B [--records N] [--only NAME ...] [--keep DIR]

For a refactoring that must not change behaviour ("every CLI output byte-identical before and after").
Each revision is checked out in turn into the *same* temporary git worktree path, and its commands run in
the *same* run folder with the *same* fresh cache folder, so absolute paths printed or stored by the
package are equal in both runs and need no rewriting. The commands are those the README and docs show, at
small sizes, on a synthetic dataset written by ``bioscan5m synth`` with a fixed seed: synth, stats, identify
(k-mer and BarcodeBERT), embed (k-mer and BarcodeBERT), cluster, pretrain, probe (1-NN and linear),
finetune, classify, align, retrieve (benchmark and FASTA queries), benchmark dna and the demo (its own
``run_demo`` with the fewest training steps, :data:`DEMO_SETTINGS`: the CLI sets only ``--records``).

Every file the commands write and each command's stdout and exit status are compared byte for byte. Only
this short, explicit list of volatile content is rewritten before comparing (``VOLATILE``, ``TIMINGS``):

- dates and times of day (ISO timestamps, ``YYYY-MM-DD HH:MM UTC``) in text files;
- ``checkpoint_sha256`` and the ``cache_key`` made from it in embedding manifests: revisions before the
  embeddings layer hashed the whole model folder, ``train_log.jsonl`` (timings) included;
- elapsed times and speeds on stdout and in logs and reports (JSON, Markdown, HTML; never in TSV/CSV data):
  ``12.3 s``, ``8.6 specimens/s``, ``0:01:02``, ``"tokens_per_s": 3363.1``, ``"seconds": 8.9``.

stderr (progress bars) is kept beside the outputs but not compared. Exits 1 and lists the differing files
when anything differs, 0 when the two revisions wrote the same bytes. A whole run (two revisions) takes
about 10 minutes on a shared 2-core machine at the default sizes. The interpreter is this one
(``sys.executable``): run the script with the project's virtual environment.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

#: (name, arguments) in the order they run; later commands read what earlier ones wrote. Paths are relative
#: to the run folder. Sizes are the smallest that still exercise each command.
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("synth", ("synth", "--out", "data", "--records", "{records}", "--seed", "0")),
    ("stats", ("stats", "data", "--out", "stats")),
    ("identify", ("identify", "--reference", "data", "--queries", "queries.fasta", "--out", "identify/kmer.tsv",
                  "--hits", "3", "--threads", "1")),
    ("embed", ("embed", "--data", "data", "--split", "test+test_unseen", "--encoder", "kmer-profile-5",
               "--out", "emb/kmer5")),
    # PCA: UMAP's own spectral start is not reproducible run to run on this small, many-piece data (same seed,
    # same revision, two AMIs); the demo's clustering part still runs UMAP.
    ("cluster", ("cluster", "--embeddings", "emb/kmer5", "--labels", "data", "--out", "zsc", "--reducer", "pca",
                 "--dims", "5")),
    ("pretrain", ("pretrain", "--data", "data", "--model", "4-2-2-tiny", "--out", "runs/tiny", "--steps", "6",
                  "--batch-size", "16", "--log-every", "2", "--device", "cpu")),
    ("embed-barcodebert", ("embed", "--data", "data", "--split", "test+test_unseen", "--encoder",
                           "barcodebert:runs/tiny", "--out", "emb/bb", "--device", "cpu")),
    ("probe-knn", ("probe", "knn", "--model", "runs/tiny", "--data", "data", "--out", "probes/knn",
                   "--device", "cpu")),
    ("probe-linear", ("probe", "linear", "--model", "runs/tiny", "--data", "data", "--out", "probes/linear",
                      "--epochs", "2", "--device", "cpu")),
    ("finetune", ("finetune", "--model", "runs/tiny", "--data", "data", "--out", "runs/tiny-species",
                  "--steps", "6", "--batch-size", "16", "--log-every", "2", "--device", "cpu")),
    ("classify", ("classify", "--model", "runs/tiny-species", "--queries", "queries.fasta",
                  "--out", "classify/predictions.tsv", "--top-k", "3", "--device", "cpu")),
    ("identify-barcodebert", ("identify", "--reference", "data", "--queries", "queries.fasta",
                              "--out", "identify/bert.tsv", "--method", "barcodebert:runs/tiny-species",
                              "--threads", "1")),
    ("align", ("align", "--data", "data", "--model", "tiny", "--modalities", "image,dna,text", "--steps", "6",
               "--batch-size", "16", "--log-every", "2", "--device", "cpu", "--out", "runs/clibd")),
    ("retrieve", ("retrieve", "--model", "runs/clibd", "--data", "data", "--out", "runs/clibd/eval")),
    ("retrieve-fasta", ("retrieve", "--model", "runs/clibd", "--data", "data", "--query-fasta", "queries.fasta",
                        "-k", "3", "--out", "hits")),
    ("benchmark-dna", ("benchmark", "dna", "--data", "data", "--model", "runs/tiny", "--out", "results/dna",
                       "--steps", "6", "--probe-epochs", "2", "--batch-size", "16", "--device", "cpu",
                       "--threads", "1")),
    ("demo", ()),  # `bioscan5m demo --out demo --records N --device cpu` with DEMO_SETTINGS: see _DEMO
)
#: The demo's CLI sets only --records: its training lengths are cut here to the fewest steps that run every part.
DEMO_SETTINGS = "pretrain_steps=6, finetune_epochs=0.25, align_steps=6"

#: Volatile content, rewritten in text files before comparing (keep this list short: the point is identity).
VOLATILE: tuple[tuple[re.Pattern[bytes], bytes], ...] = (
    (re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}| UTC)?"), b"<DATE>"),
    # Before the embeddings layer, a manifest's model hash covered train_log.jsonl (timings) too.
    (re.compile(rb'"(checkpoint_sha256|cache_key)": "[0-9a-f]{64}"'), rb'"\1": "<HASH>"'),
)
#: Elapsed times and speeds: rewritten only where they are reported (TIMING_FILES), never in data tables.
TIMINGS: tuple[tuple[re.Pattern[bytes], bytes], ...] = (
    (re.compile(rb'"(\w*_per_s|seconds|elapsed\w*)": [0-9.e+-]+'), rb'"\1": <TIME>'),
    (re.compile(rb"\d[\d,]*(\.\d+)?\s?(s|ms|min|h)\b(?!/)"), b"<TIME>"),
    (re.compile(rb"\d[\d,]*(\.\d+)?[kM]?\s?[\w-]+/s\b"), b"<SPEED>"),
    (re.compile(rb"\b\d+:\d{2}(:\d{2})?\b"), b"<CLOCK>"),
)
#: Where TIMINGS apply: stdout, training logs and the JSON, Markdown and HTML reports that quote a speed.
TIMING_FILES = re.compile(r"^(_stdout/.*|.*\.(jsonl|json|md|html|log))$")
TEXT_SUFFIXES = {".tsv", ".csv", ".md", ".html", ".json", ".jsonl", ".txt", ".log", ".fasta", ".yaml"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev_a", help="the revision before (any git revision: main, HEAD~3, a commit)")
    parser.add_argument("rev_b", help="the revision after")
    parser.add_argument("--records", type=int, default=1500, help="records of the synthetic dataset (default 1500)")
    parser.add_argument("--demo-records", type=int, default=800, help="records of the demo's dataset (default 800)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[name for name, _ in COMMANDS],
                        help="run only these commands (with the ones they need, in order: give them too)")
    parser.add_argument("--keep", metavar="DIR", help="keep both runs' outputs here (default: delete them)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up like Ctrl-C: worktree removed

    repo = Path(_git(Path.cwd(), "rev-parse", "--show-toplevel"))
    commits = {label: _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}") for label, rev in
               (("a", args.rev_a), ("b", args.rev_b))}
    work = Path(tempfile.mkdtemp(prefix="bioscan5m-compare-"))
    commands = [(name, command) for name, command in COMMANDS if not args.only or name in args.only]
    sizes = {"records": str(args.records), "demo_records": str(args.demo_records)}
    try:
        for label, commit in commits.items():
            print(f"== {label}: {commit[:12]}", flush=True)
            _run_revision(repo, commit, work, commands, sizes)
            (work / "run").rename(work / label)
        differing = compare_folders(work / "a", work / "b")
    finally:
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for label in commits:
                if (work / label).exists():
                    shutil.rmtree(keep / label, ignore_errors=True)
                    shutil.move(str(work / label), keep / label)
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], check=False)
    if differing:
        print(f"{len(differing)} output(s) differ between {args.rev_a} and {args.rev_b}:")
        for line in differing:
            print(f"  {line}")
        return 1
    print(f"no difference: every output of {len(commands)} commands is byte-identical "
          f"({args.rev_a} = {commits['a'][:12]}, {args.rev_b} = {commits['b'][:12]})")
    return 0


def _run_revision(repo: Path, commit: str, work: Path, commands: list[tuple[str, tuple[str, ...]]],
                  sizes: dict[str, str]) -> None:
    """Check out ``commit`` at ``work/tree`` and run ``commands`` in ``work/run`` with the cache ``work/cache``."""
    tree, run, cache = work / "tree", work / "run", work / "cache"
    _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        run.mkdir()
        (run / "_stdout").mkdir()
        (run / "_stderr").mkdir()
        env = {**os.environ, "PYTHONPATH": str(tree / "src"), "BIOSCAN5M_CACHE_DIR": str(cache),
               "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "CUDA_VISIBLE_DEVICES": ""}
        for number, (name, command) in enumerate(commands):
            argv = [sys.executable, "-m", "bioscan5m", *(part.format(**sizes) for part in command)]
            if name == "demo":
                argv = [sys.executable, "-c", _DEMO.format(settings=DEMO_SETTINGS, **sizes)]
            result = subprocess.run(argv, cwd=run, env=env, capture_output=True, check=False)
            stem = f"{number:02d}-{name}"
            (run / "_stdout" / f"{stem}.txt").write_bytes(result.stdout + f"\n[exit {result.returncode}]\n".encode())
            (run / "_stderr" / f"{stem}.txt").write_bytes(result.stderr)
            print(f"  {name}: exit {result.returncode}", flush=True)
            if name == "synth":
                _write_queries(run)
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(cache, ignore_errors=True)


# `bioscan5m demo --out demo --records N --device cpu`, as cli/demo.py runs it, with DEMO_SETTINGS.
_DEMO = """
from bioscan5m.demo import DemoSettings, run_demo
settings = DemoSettings(records={demo_records}, device="cpu", {settings})
print(f"report: {{run_demo('demo', settings=settings)}}")
"""


def _write_queries(run: Path) -> None:
    """``queries.fasta``: the barcodes of the synthetic test and test_unseen records (at most 200)."""
    import csv

    metadata = run / "data" / "bioscan5m" / "metadata" / "csv" / "BIOSCAN_5M_Insect_Dataset_metadata.csv"
    if not metadata.is_file():
        return  # synth failed: the commands that need queries fail alike in both runs
    lines = []
    with metadata.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["split"] in {"test", "test_unseen"} and len(lines) < 400:
                lines += [f">{row['processid']}", row["dna_barcode"]]
    (run / "queries.fasta").write_text("\n".join(lines) + "\n")


def compare_folders(a: Path, b: Path) -> list[str]:
    """Lines naming each file that is missing on one side or differs after :func:`normalised`."""
    files_a = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    differing = [f"only in A: {name}" for name in sorted(files_a - files_b)]
    differing += [f"only in B: {name}" for name in sorted(files_b - files_a)]
    for name in sorted(files_a & files_b):
        if name.startswith("_stderr/"):
            continue
        left, right = normalised(name, (a / name).read_bytes()), normalised(name, (b / name).read_bytes())
        if left != right:
            differing.append(f"differs: {name}{_first_difference(left, right)}")
    return differing


def normalised(name: str, content: bytes) -> bytes:
    """``content`` with :data:`VOLATILE` (and, on stdout and in logs, :data:`TIMINGS`) rewritten."""
    if Path(name).suffix not in TEXT_SUFFIXES and not name.startswith("_stdout/"):
        return content
    rules = VOLATILE + (TIMINGS if TIMING_FILES.match(name) else ())
    for pattern, replacement in rules:
        content = pattern.sub(replacement, content)
    return content


def _first_difference(left: bytes, right: bytes) -> str:
    """The first differing line of two texts, or the byte offset of two binary files."""
    try:
        lines = difflib.unified_diff(left.decode().splitlines(), right.decode().splitlines(), lineterm="", n=0)
        changed = [line for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        return f"\n      {changed[0][:150]}\n      {changed[1][:150]}" if len(changed) > 1 else ""
    except UnicodeDecodeError:
        offset = next((i for i, (x, y) in enumerate(zip(left, right)) if x != y), min(len(left), len(right)))
        return f" (binary, {len(left):,} vs {len(right):,} bytes, first difference at byte {offset:,})"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
