"""Downloads against a loopback HTTP server: resume, checksums, mirrors, safe extraction, CLI."""

from __future__ import annotations

import csv
import hashlib
import io
import random
import re
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bioscan5m.cli import main
from bioscan5m.cli.download import parse_items
from bioscan5m.data import download as dl
from bioscan5m.data.download import (
    EVAL_SPLITS,
    METADATA_CSV,
    STATE_DIR,
    DatasetFile,
    download_dataset,
    download_file,
    extract_archive,
    resolve_mirrors,
    select_files,
)
from bioscan5m.data.images import ImageStore
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.errors import BioscanError

CSV_TEXT = "processid,split\nAACTA1026-20,train\nAACTA161-20,val\n"
IMAGES = {
    "train/0/AACTA1026-20.jpg": b"\xff\xd8train-image" * 50,
    "val/AACTA161-20.jpg": b"\xff\xd8val-image" * 50,
    "test/AACTA1436-20.jpg": b"\xff\xd8test-image" * 50,
}
FAST = {"backoff": 0.0, "progress": False, "chunk_size": 4096}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def official_zips() -> dict[str, bytes]:
    """Small archives laid out exactly like the published metadata and cropped_256 zips."""
    metadata = make_zip({METADATA_CSV: CSV_TEXT.encode()})
    train = make_zip({f"bioscan5m/images/cropped_256/{k}": v for k, v in IMAGES.items() if k.startswith("train")})
    evaluation = make_zip({f"bioscan5m/images/cropped_256/{k}": v for k, v in IMAGES.items()
                           if not k.startswith("train")})
    return {
        "BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip": metadata,
        "BIOSCAN_5M_cropped_256_train.zip": train,
        "BIOSCAN_5M_cropped_256_eval.zip": evaluation,
    }


def table_for(zips: dict[str, bytes]) -> tuple[DatasetFile, ...]:
    """The download table with these test archives' own MD5s patched in."""
    return (
        DatasetFile("BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip", "metadata", (),
                    md5(zips["BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip"]),
                    ((METADATA_CSV, md5(CSV_TEXT.encode())),)),
        DatasetFile("BIOSCAN_5M_cropped_256_train.zip", "cropped_256", ("train",),
                    md5(zips["BIOSCAN_5M_cropped_256_train.zip"])),
        DatasetFile("BIOSCAN_5M_cropped_256_eval.zip", "cropped_256", EVAL_SPLITS,
                    md5(zips["BIOSCAN_5M_cropped_256_eval.zip"])),
    )


class Loopback:
    """Files served on 127.0.0.1 under ``/<mirror>/<name>``, with scripted misbehaviour per path.

    Behaviours: ``drop`` (the first request is cut off half-way), ``no_range`` (Range ignored,
    always 200), ``error500`` (always HTTP 500); unknown paths give 404.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.behaviour: dict[str, set[str]] = {}
        self.log: list[tuple[str, str | None, int]] = []  # (path, Range header, status)
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                loopback.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, path: str, data: bytes, *behaviours: str) -> str:
        self.files[path] = data
        self.behaviour[path] = set(behaviours)
        return self.url + path

    def requests_for(self, path: str) -> list[tuple[str, str | None, int]]:
        return [entry for entry in self.log if entry[0] == path]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path, range_header = request.path, request.headers.get("Range")
        behaviour = self.behaviour.get(path, set())
        data = self.files.get(path)
        status = 404 if data is None else 500 if "error500" in behaviour else 200
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if status == 200 and match and "no_range" not in behaviour:
            start, status = int(match.group(1)), 206
            if start >= len(data):
                status = 416
        self.log.append((path, range_header, status))
        request.send_response(status)
        if status != 200 and status != 206:
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        body = data[start:]
        if status == 206:
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if "drop" in behaviour:
            behaviour.discard("drop")  # only the first request is cut off
            request.wfile.write(body[: len(body) // 2])
            request.wfile.flush()
            request.close_connection = True
            return
        request.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    loopback = Loopback()
    yield loopback
    loopback.close()


def payload(size: int = 300_000, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def test_download_dataset_fetches_verifies_and_extracts_in_official_layout(server, tmp_path):
    zips = official_zips()
    for name, data in zips.items():
        server.serve(f"/zenodo/{name}", data)
    root = tmp_path / "data"
    paths = download_dataset(root, ("metadata", "images"), "cropped_256", "train+val",
                             mirrors=server.url + "/zenodo", files=table_for(zips), **FAST)
    image_dir = root / "bioscan5m" / "images" / "cropped_256"
    assert paths == [root / METADATA_CSV, image_dir / "train", image_dir / "val"]
    assert (root / METADATA_CSV).read_text() == CSV_TEXT
    for member, data in IMAGES.items():  # the eval zip brings test too: it ships all six small splits
        assert (image_dir / member).read_bytes() == data
    # Archives are deleted once extracted, no partial or scratch files remain, markers record the work.
    assert sorted(p.name for p in root.iterdir()) == [STATE_DIR, "bioscan5m"]
    assert sorted(p.name for p in (root / STATE_DIR).iterdir()) == sorted(f"{n}.done" for n in zips)
    # A second run finds everything done and sends no request.
    requests_before = len(server.log)
    again = download_dataset(root, ("metadata", "images"), "cropped_256", "train+val",
                             mirrors=server.url + "/zenodo", files=table_for(zips), **FAST)
    assert again == paths
    assert len(server.log) == requests_before


def test_dropped_connection_is_resumed_with_range(server, tmp_path):
    data = payload()
    url = server.serve("/m/big.bin", data, "drop")
    dest = download_file(url, tmp_path / "big.bin", md5(data), **FAST)
    assert dest.read_bytes() == data
    log = server.requests_for("/m/big.bin")
    assert [status for _, _, status in log] == [200, 206]
    assert log[0][1] is None
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", log[1][1]).group(1))
    assert 0 < resumed_at <= len(data) // 2  # what arrived before the cut is kept, not fetched again
    assert not (tmp_path / "big.bin.part").exists()


def test_existing_partial_file_is_continued(server, tmp_path):
    data = payload()
    url = server.serve("/m/big.bin", data)
    (tmp_path / "big.bin.part").write_bytes(data[:1000])
    download_file(url, tmp_path / "big.bin", md5(data), **FAST)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert server.requests_for("/m/big.bin") == [("/m/big.bin", "bytes=1000-", 206)]


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    data = payload()
    url = server.serve("/m/big.bin", data, "drop", "no_range")
    (tmp_path / "big.bin.part").write_bytes(b"stale bytes from another attempt")
    dest = download_file(url, tmp_path / "big.bin", md5(data), **FAST)
    assert dest.read_bytes() == data
    # Both requests asked for a range; the server answered 200 both times and the client started over.
    log = server.requests_for("/m/big.bin")
    assert [(bool(r), status) for _, r, status in log] == [(True, 200), (True, 200)]


def test_corrupted_download_is_deleted_and_reported(server, tmp_path):
    data = payload()
    url = server.serve("/m/big.bin", data[:-1] + b"X")
    with pytest.raises(BioscanError) as error:
        download_file(url, tmp_path / "big.bin", md5(data), **FAST)
    message = str(error.value)
    assert f"MD5 mismatch: expected {md5(data)}, got {md5(data[:-1] + b'X')}" in message
    assert "corrupted download was deleted" in message
    assert list(tmp_path.iterdir()) == []


def test_fallback_mirror_is_used_when_the_first_answers_404(server, tmp_path):
    data = payload(5000)
    server.serve("/huggingface/f.bin", data)
    dest = download_file([server.url + "/zenodo/f.bin", server.url + "/huggingface/f.bin"],
                         tmp_path / "f.bin", md5(data), **FAST)
    assert dest.read_bytes() == data
    assert [(p, s) for p, _, s in server.log] == [("/zenodo/f.bin", 404), ("/huggingface/f.bin", 200)]


def test_fallback_mirror_used_by_download_dataset(server, tmp_path):
    zips = official_zips()
    name = "BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip"
    server.serve(f"/hf/{name}", zips[name])
    paths = download_dataset(tmp_path, mirrors=[server.url + "/zenodo", server.url + "/hf"],
                             files=table_for(zips), **FAST)
    assert paths == [tmp_path / METADATA_CSV]
    assert paths[0].read_text() == CSV_TEXT


def test_server_errors_are_retried_then_given_up(server, tmp_path):
    url = server.serve("/m/f.bin", b"abc", "error500")
    with pytest.raises(BioscanError, match=r"gave up after 2 retries \(HTTP 500"):
        download_file(url, tmp_path / "f.bin", retries=2, **FAST)
    assert len(server.requests_for("/m/f.bin")) == 3
    assert list(tmp_path.iterdir()) == []


def test_without_md5_a_broken_zip_is_rejected(server, tmp_path):
    good = official_zips()["BIOSCAN_5M_cropped_256_train.zip"]
    url = server.serve("/m/x.zip", good[: len(good) // 2])  # served whole, but it is half a zip
    with pytest.raises(BioscanError, match="not a valid zip archive"):
        download_file(url, tmp_path / "x.zip", None, **FAST)
    assert list(tmp_path.iterdir()) == []
    server.serve("/m/y.zip", good)
    assert download_file(server.url + "/m/y.zip", tmp_path / "y.zip", None, **FAST).read_bytes() == good


def test_existing_file_with_wrong_checksum_is_downloaded_again(server, tmp_path):
    data = payload(5000)
    url = server.serve("/m/f.bin", data)
    (tmp_path / "f.bin").write_bytes(b"old")
    download_file(url, tmp_path / "f.bin", md5(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    download_file(url, tmp_path / "f.bin", md5(data), **FAST)  # now valid: no second request
    assert len(server.requests_for("/m/f.bin")) == 1


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("bioscan5m/../../evil.txt", "points outside the archive folder"),
        ("/tmp/evil.txt", "has an absolute path"),
        ("C:/evil.txt", "has an absolute path"),
        (_symlink_info("bioscan5m/link"), "is a symbolic link"),
    ],
)
def test_unsafe_zip_members_are_rejected_and_nothing_is_extracted(tmp_path, member, reason):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("bioscan5m/images/cropped_256/val/ok.jpg", b"fine")
        handle.writestr(member, b"/etc/passwd")
    dest = tmp_path / "root"
    name = member.filename if isinstance(member, zipfile.ZipInfo) else member
    with pytest.raises(BioscanError) as error:
        extract_archive(archive, dest, progress=False)
    assert error.value.value == name
    assert f"unsafe archive member {name!r} {reason}" in str(error.value)
    assert str(error.value).startswith(str(archive))
    assert [p.name for p in dest.iterdir()] == [STATE_DIR]
    assert list((dest / STATE_DIR).iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_unsafe_archive_served_by_mirror_leaves_root_without_data(server, tmp_path):
    bad = make_zip({"bioscan5m/images/cropped_256/val/a.jpg": b"x", "../escape.txt": b"x"})
    server.serve(f"/m/{'BIOSCAN_5M_cropped_256_eval.zip'}", bad)
    table = (DatasetFile("BIOSCAN_5M_cropped_256_eval.zip", "cropped_256", EVAL_SPLITS, md5(bad)),)
    with pytest.raises(BioscanError, match="'../escape.txt'"):
        download_dataset(tmp_path / "root", ("images",), "cropped_256", "val",
                         mirrors=server.url + "/m", files=table, **FAST)
    assert not (tmp_path / "root" / "bioscan5m").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "root" / STATE_DIR / "BIOSCAN_5M_cropped_256_eval.zip.done").exists()
    assert not (tmp_path / "root" / "BIOSCAN_5M_cropped_256_eval.zip").exists(), "the rejected archive is deleted"


def test_wrong_checksum_inside_archive_extracts_nothing(tmp_path):
    archive = tmp_path / "meta.zip"
    archive.write_bytes(make_zip({METADATA_CSV: b"tampered"}))
    with pytest.raises(BioscanError, match="MD5 mismatch for 'bioscan5m/metadata/csv/"):
        extract_archive(archive, tmp_path / "root", contents_md5=[(METADATA_CSV, md5(CSV_TEXT.encode()))],
                        progress=False)
    assert not (tmp_path / "root" / "bioscan5m").exists()


def test_no_extract_keeps_published_zip_names(server, tmp_path):
    zips = official_zips()
    for name, data in zips.items():
        server.serve(f"/z/{name}", data)
    paths = download_dataset(tmp_path, ("images",), "cropped_256", "test", mirrors=server.url + "/z",
                             extract=False, files=table_for(zips), **FAST)
    assert paths == [tmp_path / "BIOSCAN_5M_cropped_256_eval.zip"]
    assert paths[0].read_bytes() == zips["BIOSCAN_5M_cropped_256_eval.zip"]
    assert not (tmp_path / "bioscan5m").exists()


def test_select_files_maps_splits_to_archives():
    names = [f.name for f in select_files(("images",), "cropped_256", "val")]
    assert names == ["BIOSCAN_5M_cropped_256_eval.zip"]
    names = [f.name for f in select_files(("metadata", "images"), "cropped_256", "pretrain+test_unseen")]
    assert names == [
        "BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip",
        "BIOSCAN_5M_cropped_256_pretrain.01.zip",
        "BIOSCAN_5M_cropped_256_pretrain.02.zip",
        "BIOSCAN_5M_cropped_256_eval.zip",
    ]
    assert len(select_files(("images",), "original_full", "train")) == 5  # parts are cut by size, not split
    with pytest.raises(BioscanError, match="unknown image package 'cropped_512'"):
        select_files(("images",), "cropped_512")
    with pytest.raises(BioscanError, match="unknown split 'training'"):
        select_files(("images",), "cropped_256", "training")


def test_published_checksums_are_in_the_table():
    by_name = {f.name: f for f in dl.FILES}
    assert by_name["BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip"].md5 == "ac381b69fafdbaedc2f9cfb89e3571f7"
    assert by_name["BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip"].contents_md5 == (
        (METADATA_CSV, "603020b433ef566946efba7a08dbb23d"),
    )
    assert by_name["BIOSCAN_5M_cropped_256_eval.zip"].md5 == "16a997f72a8cd08cbcf7becafe2dda50"
    assert by_name["BIOSCAN_5M_cropped_256_eval.zip"].splits == EVAL_SPLITS
    assert by_name["BIOSCAN_5M_original_256_train.zip"].md5 is None


def test_mirrors_from_argument_environment_and_defaults(monkeypatch):
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    assert resolve_mirrors() == (
        "https://zenodo.org/records/11973457/files/",
        "https://huggingface.co/datasets/bioscan-ml/BIOSCAN-5M/resolve/main/",
    )
    monkeypatch.setenv(dl.MIRROR_ENV, "http://a.example/x, http://b.example/y/")
    assert resolve_mirrors() == ("http://a.example/x/", "http://b.example/y/")
    assert resolve_mirrors(["http://c.example"]) == ("http://c.example/",)


def test_parse_items_grammar():
    assert parse_items([]) == (("metadata",), "cropped_256", dl.SPLITS)
    assert parse_items(["metadata", "images", "cropped_256", "train", "val"]) == (
        ("metadata", "images"), "cropped_256", ("train", "val"))
    assert parse_items(["images", "original_256", "unseen", "metadata"]) == (
        ("images", "metadata"), "original_256", ("key_unseen", "val_unseen", "test_unseen"))
    with pytest.raises(BioscanError, match="'images' needs a package"):
        parse_items(["images"])
    with pytest.raises(BioscanError, match="cannot download 'everything'"):
        parse_items(["everything"])


def test_cli_downloads_with_env_mirror(server, tmp_path, monkeypatch, capsys):
    zips = official_zips()
    for name, data in zips.items():
        server.serve(f"/env/{name}", data)
    monkeypatch.setattr(dl, "FILES", table_for(zips))
    monkeypatch.setenv(dl.MIRROR_ENV, server.url + "/env")
    assert main(["download", "--root", str(tmp_path), "metadata", "images", "cropped_256", "val"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [str(tmp_path / METADATA_CSV), str(tmp_path / "bioscan5m/images/cropped_256/val")]
    assert (tmp_path / "bioscan5m/images/cropped_256/val/AACTA161-20.jpg").read_bytes() == IMAGES[
        "val/AACTA161-20.jpg"]


def test_cli_failure_is_one_line_and_exit_2(server, tmp_path, capsys):
    status = main(["download", "--root", str(tmp_path), "--mirror", server.url + "/nowhere", "--retries", "0",
                   "metadata"])
    assert status == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bioscan5m download: error: ")
    assert "HTTP 404" in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip").exists()


def test_cli_rejects_unknown_split(tmp_path, capsys):
    assert main(["download", "--root", str(tmp_path), "images", "cropped_256", "validation"]) == 2
    assert "unknown split 'validation'" in capsys.readouterr().err


def test_archive_without_published_md5_is_checked_by_zip_integrity_and_says_so(server, tmp_path, capsys):
    archive = make_zip({f"bioscan5m/images/original_256/{k}": v for k, v in IMAGES.items()
                        if not k.startswith("train")})
    server.serve("/m/BIOSCAN_5M_original_256_eval.zip", archive)
    table = (DatasetFile("BIOSCAN_5M_original_256_eval.zip", "original_256", EVAL_SPLITS, None),)
    paths = download_dataset(tmp_path, ("images",), "original_256", "test", mirrors=server.url + "/m",
                             files=table, **FAST)
    assert paths == [tmp_path / "bioscan5m/images/original_256/test"]
    assert (paths[0] / "AACTA1436-20.jpg").read_bytes() == IMAGES["test/AACTA1436-20.jpg"]
    assert "no MD5 is published; checking its size and zip integrity only" in capsys.readouterr().err


def test_every_image_package_has_archives_to_download():
    from bioscan5m.data.schema import IMAGE_PACKAGES

    assert {f.package for f in dl.FILES if f.package != dl.METADATA} == set(IMAGE_PACKAGES)


@pytest.mark.parametrize("extract", [True, False])
def test_downloaded_synthetic_package_opens_in_the_image_store(server, tmp_path, extract):
    source = write_synthetic_dataset(tmp_path / "source", records=30, images=True, seed=1)
    data = (source / "BIOSCAN_5M_cropped_256.zip").read_bytes()
    server.serve("/m/BIOSCAN_5M_cropped_256.zip", data)
    table = (DatasetFile("BIOSCAN_5M_cropped_256.zip", "cropped_256", dl.SPLITS, md5(data)),)
    root = tmp_path / "root"
    download_dataset(root, ("images",), "cropped_256", "all", mirrors=server.url + "/m", extract=extract,
                     files=table, **FAST)
    store = ImageStore.open(root, "cropped_256", use_cache=False)
    assert (store.folder is not None) == extract
    with open(source / METADATA_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[:: len(rows) // 3]:
        image = store.load(row["processid"], row["split"], row["chunk"])
        assert image.mode == "RGB" and min(image.size) == 256


def test_unusable_mirror_url_is_reported_not_raised(tmp_path, capsys):
    assert main(["download", "--root", str(tmp_path), "--mirror", "ftp://example.invalid/x", "metadata"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ftp://example.invalid/x/BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip" in err[0]
