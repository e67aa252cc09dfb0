"""PNG plots of dataset statistics, and the ``bioscan5m stats`` report that bundles them.

Each ``plot_*`` function takes the data (from :mod:`bioscan5m.data.stats`), writes one PNG
atomically and returns its path. Figures are drawn with matplotlib's object API on the Agg canvas
(no pyplot, so no global state and no display needed); their size in pixels is ``size`` (inches)
times ``dpi``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from bioscan5m.data.stats import LATITUDE, LONGITUDE, TOTAL, collection_sites, order_counts, stats_table
from bioscan5m.fileio import atomic_path, atomic_write
from bioscan5m.report.basemap import draw_basemap

if TYPE_CHECKING:
    from bioscan5m.data.records import Records

PathLike = str | os.PathLike[str]
Size = tuple[float, float]
DPI = 100


def plot_order_counts(counts: pd.Series, dest: PathLike, *, size: Size = (12, 6), dpi: int = DPI) -> Path:
    """Bar chart of records per order (log scale), most frequent first; ``counts`` as from ``order_counts``."""
    figure, axes = _figure(size, dpi)
    if counts.empty:
        _no_data(axes)
    else:
        positions = np.arange(len(counts))
        axes.bar(positions, counts.to_numpy(), color="tab:green")
        axes.set_yscale("log")
        axes.set_ylim(bottom=0.5)  # a bar of one record must still show above the axis
        axes.set_xticks(positions, [str(name) for name in counts.index], rotation=60, ha="right", fontsize=8)
        axes.set_xlim(-0.6, len(counts) - 0.4)
    axes.set_ylabel("records (log scale)")
    axes.set_title(f"Records per order ({len(counts)} orders, {int(counts.sum()):,} labelled records)")
    return _save(figure, dest)


def plot_split_sizes(summary: pd.DataFrame, dest: PathLike, *, size: Size = (10, 5), dpi: int = DPI) -> Path:
    """Records and unique barcodes per split, side by side on a log scale; ``summary`` from ``split_summary``."""
    rows = summary.drop(index=TOTAL, errors="ignore")
    figure, axes = _figure(size, dpi)
    if rows.empty:
        _no_data(axes)
    else:
        positions = np.arange(len(rows))
        width = 0.4
        bars = axes.bar(positions - width / 2, rows["records"], width, label="records", color="tab:blue")
        axes.bar(positions + width / 2, rows["unique_barcodes"], width, label="unique barcodes", color="tab:orange")
        axes.bar_label(bars, labels=[f"{n:,}" for n in rows["records"]], fontsize=7, padding=2)
        axes.set_yscale("log")
        axes.set_ylim(bottom=0.5)
        axes.set_xticks(positions, [str(s) for s in rows.index], rotation=20, ha="right")
        axes.legend()
    axes.set_ylabel("count (log scale)")
    axes.set_title("Records and unique DNA barcodes per split")
    return _save(figure, dest)


def plot_collection_sites(sites: pd.DataFrame, dest: PathLike, *, size: Size = (12, 6), dpi: int = DPI,
                          basemap: bool = True) -> Path:
    """Collection sites on a longitude/latitude frame, coloured and sized by records per site.

    ``sites`` has columns ``coord-lat``, ``coord-lon`` and ``records`` (as from ``collection_sites``).
    With ``basemap`` the countries are drawn beneath (:mod:`bioscan5m.report.basemap`, packaged Natural
    Earth 1:110m outlines: no download); without, the frame is the plain equirectangular grid.
    """
    figure, axes = _figure(size, dpi)
    if basemap:
        draw_basemap(axes)
    axes.set_xlim(-180, 180)
    axes.set_ylim(-90, 90)
    axes.set_aspect("equal")
    axes.set_xticks(range(-180, 181, 30))
    axes.set_yticks(range(-90, 91, 30))
    axes.grid(color="0.85", linewidth=0.6)
    axes.axhline(0, color="0.6", linewidth=0.8)
    axes.axvline(0, color="0.6", linewidth=0.8)
    axes.set_xlabel("longitude (°)")
    axes.set_ylabel("latitude (°)")
    records = sites["records"].to_numpy() if len(sites) else np.zeros(0)
    if len(sites):
        # Sites range from one record to hundreds of thousands: size and colour on a log scale.
        order = np.argsort(records)  # big sites drawn last, on top
        scatter = axes.scatter(
            sites[LONGITUDE].to_numpy()[order],
            sites[LATITUDE].to_numpy()[order],
            s=10 + 25 * np.log10(records[order]),
            c=records[order],
            cmap="viridis",
            norm=LogNorm(vmin=1, vmax=max(2, records.max())),
            alpha=0.8,
            edgecolors="none",
            zorder=3,  # above the basemap and the grid
        )
        figure.colorbar(scatter, ax=axes, label="records per site", shrink=0.8)
    else:
        _no_data(axes)
    axes.set_title(f"Collection sites ({len(sites):,} sites, {int(records.sum()):,} records with coordinates)")
    return _save(figure, dest)


def write_stats_report(records: Records, out_dir: PathLike, *, table: pd.DataFrame | None = None) -> list[Path]:
    """Write the statistics of ``records`` into ``out_dir``; return the paths written.

    Files: ``split_stats.tsv`` (:func:`~bioscan5m.data.stats.stats_table`; pass ``table`` if already
    computed), ``records_per_order.tsv``, and the plots ``records_per_split.png``,
    ``records_per_order.png`` and ``collection_sites.png``.
    """
    out_dir = Path(out_dir)
    table = stats_table(records) if table is None else table
    orders = order_counts(records)
    return [
        _write_tsv(table, out_dir / "split_stats.tsv"),
        _write_tsv(orders.to_frame(), out_dir / "records_per_order.tsv"),
        plot_split_sizes(table, out_dir / "records_per_split.png"),
        plot_order_counts(orders, out_dir / "records_per_order.png"),
        plot_collection_sites(collection_sites(records), out_dir / "collection_sites.png"),
    ]


def _write_tsv(table: pd.DataFrame, dest: Path) -> Path:
    with atomic_write(dest) as handle:
        table.to_csv(handle, sep="\t", lineterminator="\n")
    return dest


def _figure(size: Size, dpi: int) -> tuple[Figure, Axes]:
    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _no_data(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", color="0.5")


def _save(figure: Figure, dest: PathLike) -> Path:
    """Write ``figure`` as PNG to ``dest`` atomically (size exactly ``figsize * dpi`` pixels)."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        figure.savefig(tmp, format="png", dpi=figure.dpi)
    return dest
