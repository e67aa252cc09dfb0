"""Tables as text cells, and as GitHub Markdown, without extra dependencies.

:func:`table_cells` is the one place a value becomes the text a reader sees; the Markdown here and the HTML
report (:mod:`bioscan5m.report.html`) both show those cells, so the two never disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def format_cell(value: object, digits: int = 2) -> str:
    """A table cell: floats with ``digits`` decimals, NaN and None as "–", anything else as ``str``."""
    if value is None:
        return "–"
    if isinstance(value, float | np.floating):
        return "–" if np.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table_cells(table: pd.DataFrame, *, index: bool = False, digits: int = 2) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of ``table`` as text cells (:func:`format_cell`); ``index`` makes it column one."""
    if index:
        table = table.reset_index()
    header = [str(column) for column in table.columns]
    rows = [[format_cell(value, digits) for value in row] for row in table.itertuples(index=False)]
    return header, rows


def markdown_table(table: pd.DataFrame, *, index: bool = False, digits: int = 2) -> str:
    """A GitHub Markdown table of ``table``: floats with ``digits`` decimals, NaN as "–"."""
    header, rows = table_cells(table, index=index, digits=digits)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
