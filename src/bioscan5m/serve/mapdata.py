"""The reference's 2-D map: k-mer embeddings reduced by the project's own reduction, cached by content.

The payload is columnar (ids, x, y, and per rank a name list plus one code per point) so that 100k points
travel as a few megabytes of JSON and the page draws them from typed arrays.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bioscan5m.fileio import atomic_write
from bioscan5m.serve import backends


@dataclass(frozen=True)
class MapData:
    """Points of the map: record ids, coordinates scaled to [0, 1], and the taxonomy at each rank."""

    ids: np.ndarray
    xy: np.ndarray
    taxonomy: pd.DataFrame  # one column per rank, names or None

    def payload(self, rank: str | None = None) -> dict[str, Any]:
        """The JSON of ``GET /api/map``: every rank, or only ``rank`` (each: ``names`` and one ``code`` per
        point, -1 where the point has no name at that rank)."""
        ranks = [rank] if rank else [r for r in backends.RANKS if r in self.taxonomy]
        coded = {}
        for name in ranks:
            codes, names = pd.factorize(self.taxonomy[name], use_na_sentinel=True)
            coded[name] = {"names": [str(n) for n in names], "codes": codes.astype(int).tolist()}
        return {"n": len(self.ids), "ids": self.ids.tolist(), "x": np.round(self.xy[:, 0], 5).tolist(),
                "y": np.round(self.xy[:, 1], 5).tolist(), "ranks": coded}


def build_map(records: Any, reducer: str, cache_dir: str | os.PathLike[str] | None = None) -> MapData:
    """The map of ``records`` (those with a barcode): coordinates read from the cache folder when this
    reference was reduced the same way before, else embedded, reduced and stored there."""
    from bioscan5m.cachedir import cache_folder, entry_name, mark_used
    from bioscan5m.tasks.cluster.reduce import reduction_stamp

    taxonomy = backends.taxonomy_table(records)
    barcodes = records.barcodes(clean=True)
    keep = np.array([bool(b) for b in barcodes], dtype=bool)
    ids = taxonomy["processid"].to_numpy(dtype=object)[keep]
    kept = [b for b, k in zip(barcodes, keep) if k]
    # A change of the reduction itself (e.g. its seeding) or of UMAP's release re-reduces, as it does for cluster.
    settings = f"{reduction_stamp()}\0{backends.MAP_ENCODER}\0{reducer}\0{sorted(backends.MAP_UMAP.items())}\0"
    digest = hashlib.sha256(settings.encode())
    for record_id, barcode in zip(ids, kept):
        digest.update(f"{record_id}\t{barcode}\n".encode())
    path = cache_folder("reduced", cache_dir) / entry_name("serve-map", digest.hexdigest()[:24], ".npy")
    xy = None
    if path.is_file():
        try:
            xy = np.load(path)
            mark_used(path)
        except (OSError, ValueError):
            xy = None  # damaged: reduce again and replace it
    if xy is None or xy.shape != (len(ids), 2):
        xy = backends.reduce_to_2d(backends.map_vectors(kept), reducer)[:, :2].astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as handle:
            np.save(handle, xy)
    return MapData(ids=ids, xy=_unit_square(xy), taxonomy=taxonomy[keep].drop(columns="processid")
                   .reset_index(drop=True))


def _unit_square(xy: np.ndarray) -> np.ndarray:
    """Scale both axes by the same factor into [0, 1] (the map keeps its aspect)."""
    if len(xy) == 0:
        return xy
    low = xy.min(axis=0)
    span = float((xy.max(axis=0) - low).max()) or 1.0
    return ((xy - low) / span).astype(np.float32)
