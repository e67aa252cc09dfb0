"""An offline world basemap for longitude/latitude plots: Natural Earth's 1:110m country outlines.

The outlines ship inside the package (``report/data/ne_110m_countries.npz``, 37 KB, public domain; made by
``scripts/make_basemap.py``, source in ``report/data/README.md``), so maps need no download and no cartopy:
they are drawn with matplotlib alone, on the plain equirectangular frame (x = longitude, y = latitude).
"""

from __future__ import annotations

import functools
import io
from importlib import resources

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection

#: The packaged outline file, inside ``bioscan5m/report/data``.
BASEMAP_FILE = "ne_110m_countries.npz"
LAND_COLOUR = "#e4e0d6"
BORDER_COLOUR = "#a8a294"
SEA_COLOUR = "#eef4f8"


@functools.cache
def country_outlines() -> tuple[np.ndarray, ...]:
    """The outer boundary of every country: one float array ``[n, 2]`` of (longitude, latitude) in degrees each."""
    payload = resources.files("bioscan5m.report").joinpath("data", BASEMAP_FILE).read_bytes()
    with np.load(io.BytesIO(payload)) as data:
        lonlat = data["lonlat"].astype(float) / 100  # stored in hundredths of a degree
        starts = data["starts"]
    return tuple(np.split(lonlat, starts[1:-1]))


def draw_basemap(axes: Axes) -> PolyCollection:
    """Fill ``axes`` with sea and draw the countries beneath everything else; return the countries' artist."""
    axes.set_facecolor(SEA_COLOUR)
    countries = PolyCollection(country_outlines(), facecolors=LAND_COLOUR, edgecolors=BORDER_COLOUR,
                               linewidths=0.4, zorder=0.5)  # above the axes background, below the grid and data
    axes.add_collection(countries, autolim=False)
    return countries
