"""Specimen images from the official BIOSCAN-5M zip packages or their extracted folders.

A package (``cropped_256``, ...) ships as one or several zips whose members are
``bioscan5m/images/<package>/<split>/<chunk>/<processid>.jpg`` (``<chunk>/`` omitted where empty).
:class:`ImageStore` indexes the zips' central directories once into compact NumPy arrays (no per-member
Python objects: about 65 bytes per image instead of several hundred, and forked DataLoader workers share it),
then reads and decodes one member at a time with positional reads: safe in DataLoader workers.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import re
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bioscan5m.data.schema import IMAGE_PACKAGES
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_path

#: Where extracted packages live below the dataset root.
IMAGES_SUBDIR = "bioscan5m/images"
#: Bump when the saved index changes meaning.
ZIP_INDEX_VERSION = 1


def _is_missing(value: object) -> bool:
    """True for None, NaN, pandas NA and empty strings: the ways a table says "no chunk"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if type(value).__name__ == "NAType":
        return True
    return isinstance(value, str) and value == ""


def image_path(split: str, chunk: object, processid: str) -> str:
    """Path of one image inside a package: ``<split>/<chunk>/<processid>.jpg``, ``<chunk>/`` omitted if empty.

    >>> image_path("train", "0", "AACTA1026-20"), image_path("val", None, "AACTA161-20")
    ('train/0/AACTA1026-20.jpg', 'val/AACTA161-20.jpg')
    """
    if _is_missing(chunk):
        return f"{split}/{processid}.jpg"
    return f"{split}/{chunk}/{processid}.jpg"


def check_package(package: str) -> str:
    """Return ``package`` if it is one of :data:`IMAGE_PACKAGES`, else raise a BioscanError naming them."""
    if package not in IMAGE_PACKAGES:
        raise BioscanError(
            f"unknown image package {package!r}; choose from {', '.join(IMAGE_PACKAGES)}", value=package
        )
    return package


def package_zip_pattern(package: str) -> re.Pattern[str]:
    """File names of a package's zips: ``BIOSCAN_5M_<package>[_pretrain|_train|_eval][.NN].zip``.

    Spelled out so that ``cropped`` does not also pick up ``cropped_256`` zips.
    """
    return re.compile(rf"BIOSCAN_5M_{re.escape(package)}(_(pretrain|train|eval))?(\.\d+)?\.zip")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image (greyscale, CMYK, palette, 16-bit, with alpha) to 8-bit RGB.

    Transparent pixels are composited onto white, which is what a viewer shows.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/float greyscale: rescale to 0..255 rather than clipping everything above 255 to white.
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) if array.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, *, where: str, processid: str | None = None, rgb: bool = True) -> Image.Image:
    """Decode encoded image bytes into an RGB PIL image (``rgb=False``: in the file's own mode, as
    ``PIL.Image.open`` gives it); unreadable data raise a BioscanError naming ``where``."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return to_rgb(opened) if rgb else opened
    except UnidentifiedImageError:  # its message names the in-memory buffer, which means nothing to a user
        raise BioscanError("corrupt or unreadable image (not in any image format Pillow reads)", path=where,
                           value=processid) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BioscanError(f"corrupt or unreadable image ({error})", path=where, value=processid) from None


# --- zip central directory --------------------------------------------------------------------------

_EOCD = struct.Struct("<IHHHHIIH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<IIQI")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory file header (46 bytes)
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header (30 bytes)
_EOCD_SIG, _EOCD64_LOC_SIG, _EOCD64_SIG = 0x06054B50, 0x07064B50, 0x06064B50
_CENTRAL_SIG, _LOCAL_SIG = 0x02014B50, 0x04034B50
_STORED, _DEFLATED = 0, 8
#: Largest image read into memory, in bytes (a full-size BIOSCAN photo is a few MB).
MAX_IMAGE_BYTES = 64 << 20


@dataclass(frozen=True)
class ZipIndex:
    """Members of one zip below a prefix, sorted by name, as parallel arrays (one row per member).

    ``names`` are the member paths with the prefix removed (bytes, e.g. ``b"train/0/AACTA1026-20.jpg"``);
    ``offsets`` are local-header positions (bytes from the start of the file); sizes are in bytes.
    """

    path: Path
    names: np.ndarray  # |S, sorted
    offsets: np.ndarray  # int64
    compressed_sizes: np.ndarray  # int64
    sizes: np.ndarray  # int64
    crcs: np.ndarray  # uint32
    methods: np.ndarray  # uint16

    def __len__(self) -> int:
        return len(self.names)

    def find(self, name: str) -> int:
        """Row of member ``name`` (prefix removed), or -1 when the zip has no such member."""
        key = name.encode("utf-8")
        row = int(np.searchsorted(self.names, key))
        if row < len(self.names) and self.names[row] == key:
            return row
        return -1


_INDEX_ARRAYS = ("names", "offsets", "compressed_sizes", "sizes", "crcs", "methods")


def _find_central_directory(mapped: mmap.mmap, path: Path) -> tuple[int, int, int, int]:
    """(start, size in bytes, entry count, shift) of the central directory, reading zip64 records if any.

    ``shift`` is the number of bytes prepended to the archive (self-extractor stubs): every offset the
    archive records is that much too small.
    """
    tail_start = max(0, len(mapped) - _EOCD.size - 65535)
    eocd = mapped.rfind(struct.pack("<I", _EOCD_SIG), tail_start)
    if eocd < 0:
        raise BioscanError("not a zip file (no end-of-central-directory record); is the download complete?", path=path)
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(mapped, eocd)
    end_of_cd = eocd
    locator = eocd - _EOCD64_LOCATOR.size
    if locator >= 0 and struct.unpack_from("<I", mapped, locator)[0] == _EOCD64_LOC_SIG:
        # The record normally sits just before its locator; the offset the locator records is wrong when
        # bytes were prepended to the archive, so it is only the fallback.
        eocd64 = locator - _EOCD64.size
        if eocd64 < 0 or struct.unpack_from("<I", mapped, eocd64)[0] != _EOCD64_SIG:
            eocd64 = _EOCD64_LOCATOR.unpack_from(mapped, locator)[2]
        fields = _EOCD64.unpack_from(mapped, eocd64)
        if fields[0] != _EOCD64_SIG:
            raise BioscanError("corrupt zip64 end-of-central-directory record", path=path)
        count, cd_size, cd_offset = fields[7], fields[8], fields[9]
        end_of_cd = eocd64
    shift = end_of_cd - cd_size - cd_offset
    if shift < 0:
        raise BioscanError("corrupt zip (central directory lies outside the file); is it truncated?", path=path)
    return cd_offset + shift, cd_size, count, shift


def _zip64_extra(extra: bytes, need: list[bool]) -> list[int]:
    """Values from the zip64 extra field (id 1) for the header fields marked 0xFFFFFFFF, in order."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values, field = [], pos + 4
            for wanted in need:
                if wanted:
                    values.append(struct.unpack_from("<Q", extra, field)[0])
                    field += 8
            return values
        pos += 4 + size
    raise ValueError("zip64 sizes flagged but no zip64 extra field")


def read_zip_index(path: str | os.PathLike[str], prefix: str = "") -> ZipIndex:
    """Index the members of a zip whose names start with ``prefix`` from its central directory.

    Reads only the central directory (through mmap), never member data. Directories are skipped.
    Raises a BioscanError naming the file when it is not a readable zip.
    """
    path = Path(path)
    prefix_bytes = prefix.encode("utf-8")
    cut = len(prefix_bytes)
    names: list[bytes] = []
    rows: list[tuple[int, int, int, int, int]] = []
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            start, size, count, shift = _find_central_directory(mapped, path)
            pos, end = start, start + size
            unpack = _CENTRAL.unpack_from
            for _ in range(count):
                if pos + _CENTRAL.size > end:
                    raise ValueError("central directory ends early")
                (sig, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len, comment_len, _, _, _,
                 offset) = unpack(mapped, pos)
                if sig != _CENTRAL_SIG:
                    raise ValueError(f"bad central directory signature at byte {pos}")
                name_start = pos + _CENTRAL.size
                name = mapped[name_start : name_start + name_len]
                if name.startswith(prefix_bytes) and not name.endswith(b"/"):
                    if usize == 0xFFFFFFFF or csize == 0xFFFFFFFF or offset == 0xFFFFFFFF:
                        extra = mapped[name_start + name_len : name_start + name_len + extra_len]
                        values = iter(_zip64_extra(extra, [usize == 0xFFFFFFFF, csize == 0xFFFFFFFF,
                                                           offset == 0xFFFFFFFF]))
                        usize = next(values) if usize == 0xFFFFFFFF else usize
                        csize = next(values) if csize == 0xFFFFFFFF else csize
                        offset = next(values) if offset == 0xFFFFFFFF else offset
                    if flags & 0x1:
                        raise BioscanError(f"member {name.decode('utf-8', 'replace')} is encrypted", path=path)
                    names.append(name[cut:])
                    rows.append((offset + shift, csize, usize, crc, method))
                pos = name_start + name_len + extra_len + comment_len
    except (ValueError, struct.error, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise BioscanError("no such file", path=path) from None
        raise BioscanError(f"corrupt zip central directory ({error}); is the download complete?", path=path) from None
    if not names:
        return ZipIndex(path, np.array([], dtype="S1"), *(np.array([], dtype=t) for t in
                        ("int64", "int64", "int64", "uint32", "uint16")))
    name_array = np.array(names, dtype=np.bytes_)
    order = np.argsort(name_array, kind="stable")
    table = np.array(rows, dtype=np.int64)[order]
    return ZipIndex(
        path=path,
        names=name_array[order],
        offsets=table[:, 0],
        compressed_sizes=table[:, 1],
        sizes=table[:, 2],
        crcs=table[:, 3].astype(np.uint32),
        methods=table[:, 4].astype(np.uint16),
    )


def central_directory_sha256(path: Path, size: int | None = None) -> str:
    """SHA-256 of a zip's size and of its bytes from the central directory to the end: every member's name,
    place, sizes and CRC-32. That is all its index is made of, and a fraction of a multi-GB package to read."""
    import hashlib

    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            start = _find_central_directory(mapped, path)[0]
            digest = hashlib.sha256(str(len(mapped)).encode() + b"\0")
            for piece in range(start, len(mapped), 1 << 20):
                digest.update(mapped[piece : min(piece + (1 << 20), len(mapped))])
            return digest.hexdigest()
    except (ValueError, struct.error, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise BioscanError("no such file", path=path) from None
        raise BioscanError(f"corrupt zip ({error}); is the download complete?", path=path) from None


def zip_fingerprint(path: Path, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """:func:`central_directory_sha256`, remembered per file identity and times (see :mod:`bioscan5m.filehash`)."""
    from bioscan5m.filehash import remembered_digest

    return remembered_digest(path, "zip-central-directory-sha256", central_directory_sha256, cache_dir)


def zip_index_cache(zip_path: Path, prefix: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache file of one zip's index: in the ``zip-index`` cache folder, keyed by the zip's central
    directory (:func:`zip_fingerprint`) and ``prefix``."""
    from bioscan5m.cachedir import cache_folder, entry_name
    from bioscan5m.data.cache import json_digest

    key = json_digest({"version": ZIP_INDEX_VERSION, "zip": zip_fingerprint(zip_path, cache_dir),
                       "prefix": prefix})[:24]
    return cache_folder("zip-index", cache_dir) / entry_name(zip_path.name, key, ".npz")


def load_zip_index(
    path: str | os.PathLike[str], prefix: str = "", *, cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> ZipIndex:
    """:func:`read_zip_index`, cached as ``.npz`` in the ``zip-index`` folder of the cache root ``cache_dir``
    (default ``$BIOSCAN5M_CACHE_DIR`` or the user cache folder), keyed by the zip's content.

    Reading a 2.3M-member central directory takes seconds; the cache loads in a fraction of that. A
    damaged cache file is read again from the zip; an unwritable cache folder only costs the next open.
    """
    from bioscan5m.cachedir import mark_used

    path = Path(path)
    if not use_cache:
        return read_zip_index(path, prefix)
    try:
        cache = zip_index_cache(path, prefix, cache_dir)
    except (OSError, BioscanError):
        return read_zip_index(path, prefix)  # no such zip, or not a zip: read_zip_index names it
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as saved:
                index = ZipIndex(path, *(saved[field] for field in _INDEX_ARRAYS))
            mark_used(cache)
            return index
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # unreadable cache: rebuild it below
    index = read_zip_index(path, prefix)
    try:
        with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{field: getattr(index, field) for field in _INDEX_ARRAYS})
    except OSError:
        pass  # not writable: go without a cache
    return index


# --- the store -------------------------------------------------------------------------------------


class ImageStore:
    """Read-only access to one image package, from its zip(s), its extracted folder, or both.

    Open with :meth:`ImageStore.open`; load with :meth:`load`. Zip members are located through an
    in-memory index built once; file handles are opened lazily per process, so a store can be handed to
    DataLoader workers (forked or spawned) as is.
    """

    def __init__(self, package: str, *, folder: Path | None = None, zips: tuple[ZipIndex, ...] = ()) -> None:
        self.package = check_package(package)
        self.folder = folder
        self.zips = zips
        self._handles: dict[int, io.FileIO] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._by_processid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._folder_by_processid: dict[str, str] | None = None

    @classmethod
    def open(
        cls, root: str | os.PathLike[str], package: str = "cropped_256", *,
        cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True,
    ) -> ImageStore:
        """Find a package below a dataset root: the folder ``<root>/bioscan5m/images/<package>/`` and/or
        the zips ``<root>/BIOSCAN_5M_<package>*.zip`` (as downloaded, not extracted).

        Zip indexes are cached (see :func:`load_zip_index`). Raises a BioscanError naming what was looked
        for when neither folder nor zip exists.
        """
        check_package(package)
        root = Path(root).expanduser()
        if not root.is_dir():
            raise BioscanError("dataset root is not a directory", path=root)
        folder = root / IMAGES_SUBDIR / package
        pattern = package_zip_pattern(package)
        zip_paths = sorted(p for p in root.iterdir() if pattern.fullmatch(p.name) and p.is_file())
        prefix = f"{IMAGES_SUBDIR}/{package}/"
        zips = []
        for zip_path in zip_paths:
            index = load_zip_index(zip_path, prefix, cache_dir=cache_dir, use_cache=use_cache)
            if not len(index):
                raise BioscanError(f"zip holds no images under {prefix}; is it the {package} package?", path=zip_path)
            zips.append(index)
        if not folder.is_dir() and not zips:
            raise BioscanError(
                f"no {package} images found: looked for the folder {folder} and for zips named "
                f"BIOSCAN_5M_{package}*.zip in {root}",
                path=root,
            )
        return cls(package, folder=folder if folder.is_dir() else None, zips=tuple(zips))

    def __len__(self) -> int:
        """Number of images indexed in the zips (an extracted folder is not counted)."""
        return sum(len(index) for index in self.zips)

    def __repr__(self) -> str:
        sources = [str(self.folder)] if self.folder else []
        sources += [f"{index.path.name} ({len(index)} images)" for index in self.zips]
        return f"ImageStore(package={self.package!r}, sources=[{', '.join(sources)}])"

    # Handles are per process: drop them when pickled (spawned workers) and after a fork.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._pid = -1

    def close(self) -> None:
        """Close the zip files this process opened (they reopen on the next load)."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    @staticmethod
    def image_path(split: str, chunk: object, processid: str) -> str:
        """See :func:`image_path`."""
        return image_path(split, chunk, processid)

    def _fd(self, archive: int) -> int:
        if self._pid != os.getpid():
            # Forked child: the parent's files are shared (one file position); open our own.
            self._handles, self._pid, self._lock = {}, os.getpid(), threading.Lock()
        handle = self._handles.get(archive)
        if handle is None:
            handle = self._handles[archive] = open(self.zips[archive].path, "rb", buffering=0)  # noqa: SIM115
        return handle.fileno()

    def _pread(self, archive: int, size: int, offset: int) -> bytes:
        fd = self._fd(archive)
        if hasattr(os, "pread"):
            return os.pread(fd, size, offset)
        with self._lock:  # no positional reads on this platform
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, size)

    def _locate(self, processid: str, split: str | None, chunk: object) -> tuple[int, int] | Path | None:
        """(archive, row) of a zip member, a file Path in the folder, or None."""
        if split is not None:
            name = image_path(split, chunk, processid)
            for archive, index in enumerate(self.zips):
                row = index.find(name)
                if row >= 0:
                    return archive, row
            if self.folder is not None:
                candidate = self.folder / name
                if candidate.is_file():
                    return candidate
            return None
        return self._locate_by_processid(processid)

    def _locate_by_processid(self, processid: str) -> tuple[int, int] | Path | None:
        if self._by_processid is None and self.zips:
            stems, archives, rows = [], [], []
            for archive, index in enumerate(self.zips):
                # b"train/0/ID.jpg" -> b"ID"
                stem = np.char.rpartition(np.char.rpartition(index.names, b"/")[:, 2], b".")[:, 0]
                stems.append(stem)
                archives.append(np.full(len(index), archive, dtype=np.int32))
                rows.append(np.arange(len(index), dtype=np.int64))
            all_stems = np.concatenate(stems)
            order = np.argsort(all_stems, kind="stable")
            self._by_processid = (all_stems[order], np.concatenate(archives)[order], np.concatenate(rows)[order])
        if self._by_processid is not None:
            stems, archives, rows = self._by_processid
            key = processid.encode("utf-8")
            at = int(np.searchsorted(stems, key))
            if at < len(stems) and stems[at] == key:
                return int(archives[at]), int(rows[at])
        if self.folder is not None:
            if self._folder_by_processid is None:
                found: dict[str, str] = {}
                for directory, _, files in os.walk(self.folder):
                    for file in files:
                        if file.endswith(".jpg"):
                            found.setdefault(file[: -len(".jpg")], os.path.join(directory, file))
                self._folder_by_processid = found
            file = self._folder_by_processid.get(processid)
            if file is not None:
                return Path(file)
        return None

    def _where_looked(self, processid: str, split: str | None, chunk: object) -> str:
        name = image_path(split, chunk, processid) if split is not None else f"*/{processid}.jpg"
        places = [str(self.folder / name)] if self.folder is not None else []
        places += [f"{index.path}:{IMAGES_SUBDIR}/{self.package}/{name}" for index in self.zips]
        return "; ".join(places)

    def __contains__(self, key: str | tuple[str, str, object]) -> bool:
        """``processid in store`` or ``(processid, split, chunk) in store``."""
        processid, split, chunk = (key, None, None) if isinstance(key, str) else key
        return self._locate(processid, split, chunk) is not None

    def read_bytes(self, processid: str, split: str | None = None, chunk: object = None) -> bytes:
        """The encoded JPEG bytes of one image, as stored; see :meth:`load` for the arguments."""
        data, _ = self._read(processid, split, chunk)
        return data

    def _read(self, processid: str, split: str | None, chunk: object) -> tuple[bytes, str]:
        found = self._locate(processid, split, chunk)
        if found is None:
            raise BioscanError(
                f"no {self.package} image for processid {processid!r}; looked in {self._where_looked(processid, split, chunk)}",
                value=processid,
            )
        if isinstance(found, Path):
            try:
                if found.stat().st_size > MAX_IMAGE_BYTES:
                    raise BioscanError(f"image file over {MAX_IMAGE_BYTES:,} bytes", path=found, value=processid)
                return found.read_bytes(), str(found)
            except OSError as error:
                raise BioscanError(f"cannot read image ({error.strerror})", path=found, value=processid) from None
        archive, row = found
        index = self.zips[archive]
        member = f"{IMAGES_SUBDIR}/{self.package}/{index.names[row].decode('utf-8')}"
        where = f"{index.path}:{member}"
        offset, csize = int(index.offsets[row]), int(index.compressed_sizes[row])
        size = int(index.sizes[row])
        if max(size, csize) > MAX_IMAGE_BYTES:  # never inflate an unbounded member into memory
            raise BioscanError(f"zip member of {max(size, csize):,} bytes, over the {MAX_IMAGE_BYTES:,}-byte limit "
                               "for one image", path=where, value=processid)
        header = self._pread(archive, _LOCAL.size, offset)
        if len(header) < _LOCAL.size or _LOCAL.unpack(header)[0] != _LOCAL_SIG:
            raise BioscanError("corrupt zip member (bad local header); is the zip complete?", path=where, value=processid)
        fields = _LOCAL.unpack(header)
        start = offset + _LOCAL.size + fields[9] + fields[10]
        raw = self._pread(archive, csize, start)
        method = int(index.methods[row])
        try:
            if len(raw) != csize:
                raise zlib.error("member data cut short")
            if method == _STORED:
                data = raw
            elif method == _DEFLATED:  # at most one byte past the declared size: enough to see a lie
                data = zlib.decompressobj(-15).decompress(raw, size + 1)
            else:
                raise BioscanError(f"unsupported zip compression method {method}", path=where, value=processid)
        except zlib.error as error:
            raise BioscanError(f"corrupt zip member ({error})", path=where, value=processid) from None
        if len(data) != size or zlib.crc32(data) != int(index.crcs[row]):
            raise BioscanError("corrupt zip member (CRC or size mismatch)", path=where, value=processid)
        return data, where

    def load(self, processid: str, split: str | None = None, chunk: object = None, *, rgb: bool = True
             ) -> Image.Image:
        """Load and decode one image as an RGB PIL image (``rgb=False``: in the file's own mode).

        ``split`` and ``chunk`` give its place in the package (``chunk`` None/empty where the package has
        no chunk folder). Without ``split`` the image is found by processid alone (slower the first time).
        A missing image raises a BioscanError naming the processid and where it looked; an unreadable one
        names the file or zip member.
        """
        data, where = self._read(processid, split, chunk)
        return decode_image(data, where=where, processid=processid, rgb=rgb)
