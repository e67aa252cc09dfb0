"""scripts/compare_revisions.py: what it rewrites before comparing, and what it reports."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(scope="module")
def compare(repo):
    spec = importlib.util.spec_from_file_location("compare_revisions", repo / "scripts" / "compare_revisions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dates_are_rewritten_in_every_text_file_and_nowhere_else(compare):
    text = b"made 2026-12-03 10:48 UTC, created 2026-12-03T10:48:42+00:00\n"
    assert compare.normalised("task1/protocol.json", text) == b"made <DATE>, created <DATE>\n"
    assert compare.normalised("stats/split_stats.tsv", text) == b"made <DATE>, created <DATE>\n"
    assert compare.normalised("runs/tiny/model.safetensors", text) == text  # binary outputs stay as written


def test_timings_are_rewritten_on_stdout_and_in_reports_but_not_in_data_tables(compare):
    stdout = b"done in 5.4 s\n[demo] align done in 37 s\nloss 5.4768, 3,363 tokens/s on cpu\n"
    assert compare.normalised("_stdout/00-synth.txt", stdout) == (
        b"done in <TIME>\n[demo] align done in <TIME>\nloss 5.4768, <SPEED> on cpu\n")
    log = b'{"step": 6, "loss": 5.4767, "tokens_per_s": 3363.14, "seconds": 8.88, "masked_accuracy": 0.0145}\n'
    assert compare.normalised("runs/tiny/train_log.jsonl", log) == (
        b'{"step": 6, "loss": 5.4767, "tokens_per_s": <TIME>, "seconds": <TIME>, "masked_accuracy": 0.0145}\n')
    table = b"rank\tseconds\nspecies\t12 s\n"
    assert compare.normalised("results/dna/dna_benchmark.tsv", table) == table


def test_folders_differ_by_missing_files_and_by_content_but_not_by_stderr(compare, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, predictions, extra in ((a, "q1\tAedes\n", "only-a.tsv"), (b, "q1\tCulex\n", "only-b.tsv")):
        (root / "_stderr").mkdir(parents=True)
        (root / "_stderr" / "00-synth.txt").write_text(f"progress {root.name}\n")  # never compared
        (root / "identify.tsv").write_text(predictions)
        (root / "stats.md").write_text("written 2026-12-03 10:48 UTC in 5.0 s\n")  # volatile only
        (root / extra).write_text("x\n")
    (b / "stats.md").write_text("written 2027-01-01 00:00 UTC in 9.9 s\n")
    assert compare.compare_folders(a, b) == [
        "only in A: only-a.tsv", "only in B: only-b.tsv",
        "differs: identify.tsv\n      -q1\tAedes\n      +q1\tCulex"]
    assert compare.compare_folders(a, a) == []
