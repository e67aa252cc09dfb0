"""Uploaded bytes to what the project's readers take: a private temporary file with a name the server
chooses (never the client's), so no request names a path. Messages name the upload, not the temporary file."""

from __future__ import annotations

import contextlib
import gzip
import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from bioscan5m.errors import BioscanError, as_user_error
from bioscan5m.serve import backends
from bioscan5m.serve.limits import RequestRefused, check_query_count, check_upload
from bioscan5m.serve.settings import Limits

GZIP_MAGIC = b"\x1f\x8b"


def read_barcodes(data: bytes, name: str, limits: Limits) -> pd.DataFrame:
    """The ``processid`` and raw ``dna_barcode`` of FASTA or FASTQ ``data`` (plain or gzipped), read as
    ``bioscan5m identify --queries`` reads a file; ``name`` is how messages call it."""
    check_upload(data, name, limits)
    head = _text_head(data, name)
    if not head.startswith((">", "@")):
        raise RequestRefused(f"{name} is not FASTA or FASTQ: it must start with '>' (FASTA) or '@' (FASTQ), "
                             f"not {head[:20]!r}")
    suffix = (".fasta" if head.startswith(">") else ".fastq") + (".gz" if data.startswith(GZIP_MAGIC) else "")
    with tempfile.TemporaryDirectory(prefix="bioscan5m-serve-") as folder:
        path = Path(folder) / f"queries{suffix}"
        path.write_bytes(data)
        try:
            frame = backends.read_upload_records(path)
        except Exception as error:  # noqa: BLE001 -- re-raised, renamed when it is the user's
            raise _renamed(error, path, name) from None
    check_query_count(len(frame), limits)
    return frame


def _text_head(data: bytes, name: str) -> str:
    """The first characters of the upload's text (looking through gzip), to tell FASTA from FASTQ."""
    head = data
    if data.startswith(GZIP_MAGIC):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                head = stream.read(4096)
        except (OSError, EOFError) as error:
            raise RequestRefused(f"{name} is not readable gzip data ({error})") from None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if "\x00" in text:
        raise RequestRefused(f"{name} is binary data, not FASTA or FASTQ text")
    return text


def _renamed(error: BaseException, path: Path, name: str) -> BaseException:
    """A reader's error about the temporary file, as a refusal naming the upload (other errors unchanged)."""
    user_error = as_user_error(error)
    if user_error is None:
        return error
    message = str(user_error).replace(str(path), name).replace(path.name, name)
    return RequestRefused(message)


@contextlib.contextmanager
def saved_photos(photos: Sequence[tuple[str, bytes]], limits: Limits) -> Iterator[list[Path]]:
    """The photos' bytes in a private temporary folder as ``photo-1.jpg``…, removed afterwards."""
    for name, data in photos:
        if not data:
            raise RequestRefused(f"{name} is empty: choose a specimen photo (JPEG or PNG)")
        check_upload(data, name, limits)
    with tempfile.TemporaryDirectory(prefix="bioscan5m-serve-") as folder:
        paths = []
        for number, (_, data) in enumerate(photos, start=1):
            path = Path(folder) / f"photo-{number}.jpg"
            path.write_bytes(data)
            paths.append(path)
        try:
            yield paths
        except BioscanError as error:
            # decode_image names the temporary file: name the user's photo instead
            message = str(error)
            for path, (name, _) in zip(paths, photos):
                message = message.replace(str(path), name)
            raise RequestRefused(message) from None
