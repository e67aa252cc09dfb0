"""Shared fixtures: the real data in ../shared/data and small synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# CI sets this so that a realdata test can never be skipped silently where the staged data should be.
REQUIRE_REAL_DATA = os.environ.get("BIOSCAN5M_REQUIRE_REAL_DATA") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the staged data (directly or through a fixture) is marked ``realdata``."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (tests sit at different depths of tests/, so none builds it from ``__file__``)."""
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real BOLD/BIOSCAN files staged for tests (see ../shared/data/SOURCES.md).

    A clone on its own has no ``../shared/data``: its tests skip with a reason; where
    ``BIOSCAN5M_REQUIRE_REAL_DATA=1`` (CI), its absence fails them instead.
    """
    if not SHARED_DATA.is_dir():
        reason = f"needs the staged real data at {SHARED_DATA} (absent in a plain clone)"
        if REQUIRE_REAL_DATA:
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def unseen_barcodes(shared_data) -> list[str]:
    """The 4,278 real barcodes of BarcodeBERT's unseen-species set (1,232 contain N)."""
    table = pd.read_csv(shared_data / "barcodebert_unseen" / "unseen_2024-02-29_aab3f82.tsv", sep="\t")
    return table["nucleotides"].tolist()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread, and CI runs two test processes on two cores.

    Use it for a whole module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _cache_root_of_the_session(tmp_path_factory):
    """Every cache the tests make goes to a temporary folder of this session, never the user's cache folder.

    Entries are keyed by content, so tests may share them; a test that counts cache builds sets its own
    empty root (``monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", ...)``).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path_factory.mktemp("cache-root")))
        yield


@pytest.fixture(autouse=True)
def _cache_root_restored(monkeypatch):
    """``--cache-dir`` of a command run in-process sets ``$BIOSCAN5M_CACHE_DIR``: restore it after each test."""
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", os.environ["BIOSCAN5M_CACHE_DIR"])


VENDORED_DATA = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def vendored_data() -> Path:
    """A read-only copy of the small real fixtures in tests/fixtures (sources and licences: tests/fixtures/README.md).

    They ship with the repository, so tests using them run in a plain clone. The copy has no write bits,
    like the staged data, so a test can never write into the repository (caches go to the cache folder).
    It lives at a path named by the files' content, so record caches of earlier runs are reused.
    """
    import hashlib
    import shutil
    import tempfile

    files = sorted(p for p in VENDORED_DATA.rglob("*") if p.is_file() and p.suffix not in {".md", ".py", ".pyc"}
                   and "LICENSES" not in p.relative_to(VENDORED_DATA).parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(VENDORED_DATA).as_posix().encode() + b"\0" + path.read_bytes())
    root = Path(tempfile.gettempdir()) / f"bioscan5m-test-data-{digest.hexdigest()[:16]}"
    if not root.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
        for path in files:
            target = staging / path.relative_to(VENDORED_DATA)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        _set_write_bits(staging, False)
        try:
            staging.rename(root)  # atomic: a parallel test process either wins or finds the finished copy
        except OSError:
            _set_write_bits(staging, True)
            shutil.rmtree(staging)
    return root


def _set_write_bits(folder: Path, writable: bool) -> None:
    for path in [*folder.rglob("*"), folder]:
        path.chmod((0o755 if path.is_dir() else 0o644) if writable else (0o555 if path.is_dir() else 0o444))


@pytest.fixture(scope="session")
def vendored_unseen_barcodes(vendored_data) -> list[str]:
    """The 428 barcodes of the vendored BarcodeBERT unseen subset (every 10th row; 113 contain N)."""
    table = pd.read_csv(vendored_data / "barcodebert_unseen" / "unseen_every10th.tsv.gz", sep="\t")
    return table["nucleotides"].tolist()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Where ``BIOSCAN5M_REQUIRE_REAL_DATA=1`` (CI), a ``realdata`` test that skips for any reason fails."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_REAL_DATA and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("realdata"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"realdata test skipped although BIOSCAN5M_REQUIRE_REAL_DATA=1: {reason}"
