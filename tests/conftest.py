"""Shared fixtures: the real data in ../shared/data and small synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real BOLD/BIOSCAN files staged for tests (see ../shared/data/SOURCES.md)."""
    if not SHARED_DATA.is_dir():
        raise RuntimeError(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA
