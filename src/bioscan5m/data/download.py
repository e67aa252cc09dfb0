"""Fetching BIOSCAN-5M archives: mirrors, resumable transfers, checksums and safe extraction.

The dataset is published as zip archives on Zenodo (record 11973457) and mirrored on Hugging Face.
:func:`download_file` fetches one file (trying each mirror in turn, resuming an interrupted
transfer with an HTTP ``Range`` request, retrying with exponential backoff) and renames it into
place only once its MD5 (or, where none is published, its size and zip structure) checks out.
:func:`download_dataset` picks the archives for the metadata and/or an image package's splits,
downloads them and extracts them safely into the dataset root, in the layout the authors use::

    <root>/bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv
    <root>/bioscan5m/images/<package>/<split>/<chunk>/<processid>.jpg
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import urllib.parse
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import requests
from tqdm.auto import tqdm

from bioscan5m.data.schema import SPLITS, parse_splits
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_write

ZENODO_URL = "https://zenodo.org/records/11973457/files/"
HUGGINGFACE_URL = "https://huggingface.co/datasets/bioscan-ml/BIOSCAN-5M/resolve/main/"
#: Mirrors tried in order; each is a base URL that the archive's file name is appended to.
DEFAULT_MIRRORS: tuple[str, ...] = (ZENODO_URL, HUGGINGFACE_URL)
#: Environment variable that replaces the default mirrors (several base URLs: separate by spaces or commas).
MIRROR_ENV = "BIOSCAN5M_MIRROR"

METADATA = "metadata"
#: Where the metadata CSV lands inside the dataset root once its archive is extracted.
METADATA_CSV = "bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv"
#: Hidden folder in the dataset root holding extraction scratch space and "done" markers.
STATE_DIR = ".bioscan5m-download"

_PRETRAIN = ("pretrain",)
_TRAIN = ("train",)
#: The small splits shipped together in each 256 px package's ``_eval`` zip.
EVAL_SPLITS: tuple[str, ...] = tuple(s for s in SPLITS if s not in _PRETRAIN + _TRAIN)


@dataclass(frozen=True)
class DatasetFile:
    """One published BIOSCAN-5M archive.

    ``md5`` is the published checksum of the archive; ``None`` where none is published, in which
    case only its size (as announced by the server) and zip structure (every member's CRC) are
    checked. ``contents_md5`` holds published checksums of files inside the archive, as
    ``(member path, md5)`` pairs, checked after extraction.
    """

    name: str
    package: str
    splits: tuple[str, ...]
    md5: str | None
    contents_md5: tuple[tuple[str, str], ...] = ()


#: Every archive this module knows. MD5s are the published ones (docs/paper.md, and the authors'
#: ``bioscan-dataset`` loader); the other file names follow the authors' published package lists.
FILES: tuple[DatasetFile, ...] = (
    DatasetFile(
        "BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip",
        METADATA,
        (),
        "ac381b69fafdbaedc2f9cfb89e3571f7",
        ((METADATA_CSV, "603020b433ef566946efba7a08dbb23d"),),
    ),
    DatasetFile("BIOSCAN_5M_cropped_256_pretrain.01.zip", "cropped_256", _PRETRAIN,
                "0e1cfa86dc7fa4d9c10036990992a2dd"),
    DatasetFile("BIOSCAN_5M_cropped_256_pretrain.02.zip", "cropped_256", _PRETRAIN,
                "ca3191d307957732e8108121b20a2059"),
    DatasetFile("BIOSCAN_5M_cropped_256_train.zip", "cropped_256", _TRAIN, "3f170db5d95610644883dafc73389049"),
    DatasetFile("BIOSCAN_5M_cropped_256_eval.zip", "cropped_256", EVAL_SPLITS, "16a997f72a8cd08cbcf7becafe2dda50"),
    DatasetFile("BIOSCAN_5M_original_256_pretrain.01.zip", "original_256", _PRETRAIN, None),
    DatasetFile("BIOSCAN_5M_original_256_pretrain.02.zip", "original_256", _PRETRAIN, None),
    DatasetFile("BIOSCAN_5M_original_256_train.zip", "original_256", _TRAIN, None),
    DatasetFile("BIOSCAN_5M_original_256_eval.zip", "original_256", EVAL_SPLITS, None),
    # The full-size packages are cut by size, not by split: every part holds images of every split.
    *(DatasetFile(f"BIOSCAN_5M_cropped.{part:02d}.zip", "cropped", SPLITS, None) for part in (1, 2)),
    *(DatasetFile(f"BIOSCAN_5M_original_full.{part:02d}.zip", "original_full", SPLITS, None)
      for part in range(1, 6)),
)

_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


#: Extraction limits against archives that expand far beyond their size ("zip bombs"): the total declared
#: size, and the expansion of any member larger than RATIO_FLOOR bytes (JPEGs barely compress, the metadata
#: CSV about 5x; 100x is never real data).
MAX_EXTRACTED_BYTES = 4 << 40
MAX_EXPANSION_RATIO = 100
RATIO_FLOOR = 1 << 20
#: Longest file-name component most file systems accept, in bytes.
MAX_NAME_BYTES = 255


def _unreachable_host(error: BaseException) -> str | None:
    """Why the host cannot be reached at all (its name does not resolve, or nothing listens), else None.

    These do not get better by waiting, so they are not retried: offline, a download fails in seconds.
    """
    import socket

    seen = error
    while seen is not None:
        if isinstance(seen, socket.gaierror) or "NameResolutionError" in type(seen).__name__ \
                or "Failed to resolve" in str(seen) or "Name or service not known" in str(seen):
            return "its name does not resolve (no network, or a mistyped host)"
        if isinstance(seen, ConnectionRefusedError) or "Connection refused" in str(seen):
            return "the connection was refused (nothing listens on that port)"
        seen = seen.__cause__ or seen.__context__ or (seen.args[0] if seen.args and isinstance(
            seen.args[0], BaseException) else None)
    return None


class _RetryableError(Exception):
    """A transient problem (dropped connection, server error): try the same mirror again."""


class _MirrorFailed(Exception):
    """This mirror cannot deliver the file (404, gave up retrying, bad checksum): try the next."""


def resolve_mirrors(mirrors: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """Base URLs to try, in order: ``mirrors`` if given, else ``$BIOSCAN5M_MIRROR``, else Zenodo then HF."""
    if mirrors is None:
        mirrors = os.environ.get(MIRROR_ENV) or DEFAULT_MIRRORS
    if isinstance(mirrors, str):
        mirrors = re.split(r"[\s,]+", mirrors.strip())
    bases = tuple(m if m.endswith("/") else m + "/" for m in mirrors if m)
    if not bases:
        raise BioscanError("no download mirror given", value=mirrors)
    return bases


def select_files(
    what: Iterable[str] = (METADATA,),
    image_package: str = "cropped_256",
    splits: str | Iterable[str] = SPLITS,
    files: Sequence[DatasetFile] | None = None,
) -> list[DatasetFile]:
    """The archives (from ``files``, default :data:`FILES`) for ``what`` and the image ``splits``.

    ``what`` holds ``"metadata"`` and/or ``"images"``.
    """
    files = FILES if files is None else files
    chosen: list[DatasetFile] = []
    for item in what:
        if item == METADATA:
            chosen += [f for f in files if f.package == METADATA]
        elif item == "images":
            packages = sorted({f.package for f in files if f.package != METADATA})
            if image_package not in packages:
                raise BioscanError(
                    f"unknown image package {image_package!r}; choose from {', '.join(packages)}",
                    value=image_package,
                )
            wanted = set(parse_splits(splits))
            chosen += [f for f in files if f.package == image_package and wanted.intersection(f.splits)]
        else:
            raise BioscanError(f"cannot download {item!r}; choose metadata or images", value=item)
    return list(dict.fromkeys(chosen))


def file_md5(source: str | os.PathLike[str] | IO[bytes], chunk_size: int = 1 << 20, *, progress: bool = False) -> str:
    """Hex MD5 of a file (path or open binary stream), read in chunks of ``chunk_size`` bytes.

    ``progress`` shows a bar for a path (checking a 40 GB archive takes a minute or two).
    """
    digest = hashlib.md5(usedforsecurity=False)
    if hasattr(source, "read"):
        while chunk := source.read(chunk_size):
            digest.update(chunk)
        return digest.hexdigest()
    path = Path(source)
    with open(path, "rb") as handle, tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"checking {path.name}",
        disable=None if progress else True, file=sys.stderr,
    ) as bar:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def download_file(
    url_or_urls: str | Sequence[str],
    dest: str | os.PathLike[str],
    md5: str | None = None,
    *,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
    session: requests.Session | None = None,
) -> Path:
    """Download one file to ``dest``, verified, trying each URL in turn; return ``dest``.

    Bytes go to ``<dest>.part``; an interrupted transfer is continued with an HTTP ``Range``
    request (from scratch if the server ignores it). Connection errors and 5xx answers are retried
    ``retries`` times per URL, waiting ``backoff * 2**k`` seconds (the count restarts whenever bytes
    arrived). The file is renamed onto ``dest`` only after its MD5 matches ``md5`` (when given) and
    its size matches ``size`` and the server's announced length; without ``md5`` a ``.zip`` is also
    checked member by member (CRC). A corrupted download is deleted and the next URL tried; if no
    URL delivers, a BioscanError lists why each failed. An existing ``dest`` is kept when it
    matches ``md5`` (or when no ``md5`` is given), and replaced otherwise.
    """
    urls = [url_or_urls] if isinstance(url_or_urls, str) else list(url_or_urls)
    dest = Path(dest)
    if dest.is_file():
        if md5 is None or file_md5(dest, progress=progress) == md5.lower():
            return dest
        print(f"{dest}: checksum does not match {md5}; downloading it again", file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or requests.Session()
    failures: list[str] = []
    try:
        for url in urls:
            try:
                announced = _fetch_with_retries(session, url, part, retries, backoff, timeout, chunk_size, progress)
                _verify(part, md5, size if size is not None else announced, progress)
            except (_MirrorFailed, requests.RequestException) as failure:
                # RequestException here is what retrying cannot fix: a malformed URL, too many redirects.
                failures.append(f"{url}: {failure}")
                continue
            except OSError as error:  # after RequestException, which is an OSError too
                raise BioscanError(f"cannot write the download: {error.strerror or error}", path=part) from error
            os.replace(part, dest)
            return dest
    finally:
        if own_session:
            session.close()
    raise BioscanError("download failed from every mirror: " + "; ".join(failures), path=dest)


def _fetch_with_retries(
    session: requests.Session,
    url: str,
    part: Path,
    retries: int,
    backoff: float,
    timeout: float,
    chunk_size: int,
    progress: bool,
) -> int | None:
    """Fetch ``url`` into ``part`` until whole; return the total size the server announced."""
    failed_attempts = 0
    while True:
        before = _size(part)
        try:
            return _fetch(session, url, part, timeout, chunk_size, progress)
        except (*_RETRYABLE, _RetryableError) as error:
            unreachable = _unreachable_host(error)
            if unreachable is not None:
                host = urllib.parse.urlsplit(url).netloc
                raise _MirrorFailed(f"cannot reach {host}: {unreachable}") from error
            # Progress resets the count: a flaky but moving transfer should not be abandoned.
            failed_attempts = 1 if _size(part) > before else failed_attempts + 1
            if failed_attempts > retries:
                raise _MirrorFailed(f"gave up after {retries} retries ({error})") from error
            delay = backoff * 2 ** (failed_attempts - 1)
            print(f"{url}: {error}; retrying in {delay:.0f} s", file=sys.stderr)
            time.sleep(delay)


def _fetch(
    session: requests.Session, url: str, part: Path, timeout: float, chunk_size: int, progress: bool
) -> int | None:
    """One HTTP request appending to (or restarting) ``part``; return the announced total size."""
    offset = _size(part)
    # identity: Content-Length must count the bytes we store, not a compressed transfer.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status == 416 and offset:
            return None  # nothing left to send: the part is complete (verification decides)
        if status >= 500 or status == 429:
            raise _RetryableError(f"HTTP {status} {response.reason}")
        if status >= 400:
            raise _MirrorFailed(f"HTTP {status} {response.reason}")
        length = response.headers.get("Content-Length")
        if status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                raise _MirrorFailed(f"server resumed at byte {start}, not {offset}")
            mode = "ab"
        else:  # 200: the server ignored Range, so the body is the whole file again
            offset, mode = 0, "wb"
            total = int(length) if length is not None else None
        with open(part, mode) as handle, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=None if progress else True, file=sys.stderr,
        ) as bar:
            for chunk in response.iter_content(chunk_size):
                handle.write(chunk)
                bar.update(len(chunk))
    received = _size(part)
    if total is not None and received < total:
        raise _RetryableError(f"connection closed after {received} of {total} bytes")
    return total


def _parse_content_range(header: str) -> tuple[int, int | None]:
    """``bytes 100-199/200`` -> (100, 200); an unknown total (``*``) gives None."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header)
    if not match:
        raise _MirrorFailed(f"unreadable Content-Range {header!r}")
    total = match.group(2)
    return int(match.group(1)), None if total == "*" else int(total)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _verify(part: Path, md5: str | None, size: int | None, progress: bool) -> None:
    """Raise _MirrorFailed (after deleting ``part``) if it is not the expected file."""
    problem = None
    actual_size = _size(part)
    if size is not None and actual_size != size:
        problem = f"size is {actual_size} bytes, expected {size}"
    elif md5 is not None:
        digest = file_md5(part, progress=progress)
        if digest != md5.lower():
            problem = f"MD5 mismatch: expected {md5.lower()}, got {digest}"
    elif part.name.removesuffix(".part").endswith(".zip"):
        problem = _zip_problem(part)
    if problem:
        part.unlink(missing_ok=True)
        raise _MirrorFailed(f"{problem}; the corrupted download was deleted")


def _zip_problem(path: Path) -> str | None:
    """Why ``path`` is not an intact zip archive, or None if every member's CRC checks out."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        return f"not a valid zip archive ({error})"
    return None if bad is None else f"zip member {bad!r} is corrupted"


def check_zip_members(archive: zipfile.ZipFile, path: str | os.PathLike[str]) -> None:
    """Reject archives that could write outside the extraction folder.

    Absolute paths, drive letters, ``..`` components and symbolic links raise a BioscanError
    naming the member (``path`` names the archive in the message).
    """
    infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    if total > MAX_EXTRACTED_BYTES:
        raise BioscanError(f"the archive would expand to {total:,} bytes, over the {MAX_EXTRACTED_BYTES:,}-byte "
                           "limit; nothing was extracted", path=path)
    files = {info.filename.rstrip("/") for info in infos if not info.is_dir()}
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        folders = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_EXPANSION_RATIO * max(info.compress_size, 1):
            reason = (f"expands {info.file_size // max(info.compress_size, 1):,}-fold ({info.file_size:,} bytes), "
                      f"more than the {MAX_EXPANSION_RATIO}-fold any real data does")
        elif any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in parts):
            reason = f"has a name part longer than {MAX_NAME_BYTES} bytes"
        elif folders & files:
            reason = f"needs {min(folders & files)!r} as a folder, but the archive also has it as a file"
        elif name.rstrip("/") in seen and not info.is_dir():
            reason = "appears twice"
        elif name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            reason = "has an absolute path"
        elif ".." in parts:
            reason = "points outside the archive folder with '..'"
        elif stat.S_ISLNK(info.external_attr >> 16):
            reason = "is a symbolic link"
        else:
            seen.add(name.rstrip("/"))
            continue
        raise BioscanError(f"unsafe archive member {name[:80]!r} {reason}; nothing was extracted", path=path,
                           value=name)


def extract_archive(
    archive_path: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str],
    *,
    contents_md5: Iterable[tuple[str, str]] = (),
    progress: bool = True,
) -> list[Path]:
    """Safely extract a zip into ``dest_dir`` (merging with what is there); return its top-level paths.

    Members are checked first (:func:`check_zip_members`), extracted into a scratch folder beside
    the destination, checked against ``contents_md5`` (``(member, md5)`` pairs), and only then
    moved into place, whole folders at a time where the destination has none yet. Any failure
    leaves ``dest_dir`` as it was.
    """
    archive_path, dest_dir = Path(archive_path), Path(dest_dir)
    scratch_parent = dest_dir / STATE_DIR
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="extract-", dir=scratch_parent))
    try:
        with zipfile.ZipFile(archive_path) as archive:
            check_zip_members(archive, archive_path)
            members = archive.infolist()
            for info in tqdm(members, desc=f"extracting {archive_path.name}", unit="file",
                             disable=None if progress else True, file=sys.stderr):
                archive.extract(info, scratch)
        for member, md5 in contents_md5:
            extracted = scratch / member
            if not extracted.is_file():
                raise BioscanError(f"archive lacks the expected file {member!r}", path=archive_path, value=member)
            digest = file_md5(extracted)
            if digest != md5.lower():
                raise BioscanError(
                    f"MD5 mismatch for {member!r}: expected {md5.lower()}, got {digest}; nothing was extracted",
                    path=archive_path,
                    value=member,
                )
        _check_tree_conflicts(scratch, dest_dir)
        top_level = sorted(dest_dir / entry.name for entry in scratch.iterdir())
        _merge_tree(scratch, dest_dir)
        return top_level
    except zipfile.BadZipFile as error:
        raise BioscanError(f"not a valid zip archive ({error})", path=archive_path) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_tree_conflicts(source: Path, target: Path) -> None:
    """Refuse (before moving anything) to put a file where a folder is, or a folder where a file is."""
    for entry in source.iterdir():
        destination = target / entry.name
        if not destination.exists():
            continue
        if entry.is_dir() != destination.is_dir():
            kind = "folder" if destination.is_dir() else "file"
            raise BioscanError(f"the archive would replace the existing {kind} {destination}", path=destination)
        if entry.is_dir():
            _check_tree_conflicts(entry, destination)


def _merge_tree(source: Path, target: Path) -> None:
    """Move ``source``'s contents into ``target``: a folder the target lacks moves in one rename."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir():
            _merge_tree(entry, destination)
        else:
            os.replace(entry, destination)


def download_dataset(
    root: str | os.PathLike[str],
    what: Iterable[str] = (METADATA,),
    image_package: str = "cropped_256",
    splits: str | Iterable[str] = SPLITS,
    *,
    mirrors: str | Sequence[str] | None = None,
    extract: bool = True,
    keep_archives: bool = False,
    files: Sequence[DatasetFile] | None = None,
    progress: bool = True,
    **download_options: object,
) -> list[Path]:
    """Download (and extract) BIOSCAN-5M into ``root``; return where the data now is.

    ``what`` holds ``"metadata"`` and/or ``"images"``; images come from ``image_package``
    (one of :data:`IMAGE_PACKAGES`) for ``splits`` (names, groups or ``+`` combinations, see
    :func:`~bioscan5m.data.schema.parse_splits`). Every archive covering a requested split is
    fetched, so e.g. ``val`` brings the whole ``_eval`` zip (all six small splits).

    With ``extract`` (default), archives are unpacked into ``root`` in the official layout, then
    deleted unless ``keep_archives``; the paths returned are the metadata CSV and the image split
    folders. Without ``extract``, the zips stay in ``root`` under their published names (which
    :class:`~bioscan5m.data.images.ImageStore` reads directly) and are returned. Archives already
    extracted by an earlier run (a marker in ``root/.bioscan5m-download/``) are skipped.
    ``files`` replaces the table of archives (default :data:`FILES`); ``mirrors`` and
    ``download_options`` are passed to :func:`resolve_mirrors` / :func:`download_file`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    bases = resolve_mirrors(mirrors)
    wanted_splits = parse_splits(splits)
    results: list[Path] = []
    for entry in select_files(what, image_package, wanted_splits, files):
        marker = root / STATE_DIR / f"{entry.name}.done"
        if extract and marker.is_file():
            print(f"{entry.name}: already downloaded and extracted", file=sys.stderr)
        else:
            if entry.md5 is None:
                print(f"{entry.name}: no MD5 is published; checking its size and zip integrity only",
                      file=sys.stderr)
            fetched = not (root / entry.name).exists()
            archive = download_file(
                [base + entry.name for base in bases], root / entry.name, entry.md5,
                progress=progress, **download_options,  # type: ignore[arg-type]
            )
            try:
                if not extract:
                    _check_contents(archive, entry.contents_md5)
                    results.append(archive)
                    continue
                extract_archive(archive, root, contents_md5=entry.contents_md5, progress=progress)
            except BioscanError:
                if fetched:  # a rejected archive this run brought in is not left in the dataset folder
                    archive.unlink(missing_ok=True)
                raise
            with atomic_write(marker) as handle:
                json.dump({"name": entry.name, "md5": entry.md5}, handle)
            if not keep_archives:
                archive.unlink()
        results += _content_paths(root, entry, wanted_splits)
    return list(dict.fromkeys(results))  # several parts can fill the same split folder


def _check_contents(archive_path: Path, contents_md5: Iterable[tuple[str, str]]) -> None:
    """Check published checksums of files inside a zip that is kept unextracted."""
    with zipfile.ZipFile(archive_path) as archive:
        for member, md5 in contents_md5:
            try:
                handle = archive.open(member)
            except KeyError:
                raise BioscanError(f"archive lacks the expected file {member!r}", path=archive_path) from None
            with handle:
                digest = file_md5(handle)
            if digest != md5.lower():
                raise BioscanError(f"MD5 mismatch for {member!r}: expected {md5.lower()}, got {digest}",
                                   path=archive_path, value=member)


def _content_paths(root: Path, entry: DatasetFile, splits: Sequence[str]) -> list[Path]:
    """The metadata CSV, or the requested split folders this archive filled."""
    if entry.package == METADATA:
        return [root / METADATA_CSV]
    image_dir = root / "bioscan5m" / "images" / entry.package
    return [image_dir / s for s in entry.splits if s in splits and (image_dir / s).is_dir()]
