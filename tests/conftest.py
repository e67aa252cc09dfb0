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
