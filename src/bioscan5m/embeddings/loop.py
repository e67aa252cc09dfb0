"""The one batched inference loop, :func:`run_inference`, that every path from records to vectors takes: no
gradients, the precision asked for on a GPU, one progress bar, the batches joined. Also the device resolved once
(:func:`resolve_device`) and each torchrun rank's shard (:func:`shard_bounds`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: Forward-pass precisions: ``fp32`` (exact, the default) or autocast to ``bf16`` / ``fp16`` on a GPU.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


def resolve_device(device: Any = None) -> str:
    """``"auto"``/None → ``cuda:<LOCAL_RANK>`` when a GPU is visible (one per torchrun process), else ``cpu``."""
    import torch

    if device not in (None, "auto"):
        return str(device)
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return "cpu"


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous ``[lo, hi)`` of ``n`` items for ``rank``: the first ``n % world`` shards get one more."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def batches(items: Sequence[Any], batch_size: int, prefetch: bool = False) -> Iterator[Sequence[Any]]:
    """Successive batches of ``items``; with ``prefetch`` (images) items are read by a thread pool (JPEG
    decoding releases the GIL), one batch ahead of the encoder."""
    starts = range(0, len(items), batch_size)
    if not prefetch:
        for start in starts:
            yield items[start : start + batch_size]
        return
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        pending: list[Any] | None = None
        for start in starts:
            loading = [pool.submit(items.__getitem__, i) for i in range(start, min(start + batch_size, len(items)))]
            if pending is not None:
                yield [future.result() for future in pending]
            pending = loading
        if pending is not None:
            yield [future.result() for future in pending]


def run_inference(
    encode: Callable[[Any], np.ndarray | Mapping[str, np.ndarray]],
    batched: Iterable[Any],
    *,
    keyed: bool = False,
    total: int | None = None,
    size: Callable[[Any], int] = len,
    width: int = 0,
    description: str = "embedding",
    unit: str = "item",
    progress: bool | None = None,
    device: Any = None,
    precision: str = "fp32",
) -> Any:
    """``encode`` every batch of ``batched`` (no gradients) and join the results: ``float32 [N, D]``, or with
    ``keyed`` ``{key: float32 [N, D]}`` (``encode`` returns a dict: several modalities from one pass).

    total / size: the number of items and how many a batch holds (for the progress bar, None: only on a
    terminal). width: D of an empty result. precision: one of :data:`PRECISIONS`, applied on a ``device``
    of type cuda only (CPU inference stays exact).
    """
    import torch
    from tqdm.auto import tqdm

    autocast: Any = contextlib.nullcontext()
    if precision != "fp32" and str(device).startswith("cuda"):
        autocast = torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    parts: dict[str, list[np.ndarray]] = {}
    with tqdm(total=total, desc=description, unit=unit, leave=False,
              disable=None if progress is None else not progress) as bar, torch.no_grad(), autocast:
        for batch in batched:
            out = encode(batch)
            for key, vectors in (out.items() if keyed else [("", out)]):
                vectors = np.asarray(vectors, dtype=np.float32)
                if vectors.ndim != 2 or len(vectors) != size(batch):
                    raise RuntimeError(f"{encode!r} returned shape {vectors.shape} for a batch of {size(batch)}")
                parts.setdefault(key, []).append(vectors)
            bar.update(size(batch))
    joined = {key: np.concatenate(chunks) for key, chunks in parts.items()}
    return joined if keyed else joined.get("", np.zeros((0, width), dtype=np.float32))


def embed_items(encoder: Any, items: Sequence[Any], *, batch_size: int | None = None, progress: bool | None = None,
                description: str | None = None) -> np.ndarray:
    """Run an encoder of :mod:`bioscan5m.embeddings.encoders` over ``items`` batch by batch (images are read one
    batch ahead): ``float32 [len(items), dim]``."""
    images = encoder.modality == "image"
    return run_inference(encoder.encode, batches(items, batch_size or encoder.default_batch_size, images),
                         total=len(items), description=description or encoder.name,
                         unit="img" if images else "seq", progress=progress, device=getattr(encoder, "device", None))
