"""What a server serves, and the limits it keeps (the options of ``bioscan5m serve``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where the server listens unless told otherwise: this machine only.
LOCAL_HOST = "127.0.0.1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: The embedded default: the demo's dataset size and seed (``bioscan5m demo``'s), and the photo model's steps.
DEMO_RECORDS = 4000
DEMO_SEED = 0
DEMO_MODEL_STEPS = 120


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; more is refused with a message saying the limit."""

    #: bytes of one upload (FASTA/FASTQ text or a photo)
    max_upload_bytes: int = 20 * 1024 * 1024
    #: bytes of a whole request body (refused from its Content-Length, before it is read)
    max_request_bytes: int = 64 * 1024 * 1024
    #: barcodes in one identify request
    max_queries: int = 20_000
    #: photos in one retrieve request
    max_photos: int = 16
    #: neighbours listed per photo and top hits per barcode
    max_neighbours: int = 20
    #: finished identify jobs kept for download (the oldest are dropped first)
    kept_jobs: int = 64


@dataclass(frozen=True)
class ServeSettings:
    """The data behind a server. ``None`` everywhere: the embedded demo default (see :mod:`.defaults`).

    reference: anything ``bioscan5m identify --reference`` accepts (with ``taxonomy`` for a plain FASTA),
      or a dataset root, whose ``train`` + ``key_unseen`` records are the reference;
    model: a CLIBD folder written by ``bioscan5m align`` (the photo page needs one, and ``data``);
    data: a BIOSCAN-5M dataset root: the specimens photos are matched with, thumbnails and the map.
    """

    reference: Path | None = None
    taxonomy: Path | None = None
    model: Path | None = None
    data: Path | None = None
    limits: Limits = field(default_factory=Limits)
    #: ``BarcodeIdentifier`` parameters (``method``, ``threads``...); the defaults are the CLI's
    identifier_options: dict[str, Any] = field(default_factory=dict)
    #: how the map is reduced to 2-D: ``umap`` (default) or ``pca``
    map_reducer: str = "umap"
    device: str = "cpu"
    #: the embedded default's dataset size and model steps (tests make a smaller one)
    demo_records: int = DEMO_RECORDS
    demo_model_steps: int = DEMO_MODEL_STEPS
    cache_dir: Path | None = None

    @property
    def is_default(self) -> bool:
        return self.reference is None and self.model is None and self.data is None
