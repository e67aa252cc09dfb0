"""Running the external sequence-search programs: finding them, calling them, writing their FASTA input."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from bioscan5m.errors import BioscanError

#: Where to get each program, for the error message when it is missing.
INSTALL_HINTS = {
    "blastn": "install BLAST+ (Debian/Ubuntu: apt-get install ncbi-blast+; conda: blast)",
    "makeblastdb": "install BLAST+ (Debian/Ubuntu: apt-get install ncbi-blast+; conda: blast)",
    "vsearch": "install VSEARCH (Debian/Ubuntu: apt-get install vsearch; conda: vsearch)",
}


def find_program(name: str) -> str:
    """Absolute path of ``name`` on PATH, or a BioscanError saying how to install it."""
    found = shutil.which(name)
    if found is None:
        hint = INSTALL_HINTS.get(name, "install it and put it on PATH")
        raise BioscanError(f"the program {name!r} was not found on PATH: {hint}", value=name)
    return found


def run_program(args: Sequence[str | os.PathLike[str]]) -> None:
    """Run a program to completion; a non-zero exit becomes a BioscanError quoting its last error lines."""
    args = [str(a) for a in args]
    args[0] = find_program(args[0])
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BioscanError(f"{Path(args[0]).name} failed (exit {done.returncode}): {tail}")


def run_search(prefix: str, command: Callable[[Path], Sequence[str | os.PathLike[str]]], columns: Sequence[int],
               names: Sequence[str]) -> pd.DataFrame:
    """Run ``command(out)``, a search that writes a headerless table to ``out`` (in a throw-away folder), and
    read ``columns`` of it as ``names``; ``identity``, printed in percent by both peers, becomes a fraction."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        out = Path(tmp) / "hits.tsv"
        run_program(command(out))
        hits = read_tabular(out, columns, names)
    hits["identity"] = hits["identity"] / 100.0
    return hits


def write_fasta(path: str | os.PathLike[str], ids: Sequence[str], sequences: Sequence[str]) -> Path:
    """Write one unwrapped FASTA record per (id, sequence); ids must not contain whitespace."""
    path = Path(path)
    with open(path, "w", encoding="ascii") as handle:
        handle.writelines(f">{seq_id}\n{seq}\n" for seq_id, seq in zip(ids, sequences))
    return path


@contextlib.contextmanager
def fasta_pair(prefix: str, reference_ids: Sequence[str], reference_sequences: Sequence[str],
               query_ids: Sequence[str], query_sequences: Sequence[str]) -> Iterator[tuple[Path, Path, Path]]:
    """A throw-away folder holding ``reference.fasta`` and ``queries.fasta``: yields (folder, reference, queries)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp)
        yield (folder, write_fasta(folder / "reference.fasta", reference_ids, reference_sequences),
               write_fasta(folder / "queries.fasta", query_ids, query_sequences))


def read_tabular(path: str | os.PathLike[str], columns: Sequence[int], names: Sequence[str]) -> pd.DataFrame:
    """Read the given 0-based columns of a headerless tab-separated program output (empty file → no rows)."""
    if Path(path).stat().st_size == 0:
        return pd.DataFrame({name: pd.Series(dtype=str if i < 2 else float) for i, name in enumerate(names)})
    table = pd.read_csv(path, sep="\t", header=None, usecols=list(columns), dtype={columns[0]: str, columns[1]: str})
    table = table[list(columns)]
    table.columns = list(names)
    return table
