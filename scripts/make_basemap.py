"""Convert Natural Earth's 1:110m countries into the compact basemap packaged with bioscan5m (run once).

Source: Natural Earth "Admin 0 – Countries", 1:110m (https://www.naturalearthdata.com), public domain, as
shipped in the geopandas 0.14.4 wheel (``geopandas/datasets/naturalearth_lowres``). To rebuild::

    pip download --no-deps geopandas==0.14.4 -d /tmp/ne && unzip -o /tmp/ne/geopandas-0.14.4-py3-none-any.whl \
        'geopandas/datasets/naturalearth_lowres/*' -d /tmp/ne
    pip install --target /tmp/pyshp pyshp
    PYTHONPATH=/tmp/pyshp python scripts/make_basemap.py /tmp/ne/geopandas/datasets/naturalearth_lowres/naturalearth_lowres

Output: ``src/bioscan5m/report/data/ne_110m_countries.npz`` with ``lonlat`` (int16 [N, 2], hundredths of a
degree: 1 km precision, far below the 1:110m generalisation) and ``starts`` (int32 [R + 1], ring r is
``lonlat[starts[r]:starts[r + 1]]``). Only outer rings are kept: at this scale every hole of a country
(Lesotho in South Africa, ...) is another country, drawn on its own.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import shapefile  # pyshp, needed only here

DEST = Path(__file__).resolve().parents[1] / "src" / "bioscan5m" / "report" / "data" / "ne_110m_countries.npz"


def signed_area(ring: np.ndarray) -> float:
    """Shoelace area: negative for clockwise rings, which shapefiles use for outer boundaries."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def main(source: str) -> None:
    rings = []
    holes = 0
    for shape in shapefile.Reader(source).shapes():
        bounds = [*shape.parts, len(shape.points)]
        for start, stop in itertools.pairwise(bounds):
            ring = np.asarray(shape.points[start:stop], dtype=float)
            if signed_area(ring) > 0:
                holes += 1
                continue
            rings.append(np.round(ring * 100).astype(np.int16))
    starts = np.cumsum([0, *(len(r) for r in rings)]).astype(np.int32)
    np.savez_compressed(DEST, lonlat=np.concatenate(rings), starts=starts)
    print(f"{len(rings)} rings, {starts[-1]} points ({holes} holes dropped) -> {DEST} "
          f"({DEST.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
