"""Checks on what a request sends, and the error that becomes a readable 4xx answer."""

from __future__ import annotations

from bioscan5m.errors import BioscanError
from bioscan5m.serve.settings import Limits


class RequestRefused(BioscanError):
    """Bad or too large input in a request: the answer is ``status`` with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


def check_upload(data: bytes, what: str, limits: Limits) -> bytes:
    """``data`` if it is neither empty nor larger than the upload limit."""
    if len(data) > limits.max_upload_bytes:
        raise RequestRefused(f"{what} is {megabytes(len(data))}; the limit is {megabytes(limits.max_upload_bytes)} "
                             "per upload (split it, or start the server with a larger --max-upload-mb)", 413)
    if not data.strip():
        raise RequestRefused(f"{what} is empty: paste or upload FASTA/FASTQ barcodes")
    return data


def check_query_count(count: int, limits: Limits) -> int:
    """``count`` if at least one barcode and at most the query limit."""
    if count == 0:
        raise RequestRefused("no barcodes found: paste or upload FASTA (>id then the sequence) or FASTQ")
    if count > limits.max_queries:
        raise RequestRefused(f"{count:,} barcodes in one request; the limit is {limits.max_queries:,} (split the "
                             "file, or start the server with a larger --max-queries)", 413)
    return count


def check_photo_count(count: int, limits: Limits) -> int:
    if count == 0:
        raise RequestRefused("no photo given: choose or drop one or more specimen photos")
    if count > limits.max_photos:
        raise RequestRefused(f"{count} photos in one request; the limit is {limits.max_photos}", 413)
    return count


def check_count(value: int, name: str, maximum: int) -> int:
    """A count parameter (``k``, ``hits``) between 0 and ``maximum``."""
    if not 0 <= value <= maximum:
        raise RequestRefused(f"{name} must be between 0 and {maximum}, not {value}")
    return value
