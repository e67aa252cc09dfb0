"""fileio.atomic_folder: a folder appears whole or not at all; replace or keep what another writer made."""

import os

import pytest

from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_folder, read_json, write_json


def test_a_folder_appears_only_when_its_block_succeeds(tmp_path):
    dest = tmp_path / "out" / "index"
    with pytest.raises(RuntimeError), atomic_folder(dest) as building:
        (building / "part.bin").write_bytes(b"half")
        assert not dest.exists()
        raise RuntimeError("killed")
    assert not dest.exists() and os.listdir(tmp_path / "out") == []  # nothing half-written left
    with atomic_folder(dest) as building:
        (building / "a.txt").write_text("new")
    assert sorted(os.listdir(dest)) == ["a.txt"] and os.listdir(tmp_path / "out") == ["index"]
    assert oct(dest.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's private 0700


def test_an_existing_folder_is_replaced_whole_or_kept(tmp_path):
    dest = tmp_path / "index"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_folder(dest) as building:
        (building / "new.txt").write_text("new")
    assert os.listdir(dest) == ["new.txt"]
    with atomic_folder(dest, replace=False) as building:  # another process finished first: keep theirs
        (building / "mine.txt").write_text("mine")
    assert os.listdir(dest) == ["new.txt"] and os.listdir(tmp_path) == ["index"]


def test_json_round_trip_and_errors_name_the_file(tmp_path):
    path = write_json(tmp_path / "a.json", {"b": [1, 2]}, indent=1)
    assert path.read_text() == '{\n "b": [\n  1,\n  2\n ]\n}\n' and read_json(path) == {"b": [1, 2]}
    path.write_text('{"b": \n')
    with pytest.raises(BioscanError, match="not valid JSON") as error:
        read_json(path)
    assert error.value.path == str(path) and error.value.line == 2
    with pytest.raises(BioscanError, match="missing file"):
        read_json(tmp_path / "none.json")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
