"""The Task III retrieval report: the paper-shaped table (TSV + Markdown), a bar plot (PNG), and both in one
self-contained HTML page."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bioscan5m.fileio import atomic_path, atomic_write
from bioscan5m.report.document import HTML_NAME, ReportPlot, ReportSection, ReportTable, RunFacts
from bioscan5m.report.html import write_html
from bioscan5m.report.tables import markdown_table

#: Files written by :func:`write_retrieval_report`, inside its output folder.
REPORT_FILES = {"table": "retrieval.tsv", "markdown": "retrieval.md", "plot": "retrieval.png",
                "long": "retrieval_long.tsv", "html": HTML_NAME, "protocol": "protocol.json"}


def plot_retrieval(long: pd.DataFrame, dest: str | os.PathLike[str], *, k: int = 1, average: str = "macro") -> Path:
    """Grouped bars: top-``k`` ``average`` accuracy (%) per direction and rank, one panel per query set."""
    query_sets = list(dict.fromkeys(long["queries"]))
    figure = Figure(figsize=(6 * max(len(query_sets), 1), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    chosen = long[long["k"] == k]
    ranks = list(dict.fromkeys(chosen["rank"]))
    directions = list(dict.fromkeys(chosen["direction"]))
    width = 0.8 / max(len(ranks), 1)
    for panel, query_set in enumerate(query_sets, start=1):
        axes = figure.add_subplot(1, len(query_sets), panel)
        subset = chosen[chosen["queries"] == query_set].set_index(["direction", "rank"])[average]
        x = np.arange(len(directions))
        for i, rank in enumerate(ranks):
            values = [100 * subset.get((d, rank), np.nan) for d in directions]
            axes.bar(x + (i - (len(ranks) - 1) / 2) * width, values, width, label=rank)
        axes.set_xticks(x, directions, rotation=30, ha="right")
        axes.set_ylim(0, 100)
        axes.set_ylabel(f"top-{k} {average} accuracy (%)")
        axes.set_title(f"{query_set} species queries")
        axes.grid(axis="y", alpha=0.3)
    if ranks:
        figure.axes[0].legend(title="rank", fontsize="small")
    figure.tight_layout()
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        figure.savefig(tmp, format="png")
    return dest


def write_retrieval_report(long: pd.DataFrame, table: pd.DataFrame, out_dir: str | os.PathLike[str],
                           protocol: dict | None = None, *, data: str | os.PathLike[str] | None = None
                           ) -> dict[str, Path]:
    """Write the paper-shaped ``table`` (TSV, Markdown), the ``long`` table (TSV), the bar plot, and
    ``report.html`` with the table and the plot; ``data`` (the dataset read) is named among the run's facts.
    With a ``protocol`` record (``tasks.retrieve.retrieval_protocol``) also ``protocol.json``, and both reports
    carry a footnote listing the deviations in force."""
    out_dir = Path(out_dir)
    paths = {name: out_dir / file for name, file in REPORT_FILES.items()}
    footnote = ""
    if protocol is None:
        del paths["protocol"]
    else:  # protocol.json is written whether or not deviations are in force
        if protocol["deviations"]:
            footnote = "Deviations from the authors' protocol: " + "; ".join(protocol["deviations"]) + "."
        with atomic_write(paths["protocol"]) as handle:
            json.dump(protocol, handle, indent=2)
    with atomic_write(paths["table"]) as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.2f")
    with atomic_write(paths["long"]) as handle:
        long.to_csv(handle, sep="\t", index=False, float_format="%.6f")
    with atomic_write(paths["markdown"]) as handle:
        handle.write(markdown_table(table))
        if footnote:
            handle.write(f"\n{footnote}\n")
    plot_retrieval(long, paths["plot"])
    section = ReportSection(
        "Top-k accuracy (%)", "Keys `train`+`key_unseen`; queries `test` (seen species) and `test_unseen` "
        "(unseen species); top-k accuracy per rank, micro (over queries) and macro (over classes), per direction. "
        f"Query and class counts per rank are in `{REPORT_FILES['long']}`. {footnote}",
        tables=[ReportTable(table)], plots=[ReportPlot(paths["plot"], "Top-1 macro accuracy per direction and rank")])
    write_html(paths["html"], "BIOSCAN-5M Task III: image-DNA-text retrieval", [section], RunFacts.collect(data=data))
    return paths
