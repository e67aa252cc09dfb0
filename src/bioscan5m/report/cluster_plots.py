"""Figures of zero-shot clustering: AMI against taxonomic rank, and a 2-D embedding map coloured by taxon."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bioscan5m.fileio import atomic_path

#: Taxa named in a scatter's legend; the rest are drawn in grey as "other".
SCATTER_LEGEND_TAXA = 18
#: tab20 without its two greys, which would read as "other".
_TAXON_COLOURS = [i for i in range(20) if i not in (14, 15)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_ami_by_rank(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Line plot like the paper's figure: AMI (%) at each rank, one line per ``encoder`` (PNG).

    ``table`` has columns ``encoder``, ``rank``, ``ami`` (0–1); ranks keep their order of first appearance.
    """
    plt = _pyplot()
    ranks = list(dict.fromkeys(table["rank"]))
    fig, ax = plt.subplots(figsize=(1.2 * len(ranks) + 3, 4.2))
    for encoder, rows in table.groupby("encoder", sort=False):
        by_rank = rows.set_index("rank")["ami"].reindex(ranks)
        ax.plot(range(len(ranks)), 100 * by_rank.to_numpy(dtype=float), marker="o", label=str(encoder))
    ax.set_xticks(range(len(ranks)), [r.replace("dna_bin", "BIN") for r in ranks])
    ax.set_xlabel("taxonomic rank")
    ax.set_ylabel("AMI (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title("Zero-shot clustering")
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    _save(fig, path)


def plot_embedding_scatter(coords: np.ndarray, names: Sequence[str | None], path: str | os.PathLike[str],
                           *, title: str = "") -> None:
    """2-D scatter of ``coords [N, 2]`` coloured by taxon ``names`` (PNG).

    The ``SCATTER_LEGEND_TAXA`` most frequent taxa get a colour and a legend entry; the others and
    unlabelled records are grey.
    """
    plt = _pyplot()
    coords = np.asarray(coords, dtype=float)
    labels = np.array(["" if n is None else str(n) for n in names], dtype=object)
    common = [name for name, _ in Counter(labels[labels != ""]).most_common(SCATTER_LEGEND_TAXA)]
    fig, ax = plt.subplots(figsize=(8, 6.5))
    size = max(3.0, 36.0 - 6.0 * np.log10(max(len(coords), 1)))  # marker area (pt²): smaller for more points
    ax.scatter(coords[:, 0], coords[:, 1], s=size, c="lightgrey", linewidths=0,
               label=f"other / unlabelled ({int((~np.isin(labels, common)).sum())})")
    colours = plt.get_cmap("tab20")
    for i, name in enumerate(common):
        chosen = labels == name
        ax.scatter(coords[chosen, 0], coords[chosen, 1], s=size, color=colours(_TAXON_COLOURS[i]), linewidths=0,
                   label=f"{name} ({int(chosen.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="x-small", markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | os.PathLike[str]) -> None:
    plt = _pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
