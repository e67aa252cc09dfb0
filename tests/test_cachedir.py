"""The cache folder: its root, content hashes remembered per file identity, listing, pruning, ``bioscan5m cache``."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import platformdirs
import pytest

from bioscan5m import cachedir, filehash
from bioscan5m.cachedir import (
    CACHE_ENV,
    KINDS,
    cache_folder,
    cache_root,
    list_entries,
    prune,
    select_for_pruning,
)
from bioscan5m.cli import main
from bioscan5m.errors import BioscanError
from bioscan5m.filehash import file_sha256

DAY = 86400.0


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """An empty cache root, set as ``$BIOSCAN5M_CACHE_DIR``."""
    folder = tmp_path / "cache-root"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def make_entry(root: Path, kind: str, name: str, size: int, age_days: float, *, folder: bool = False) -> Path:
    path = root / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        path.mkdir()
        (path / "a.bin").write_bytes(b"x" * (size - size // 2))
        (path / "b.bin").write_bytes(b"y" * (size // 2))
    else:
        path.write_bytes(b"z" * size)
    stamp = time.time() - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


# --------------------------------------------------------------------------------------------- the root


def test_root_is_the_option_then_the_environment_then_the_platform_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "option") == tmp_path / "option"
    assert cache_folder("identify") == tmp_path / "env" / "identify"
    monkeypatch.delenv(CACHE_ENV)
    assert cache_root() == Path(platformdirs.user_cache_dir("bioscan5m", appauthor=False))
    with pytest.raises(BioscanError, match="unknown cache kind 'nope'"):
        cache_folder("nope")


# --------------------------------------------------------------------------------------------- hashes


@pytest.fixture
def hashed(monkeypatch) -> list[Path]:
    """Every file whose bytes are actually read to hash them."""
    calls: list[Path] = []
    original = filehash.stream_sha256

    def counting(path, size=None):
        calls.append(Path(path))
        return original(path, size)

    monkeypatch.setattr(filehash, "stream_sha256", counting)
    return calls


def test_whole_file_hash_is_streamed_and_remembered(root, tmp_path, hashed, monkeypatch):
    monkeypatch.setattr(filehash, "CHUNK_BYTES", 1000)  # many pieces
    data = os.urandom(10_500)
    source = tmp_path / "reads.fasta"
    source.write_bytes(data)
    time.sleep(0.05)  # past the clock tick of the write, so the memo can be trusted at once
    assert file_sha256(source) == hashlib.sha256(data).hexdigest()
    assert hashed == [source]
    memos = list((root / "hashes").iterdir())
    assert len(memos) == 1 and memos[0].read_text().split("\t")[0] == hashlib.sha256(data).hexdigest()
    assert file_sha256(source) == hashlib.sha256(data).hexdigest()
    assert hashed == [source]  # remembered: not read again


def test_edit_in_place_keeping_size_and_mtime_changes_the_hash(root, tmp_path, hashed):
    source = tmp_path / "table.tsv"
    source.write_bytes(b"processid\tnucleotides\nP1\tACGT\n")
    time.sleep(0.05)
    first = file_sha256(source)
    info = source.stat()
    with open(source, "r+b") as handle:  # same inode, same size
        handle.seek(-5, os.SEEK_END)
        handle.write(b"TGCA\n")
    os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (source.stat().st_size, source.stat().st_mtime_ns, source.stat().st_ino) == (
        info.st_size, info.st_mtime_ns, info.st_ino)
    second = file_sha256(source)
    assert second != first and second == hashlib.sha256(source.read_bytes()).hexdigest()
    assert len(hashed) == 2


def test_memo_in_the_tick_of_the_last_change_is_not_trusted(root, tmp_path, hashed, monkeypatch):
    source = tmp_path / "a.txt"
    source.write_bytes(b"one")
    time.sleep(0.05)
    file_sha256(source)
    memo = next((root / "hashes").iterdir())
    ctime = source.stat().st_ctime_ns
    os.utime(memo, ns=(ctime, ctime))  # as if written in the same tick as the file's last change
    file_sha256(source)
    assert len(hashed) == 2


def test_damaged_memo_is_recomputed(root, tmp_path):
    source = tmp_path / "a.txt"
    source.write_bytes(b"content")
    time.sleep(0.05)
    file_sha256(source)
    memo = next((root / "hashes").iterdir())
    memo.write_bytes(b"\xff\xfe garbage")
    assert file_sha256(source) == hashlib.sha256(b"content").hexdigest()


# --------------------------------------------------------------------------------------------- entries


def test_entries_are_listed_oldest_first_and_only_in_known_kinds(root):
    old = make_entry(root, "records", "old.parquet", 1000, age_days=40)
    index = make_entry(root, "identify", "abc123", 3000, age_days=2, folder=True)
    new = make_entry(root, "embeddings", "new.npz", 500, age_days=0.1)
    make_entry(root, "records", ".metadata.csv.xyz.part", 10, age_days=0)  # being written: not an entry
    make_entry(root, "unrelated", "keep.txt", 10, age_days=100)  # not ours: never listed
    entries = list_entries()
    assert [(e.kind, e.path, e.size) for e in entries] == [
        ("records", old, 1000), ("identify", index, 3000), ("embeddings", new, 500)]
    assert [e.path for e in list_entries(["identify"])] == [index]


def test_pruning_selects_old_entries_then_least_recently_used_until_it_fits(root):
    a = make_entry(root, "records", "a", 1000, age_days=40)
    b = make_entry(root, "records", "b", 1000, age_days=20)
    c = make_entry(root, "dedup", "c", 1000, age_days=10)
    d = make_entry(root, "reduced", "d", 1000, age_days=1)
    entries = list_entries()
    names = lambda chosen: [entry.path for entry in chosen]
    assert names(select_for_pruning(entries, older_than_days=30)) == [a]
    assert names(select_for_pruning(entries, max_size=2500)) == [a, b]
    assert names(select_for_pruning(entries, older_than_days=15, max_size=1000)) == [a, b, c]
    assert names(select_for_pruning(entries, everything=True)) == [a, b, c, d]
    assert names(select_for_pruning(entries, older_than_days=100, max_size=10_000)) == []


def test_prune_removes_whole_entries_and_stale_leftovers_only(root):
    gone = make_entry(root, "identify", "old-index", 2000, age_days=50, folder=True)
    kept = make_entry(root, "identify", "new-index", 2000, age_days=1, folder=True)
    leftover = make_entry(root, "records", ".x.parquet.abc.part", 10, age_days=3)
    fresh_temp = make_entry(root, "records", ".y.parquet.def.part", 10, age_days=0)
    foreign = make_entry(root, "unrelated", "keep.txt", 10, age_days=100)
    assert [e.path for e in prune(older_than_days=30, dry_run=True)] == [gone]
    assert gone.is_dir() and leftover.exists()  # a dry run removes nothing
    assert [e.path for e in prune(older_than_days=30)] == [gone]
    assert not gone.exists() and kept.is_dir() and not leftover.exists()
    assert fresh_temp.exists() and foreign.exists()  # a running build and other programs' files stay
    assert sorted(p.name for p in (root / "identify").iterdir()) == ["new-index"]  # no half-removed entry


def test_an_entry_is_renamed_out_of_sight_before_it_is_deleted(root, monkeypatch):
    entry = make_entry(root, "embeddings", "probe-kmer.0123", 4000, age_days=1, folder=True)
    seen = []

    def watching_rmtree(path, ignore_errors=False):
        seen.append((Path(path).name, entry.exists(), sorted(p.name for p in Path(path).iterdir())))

    monkeypatch.setattr(cachedir.shutil, "rmtree", watching_rmtree)
    cachedir.discard(entry)
    [(name, original_still_there, contents)] = seen
    assert name.startswith(".removing-") and name.endswith("probe-kmer.0123")
    assert not original_still_there and contents == ["a.bin", "b.bin"]


def test_sizes_are_parsed_and_printed_in_powers_of_1024():
    assert cachedir.parse_size("500M") == 500 << 20
    assert cachedir.parse_size("1.5G") == 3 << 29
    assert cachedir.parse_size("2gib") == 2 << 30
    assert cachedir.parse_size("123") == 123
    with pytest.raises(BioscanError, match="not a size: 'lots'"):
        cachedir.parse_size("lots")
    assert cachedir.format_size(1536) == "1.5 KiB" and cachedir.format_size(12) == "12 B"


# --------------------------------------------------------------------------------------------- the command


def test_cache_command_lists_prunes_and_prints_the_root(root, tmp_path, capsys):
    make_entry(root, "records", "metadata.csv.aaaa.parquet", 2048, age_days=40)
    make_entry(root, "identify", "0123abcd", 4096, age_days=1, folder=True)

    assert main(["cache", "dir"]) == 0
    assert capsys.readouterr().out.strip() == str(root)

    assert main(["cache", "list", "--entries"]) == 0
    out = capsys.readouterr().out
    assert f"cache folder: {root} (from ${CACHE_ENV})" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert lines["records"][1:4] == ["1", "2.0", "KiB"] and lines["identify"][1:4] == ["1", "4.0", "KiB"]
    assert lines["total"][1:4] == ["2", "6.0", "KiB"]
    assert set(KINDS) <= set(lines)
    assert "records/metadata.csv.aaaa.parquet" in out and "identify/0123abcd" in out

    assert main(["cache", "prune", "--older-than", "30", "--dry-run"]) == 0
    assert "would remove records/metadata.csv.aaaa.parquet (2.0 KiB)" in capsys.readouterr().out
    assert (root / "records" / "metadata.csv.aaaa.parquet").exists()
    assert main(["cache", "prune", "--max-size", "4K"]) == 0
    assert "removed 1 entries, 2.0 KiB" in capsys.readouterr().out
    assert not (root / "records" / "metadata.csv.aaaa.parquet").exists() and (root / "identify" / "0123abcd").is_dir()
    assert main(["cache", "prune", "--all", "--kind", "records"]) == 0
    assert (root / "identify" / "0123abcd").is_dir()
    assert main(["cache", "prune", "--all"]) == 0
    assert list_entries() == []

    other = tmp_path / "elsewhere"
    make_entry(other, "dedup", "x.parquet", 100, age_days=0)
    capsys.readouterr()
    assert main(["cache", "list", "--cache-dir", str(other)]) == 0
    assert f"cache folder: {other} (from --cache-dir)" in capsys.readouterr().out


def test_cache_command_errors_are_one_line(root, tmp_path, capsys):
    assert main(["cache", "prune"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--older-than DAYS, --max-size SIZE or --all" in err
    for bad in (["--max-size", "lots"], ["--older-than", "nan"], ["--older-than", "-1"], ["--kind", "nope"]):
        assert main(["cache", "prune", *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and bad[0] in err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["cache", "list", "--cache-dir", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not a folder" in err


def test_a_cache_folder_that_cannot_be_written_is_a_clear_error(tmp_path, monkeypatch, capsys):
    source = tmp_path / "reads.fasta"
    source.write_text(">q1\nACGTACGTAC\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    assert main(["stats", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write in the cache folder" in err and "--cache-dir" in err
    assert sorted(os.listdir(tmp_path)) == ["blocker", "reads.fasta"]
