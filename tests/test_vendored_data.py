"""tests/fixtures: the small real fixtures a plain clone tests with stay small, documented and reproducible."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VENDORED = Path(__file__).resolve().parent / "fixtures"
#: The whole folder (data, README, licence texts, script), in bytes: "a few hundred KB".
SIZE_BUDGET = 450_000
LICENCE_TEXTS = ["MIT-BarcodeBERT.txt", "Apache-2.0-barcode-constrained-phylogeny.txt", "MIT-BIOSCAN-1M.txt"]


def data_files() -> list[Path]:
    """Every vendored data file (not the README, the licence texts or the script that makes them)."""
    return sorted(p for p in VENDORED.rglob("*") if p.is_file() and p.suffix not in {".md", ".py"}
                  and "LICENSES" not in p.relative_to(VENDORED).parts and "__pycache__" not in p.parts)


def test_the_folder_stays_under_its_size_budget():
    files = [p for p in VENDORED.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    total = sum(p.stat().st_size for p in files)
    assert total <= SIZE_BUDGET, f"tests/fixtures holds {total:,} bytes, over its budget of {SIZE_BUDGET:,}"
    assert len(data_files()) == 13


def test_every_file_is_listed_in_the_readme_with_its_licence():
    readme = (VENDORED / "README.md").read_text(encoding="utf-8")
    for path in data_files():
        assert f"`{path.name}`" in readme or f"`{path.relative_to(VENDORED).as_posix()}`" in readme, path
    for name in LICENCE_TEXTS:
        assert (VENDORED / "LICENSES" / name).is_file() and f"`LICENSES/{name}`" in readme
    assert "CC BY 3.0" in readme


def test_the_script_rebuilds_every_file_byte_for_byte(shared_data, tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", VENDORED / "make_fixtures.py")
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    make_fixtures.main(shared_data, tmp_path)
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert rebuilt == [p.relative_to(VENDORED) for p in data_files()]
    for name in rebuilt:
        assert (tmp_path / name).read_bytes() == (VENDORED / name).read_bytes(), name


def run_pytest_in(folder: Path, require: bool) -> tuple[int, str]:
    """Run pytest in a copy of this conftest, outside any checkout (so no ../shared/data beside it)."""
    env = {key: value for key, value in os.environ.items() if key != "BIOSCAN5M_REQUIRE_REAL_DATA"}
    if require:
        env["BIOSCAN5M_REQUIRE_REAL_DATA"] = "1"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", str(folder)],
                            capture_output=True, text=True, env=env, cwd=folder, timeout=300, check=False)
    return result.returncode, result.stdout


@pytest.mark.slow  # two pytest runs in subprocesses
def test_realdata_tests_skip_in_a_plain_clone_and_fail_where_the_data_is_required(tmp_path):
    tests = tmp_path / "clone" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")
    (tests / "pytest.ini").write_text("[pytest]\nmarkers =\n    realdata: needs the staged data\n")
    (tests / "test_probe.py").write_text(
        "import pytest\n\n"
        "def test_uses_staged_data(shared_data):\n    assert shared_data.is_dir()\n\n"
        "@pytest.mark.realdata\ndef test_skips_for_another_reason():\n    pytest.skip('no blastn here')\n\n"
        "def test_plain():\n    assert True\n"
    )
    code, out = run_pytest_in(tests, require=False)
    assert code == 0 and "1 passed, 2 skipped" in out, out
    assert "needs the staged real data at" in out and "(absent in a plain clone)" in out
    code, out = run_pytest_in(tests, require=True)
    assert code == 1 and "1 failed, 1 passed, 1 error" in out, out
    assert "ERROR test_probe.py::test_uses_staged_data" in out
    assert "realdata test skipped although BIOSCAN5M_REQUIRE_REAL_DATA=1: no blastn here" in out
