"""The content-keyed embedding store: vectors on disk with their ids and a manifest saying where they came from.

An embedding directory holds one set of vectors:

- ``embeddings.npy``: ``float32 [N, D]``, row i belongs to line i of ``ids.tsv``;
- ``ids.tsv``: one header line ``processid``, then one record id per line;
- ``manifest.json``: the encoder (name, options, checkpoint SHA-256), the data (source path, size,
  SHA-256 of all its bytes, split, SHA-256 of the record ids), ``n_records``, ``dim``, the date and the
  bioscan5m version, and ``cache_key``, a hash of everything the vectors depend on.

The directory is its own cache, keyed by content (:func:`cached_embeddings`): the stored vectors are reused
when the key matches and recomputed (replacing the files) when the encoder, its weights or the data changed,
or when the entry is damaged. The manifest is removed first and written last, so a directory with a manifest is always complete.
Folders made only to be reused (probes, clustering benchmarks, retrieval splits) live in the cache root's
``embeddings`` kind (:func:`store_entry`). :func:`extract_embeddings` runs a frozen encoder over records
through the one inference loop; under ``torchrun`` every process embeds one contiguous shard and rank 0
joins the shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bioscan5m import __version__
from bioscan5m.cachedir import mark_used
from bioscan5m.data.cache import json_digest
from bioscan5m.data.schema import ID_COLUMN
from bioscan5m.embeddings.encoders import Encoder, create_encoder
from bioscan5m.embeddings.loop import embed_items, shard_bounds
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_path, atomic_write

EMBEDDINGS_FILE = "embeddings.npy"
IDS_FILE = "ids.tsv"
MANIFEST_FILE = "manifest.json"
FORMAT = "bioscan5m-embeddings/1"


@dataclass(frozen=True)
class Embeddings:
    """Vectors ``float32 [N, D]`` for the records ``ids [N]``, and the manifest describing where they came from."""

    ids: np.ndarray
    vectors: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)
    #: True when :func:`extract_embeddings` found them in its cache instead of running the encoder.
    from_cache: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.ids) != len(self.vectors):
            raise BioscanError(f"embeddings need ids [N] and vectors [N, D], got {len(self.ids)} ids and "
                               f"vectors of shape {self.vectors.shape}")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Embeddings({self.name!r}, n={len(self)}, dim={self.dim})"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def name(self) -> str:
        """The encoder's name (``manifest["encoder"]["name"]``), or ``"embeddings"`` without a manifest."""
        return str(self.manifest.get("encoder", {}).get("name", "embeddings"))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the three files into ``directory`` (each atomically; the manifest last)."""
        broken = next((record_id for record_id in self.ids if "\n" in str(record_id) or "\r" in str(record_id)), None)
        if broken is not None:  # one id per line: a line break would shift every later id
            raise BioscanError(f"record id {broken!r} holds a line break", value=broken)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST_FILE).unlink(missing_ok=True)
        with atomic_path(directory / EMBEDDINGS_FILE) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(self.vectors, dtype=np.float32))
        with atomic_write(directory / IDS_FILE) as handle:
            handle.write(ID_COLUMN + "\n")
            handle.writelines(f"{record_id}\n" for record_id in self.ids)
        self.manifest.update(n_records=len(self), dim=self.dim)
        with atomic_write(directory / MANIFEST_FILE) as handle:
            json.dump(self.manifest, handle, indent=2)
            handle.write("\n")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Embeddings:
        """Read an embedding directory written by :meth:`save`; incomplete or inconsistent ones raise."""
        directory = Path(directory)
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            raise BioscanError(f"not an embedding directory (no {MANIFEST_FILE}); run `bioscan5m embed` first",
                               path=directory)
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise BioscanError(f"unreadable manifest: {error}", path=manifest_path) from None
        try:
            vectors = np.load(directory / EMBEDDINGS_FILE, mmap_mode=None, allow_pickle=False)
            ids = _read_ids(directory / IDS_FILE)
        except (OSError, ValueError, EOFError, UnicodeDecodeError) as error:
            raise BioscanError(f"unreadable embeddings: {error}", path=directory) from None
        if vectors.shape != (manifest.get("n_records"), manifest.get("dim")) or len(ids) != len(vectors):
            raise BioscanError(
                f"embeddings {vectors.shape} and {len(ids)} ids disagree with the manifest "
                f"({manifest.get('n_records')} records, dim {manifest.get('dim')})",
                path=directory,
            )
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1)) if vectors.size else np.array([], int)
        if len(bad):
            rows = ", ".join(f"{row + 1} ({ids[row]})" for row in bad[:5]) + (" ..." if len(bad) > 5 else "")
            raise BioscanError(f"{len(bad)} of {len(ids)} embedding rows hold NaN or infinite values: rows {rows}",
                               path=directory / EMBEDDINGS_FILE)
        return cls(ids=ids, vectors=vectors, manifest=manifest)


def load_embeddings(directory: str | os.PathLike[str]) -> Embeddings:
    """Read an embedding directory (``embeddings.npy`` + ``ids.tsv`` + ``manifest.json``)."""
    return Embeddings.load(directory)


def _read_ids(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n")
        if header != ID_COLUMN:
            raise ValueError(f"{path.name} should start with a {ID_COLUMN!r} header line, found {header!r}")
        return np.array([line.rstrip("\n") for line in handle], dtype=object).astype(str)


# --------------------------------------------------------------------------------------------- fingerprints


def data_fingerprint(source: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of a data source (a dataset root stands for its metadata file): the
    hash of all its bytes, remembered per file identity and times (see :mod:`bioscan5m.filehash`), so it
    changes with any edit yet costs one ``stat`` for an unchanged file."""
    from bioscan5m.data.cache import source_fingerprint
    from bioscan5m.data.records import resolve_source

    path = resolve_source(source).resolve()
    return {"path": str(path), **source_fingerprint(path)}


def ids_sha256(ids: Sequence[str]) -> str:
    """SHA-256 of the record ids in order (newline-joined)."""
    digest = hashlib.sha256()
    for record_id in ids:
        digest.update(str(record_id).encode("utf-8") + b"\n")
    return digest.hexdigest()


def store_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The store's folder: the ``embeddings`` kind of the cache root (``cache_dir``, ``$BIOSCAN5M_CACHE_DIR`` or the
    user cache folder). Entries are keyed by what their vectors depend on, so one folder serves every model."""
    from bioscan5m.cachedir import cache_folder

    return cache_folder("embeddings", cache_dir)


def store_entry(label: str, cache_key: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """The entry of ``folder`` (default: :func:`store_folder`) for vectors kept only to be reused, named after
    ``label`` (the encoder or split) and ``cache_key`` (the digest of what they depend on)."""
    from bioscan5m.cachedir import entry_name

    return Path(folder if folder is not None else store_folder()) / entry_name(label, cache_key[:24])


def embeddings_cache_entry(label: str, records: Any, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The store entry of one encoder's vectors of ``records``, keyed by the records' source content and ids;
    :func:`extract_embeddings` checks the encoder itself."""
    key = json_digest([label, data_fingerprint(records.source)["sha256"], ids_sha256(np.asarray(records.ids))])
    return store_entry(label, key, store_folder(cache_dir))


def store_manifest(encoder_info: dict[str, Any], data_info: dict[str, Any], cache_key: str) -> dict[str, Any]:
    """The manifest of an entry: the encoder, the data, the key, the date and the bioscan5m version."""
    return {"format": FORMAT, "encoder": encoder_info, "data": data_info, "cache_key": cache_key,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "bioscan5m_version": __version__,
            "files": {"vectors": EMBEDDINGS_FILE, "ids": IDS_FILE}}


def _cache_key(encoder_info: dict[str, Any], data_info: dict[str, Any]) -> str:
    """What the vectors depend on: the encoder and the data's content (paths are recorded, not keyed)."""
    data = {k: v for k, v in data_info.items() if k not in ("n_input_records", "path")}
    if "images" in data:
        data["images"] = {k: v for k, v in data["images"].items() if k != "root"}
    return json_digest({"encoder": encoder_info, "data": data})


def cached_embeddings(directory: str | os.PathLike[str], cache_key: str) -> Embeddings | None:
    """The embeddings stored in ``directory`` if their manifest carries ``cache_key``, else None."""
    if not (Path(directory) / MANIFEST_FILE).is_file():
        return None
    try:
        stored = Embeddings.load(directory)
    except BioscanError:
        return None  # half-written or damaged: recompute
    if stored.manifest.get("cache_key") != cache_key:
        return None
    mark_used(directory)
    return Embeddings(stored.ids, stored.vectors, stored.manifest, from_cache=True)


# --------------------------------------------------------------------------------------------- inputs


def _split_label(records: Any, split: str | None) -> str | None:
    if split is not None:
        return split
    try:
        values = records.column("split")
    except (KeyError, BioscanError, AttributeError):
        return None
    names = sorted({v for v in values if isinstance(v, str) and v})
    return "+".join(names) or None


def default_image_root(source: str | os.PathLike[str]) -> Path:
    """The dataset root of a BIOSCAN-5M source: the directory itself, or 4 levels above
    ``<root>/bioscan5m/metadata/csv/<file>.csv``."""
    source = Path(source)
    if source.is_dir():
        return source
    parents = source.resolve().parents
    if len(parents) > 3 and parents[2].name == "bioscan5m":
        return parents[3]
    raise BioscanError("cannot tell where the images are for this source; pass the dataset root "
                       "(--images ROOT / image_root=)", path=source)


def _dna_inputs(records: Any, cleaning: str = "standard") -> tuple[np.ndarray, list[str]]:
    ids = np.asarray(records.ids).astype(str)
    barcodes = records.barcodes(mode=cleaning)
    keep = np.array([bool(b) for b in barcodes], dtype=bool)
    if not keep.any():
        raise BioscanError(f"none of the {len(ids)} records has a DNA barcode", path=records.source)
    return ids[keep], [b for b, k in zip(barcodes, keep) if k]


class _ImageInputs(Sequence):
    """Lazy list of the records' images, read through an ImageStore; slices are lazy too."""

    def __init__(self, store: Any, ids: np.ndarray, splits: np.ndarray, chunks: np.ndarray) -> None:
        self.store, self.ids, self.splits, self.chunks = store, ids, splits, chunks

    @classmethod
    def of(cls, records: Any, root: Path, package: str) -> _ImageInputs:
        from bioscan5m.data.images import ImageStore

        return cls(ImageStore.open(root, package=package), np.asarray(records.ids).astype(str),
                   records.column("split"), records.column("chunk"))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return _ImageInputs(self.store, self.ids[index], self.splits[index], self.chunks[index])
        split = self.splits[index]
        return self.store.load(self.ids[index], None if split is None else str(split), self.chunks[index])


# --------------------------------------------------------------------------------------------- extraction


def embed_records(records: Any, encoder: Encoder | str, cache_dir: str | os.PathLike[str], *,
                  device: str | None = None, batch_size: int | None = None, cleaning: str = "standard") -> np.ndarray:
    """Embeddings ``float32 [len(records), D]`` of records that all have a barcode, kept in ``cache_dir`` (see
    :func:`extract_embeddings`; a second call with the same data and model reads them back)."""
    embeddings = extract_embeddings(records, encoder, cache_dir, batch_size=batch_size, device=device,
                                    cleaning=cleaning)
    if len(embeddings) != len(records) or not np.array_equal(embeddings.ids, np.asarray(records.ids).astype(str)):
        raise BioscanError(f"embeddings in {cache_dir} do not match the {len(records)} records; remove that "
                           "folder (or run 'bioscan5m cache prune --kind embeddings --all')", path=cache_dir)
    return embeddings.vectors



def extract_embeddings(
    records: Any,
    encoder: Encoder | str,
    cache_dir: str | os.PathLike[str],
    *,
    split: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    image_package: str = "cropped_256",
    progress: bool | None = None,
    force: bool = False,
    cleaning: str = "standard",
) -> Embeddings:
    """Embed ``records`` (a ``bioscan5m.data.records.Records``) with ``encoder`` into ``cache_dir``.

    DNA encoders read the cleaned barcodes (records without one are left out); image encoders read each
    record's image from ``image_root`` (default: the dataset root of ``records.source``) in
    ``image_package``. When ``cache_dir`` already holds embeddings of the same encoder, checkpoint, data
    and records, they are returned without running the encoder (``force=True`` recomputes).
    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process embeds a contiguous shard; every rank returns
    the full result. cleaning: how DNA barcodes are cleaned (``barcodebert``: trailing N only, see
    :data:`~bioscan5m.data.sequences.CLEANING_MODES`).
    """
    if isinstance(encoder, str):
        encoder = create_encoder(encoder, device=device)
    cache_dir = Path(cache_dir)
    all_ids = np.asarray(records.ids).astype(str)
    data_info: dict[str, Any] = {
        **data_fingerprint(records.source),
        "split": _split_label(records, split),
        "n_input_records": len(all_ids),
        "ids_sha256": ids_sha256(all_ids),
    }
    if cleaning != "standard":  # only then, so that earlier caches keep their keys
        data_info["cleaning"] = cleaning
    if encoder.modality not in ("dna", "image"):  # a text tower embeds sentences, not records
        raise BioscanError(f"{encoder.name} embeds {encoder.modality}; records are embedded by DNA or image encoders",
                           value=encoder.name)
    images = encoder.modality == "image"
    if images:
        root = Path(image_root) if image_root is not None else default_image_root(records.source)
        data_info["images"] = {"root": str(root.resolve()), "package": image_package,
                               "files": image_files_fingerprint(root, image_package)}
    encoder_info = encoder.describe()
    key = _cache_key(encoder_info, data_info)

    from bioscan5m.train.distributed import dist_info

    rank, world = (info := dist_info()).rank, info.world_size
    if not force:
        stored = cached_embeddings(cache_dir, key)
        if stored is not None:
            return stored

    if images:
        ids = all_ids
        items: Sequence[Any] = _ImageInputs.of(records, root, image_package)
    else:
        ids, items = _dna_inputs(records, cleaning)
    lo, hi = shard_bounds(len(ids), rank, world)
    vectors = embed_items(encoder, items[lo:hi], batch_size=batch_size,
                          progress=progress if rank == 0 else False,
                          description=encoder.name if world == 1 else f"{encoder.name} [rank 0/{world}]")

    manifest = store_manifest(encoder_info, data_info, key)
    if world == 1:
        embeddings = Embeddings(ids=ids, vectors=vectors, manifest=manifest)
        embeddings.save(cache_dir)
        return embeddings
    return _gather_shards(vectors, ids, manifest, cache_dir, rank, world)


def image_files_fingerprint(root: Path, package: str) -> list[list[Any]]:
    """Name, size and central-directory SHA-256 (every member's name, size and CRC-32) of the package's zips
    (an extracted folder counts as its mtime)."""
    from bioscan5m.data.images import zip_fingerprint

    found = [[p.name, p.stat().st_size, zip_fingerprint(p)] for p in sorted(root.glob(f"BIOSCAN_5M_{package}*.zip"))]
    folder = root / "bioscan5m" / "images" / package
    if folder.is_dir():
        found.append([folder.name, 0, folder.stat().st_mtime_ns])
    return found


# --------------------------------------------------------------------------------------------- torchrun


def _gather_shards(vectors: np.ndarray, ids: np.ndarray, manifest: dict[str, Any], cache_dir: Path,
                   rank: int, world: int) -> Embeddings:
    """Each rank saves its shard; rank 0 waits for all, joins and saves them; the others wait for that.

    Files, not collectives: embedding a shard of a large split can take hours, far beyond a process
    group's timeout, and no process group is needed at all. torchrun stops every rank if one fails.
    """
    key = manifest["cache_key"]
    launch = os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("MASTER_PORT", "")
    shard_dir = cache_dir / f".shards-{key[:16]}-{hashlib.sha1(launch.encode()).hexdigest()[:8]}"
    shard_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(shard_dir / f"rank-{rank:05d}.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, vectors)
    if rank != 0:
        return _wait_for(lambda: cached_embeddings(cache_dir, key))
    shards = [shard_dir / f"rank-{r:05d}.npy" for r in range(world)]
    _wait_for(lambda: all(shard.is_file() for shard in shards) or None)
    parts = [np.load(shard) for shard in shards]
    dim = max(part.shape[1] for part in parts)
    joined = np.concatenate([part.reshape(-1, dim) for part in parts])  # an empty shard is (0, 0)
    embeddings = Embeddings(ids=ids, vectors=joined, manifest={**manifest, "world_size": world})
    embeddings.save(cache_dir)
    shutil.rmtree(shard_dir, ignore_errors=True)
    return embeddings


def _wait_for(ready: Any, interval: float = 0.5) -> Any:
    import time

    while (result := ready()) is None:
        time.sleep(interval)
    return result


def embed_source(
    source: str | os.PathLike[str],
    encoder: str,
    out: str | os.PathLike[str],
    *,
    split: str | None = None,
    pooling: str | None = None,
    device: str | None = None,
    **options: Any,
) -> Embeddings:
    """The ``bioscan5m embed`` command: load ``source`` (any format ``load_records`` reads; ``split`` as
    ``parse_splits`` accepts), build ``encoder`` by name and :func:`extract_embeddings` into ``out``."""
    from bioscan5m.data.records import load_records

    records = load_records(source, split=split)
    if len(records) == 0:
        raise BioscanError(f"no records in split {split!r}", path=source)
    model = create_encoder(encoder, device=device, pooling=pooling)
    return extract_embeddings(records, model, out, split=split, **options)
