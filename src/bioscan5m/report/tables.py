"""Tables as GitHub Markdown, without extra dependencies."""

from __future__ import annotations

import numpy as np
import pandas as pd


def markdown_table(table: pd.DataFrame, *, index: bool = False, digits: int = 2) -> str:
    """A GitHub Markdown table of ``table``: floats with ``digits`` decimals, NaN as "–"."""
    if index:
        table = table.reset_index()

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "–" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
