"""The packaged Natural Earth basemap: the file loads, and the collection-site map really draws land on it."""

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from bioscan5m.report.basemap import LAND_COLOUR, SEA_COLOUR, country_outlines, draw_basemap
from bioscan5m.report.plots import plot_collection_sites

#: Places well inside a country, and in open sea, as (longitude, latitude).
LAND = {"Sahara": (3, 28), "Amazon": (-60, -5), "Siberia": (100, 62), "Australia": (134, -25),
        "Greenland": (-40, 72)}
SEA = {"Pacific": (-140, 0), "South Atlantic": (-20, -35), "Indian Ocean": (75, -30), "North Atlantic": (-40, 45)}


def test_the_packaged_outlines_load():
    rings = country_outlines()
    assert len(rings) == 287 and sum(len(r) for r in rings) == 10631  # Natural Earth 1:110m countries
    points = np.concatenate(rings)
    assert points.shape[1] == 2 and np.abs(points[:, 0]).max() <= 180 and np.abs(points[:, 1]).max() <= 90
    assert points[:, 1].min() < -85 and points[:, 1].max() > 83  # Antarctica to northern Greenland
    # Rings are closed, and the land they enclose is about 30% of the lon/lat frame (Antarctica stretched).
    assert all(np.array_equal(r[0], r[-1]) for r in rings)
    area = sum(0.5 * abs(np.dot(r[:, 0], np.roll(r[:, 1], -1)) - np.dot(np.roll(r[:, 0], -1), r[:, 1]))
               for r in rings)
    assert 0.25 < area / (360 * 180) < 0.40


def _pixel(image: np.ndarray, transform, lon: float, lat: float) -> np.ndarray:
    x, y = transform.transform((lon, lat))
    return image[round(image.shape[0] - y), round(x), :3] / 255  # display y counts from the bottom


def test_countries_are_drawn_where_they_are():
    figure = Figure(figsize=(7.2, 3.6), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(-180, 180)
    axes.set_ylim(-90, 90)
    draw_basemap(axes)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())
    for name, (lon, lat) in LAND.items():
        assert np.allclose(_pixel(image, axes.transData, lon, lat), to_rgb(LAND_COLOUR), atol=0.02), name
    for name, (lon, lat) in SEA.items():
        assert np.allclose(_pixel(image, axes.transData, lon, lat), to_rgb(SEA_COLOUR), atol=0.02), name


def test_site_map_has_coastlines_a_plain_map_has_not(tmp_path):
    sites = pd.DataFrame({"coord-lat": [43.5], "coord-lon": [-80.2], "records": [10]})
    with_map = np.asarray(Image.open(plot_collection_sites(sites, tmp_path / "map.png")).convert("RGB"))
    plain = np.asarray(Image.open(plot_collection_sites(sites, tmp_path / "plain.png", basemap=False)).convert("RGB"))
    assert with_map.shape == plain.shape == (600, 1200, 3)

    def share(image, colour):
        return np.all(np.abs(image / 255 - to_rgb(colour)) < 0.02, axis=-1).mean()

    # Land and sea cover most of the plotting area on the map, none of the plain grid.
    assert 0.15 < share(with_map, LAND_COLOUR) < 0.35 and share(with_map, SEA_COLOUR) > 0.25
    assert share(plain, LAND_COLOUR) < 0.001 and share(plain, SEA_COLOUR) < 0.001
    assert (np.abs(with_map.astype(int) - plain).sum(axis=-1) > 30).mean() > 0.4
