"""A report as one self-contained HTML page: tables as HTML tables, plots embedded as data URIs.

The page needs nothing but itself: no script, no web font, no stylesheet or image from anywhere else, so it
opens from ``file://`` in any browser, offline, and can be mailed as one file. It is written from the same
:class:`~bioscan5m.report.document.ReportSection` objects as the report's Markdown.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
from collections.abc import Sequence
from pathlib import Path

from pandas.api.types import is_numeric_dtype

from bioscan5m.fileio import atomic_write
from bioscan5m.report.document import ReportPlot, ReportSection, ReportTable, RunFacts
from bioscan5m.report.tables import table_cells

_STYLE = """
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1d232b; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 1.5rem 2rem 3rem; background: #fff; }
h1 { margin: 0.2rem 0 0.8rem; font-size: 1.8rem; }
h2 { margin-top: 2.4rem; padding-bottom: 0.2rem; border-bottom: 1px solid #d8dde3; font-size: 1.35rem; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.88em;
  background: #eef1f4; padding: 0.05em 0.3em; border-radius: 3px; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0 0 1rem;
  padding: 0.8rem 1rem; background: #f1f4f7; border-radius: 6px; font-size: 0.92rem; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
nav.toc { font-size: 0.95rem; } nav.toc ol { margin: 0.3rem 0; }
.table-wrap { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: 0.3rem; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #e2e6ea; text-align: left; white-space: nowrap; }
thead th { border-bottom: 2px solid #aab3bd; background: #f1f4f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:hover { background: #f7f9fb; }
figure { margin: 1.2rem 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #e2e6ea; }
figcaption { font-size: 0.9rem; color: #4a5560; margin-top: 0.3rem; }
p.missing { color: #a33; }
footer { margin-top: 3rem; font-size: 0.85rem; color: #5a6570; }
"""
_NUMBER = ' class="num"'


def write_html(dest: str | os.PathLike[str], title: str, sections: Sequence[ReportSection],
               facts: RunFacts | None = None) -> Path:
    """Write :func:`render_html` to ``dest`` atomically; return ``dest``."""
    dest = Path(dest)
    page = render_html(title, sections, facts)
    with atomic_write(dest) as handle:
        handle.write(page)
    return dest


def render_html(title: str, sections: Sequence[ReportSection], facts: RunFacts | None = None) -> str:
    """The whole page: title, the run's facts, a table of contents, then each section."""
    ids = _unique_ids([section.title for section in sections])
    toc = "".join(f'<li><a href="#{id_}">{html.escape(s.title)}</a></li>' for id_, s in zip(ids, sections))
    body = "\n".join(_section(id_, section) for id_, section in zip(ids, sections))
    version = f" {html.escape(facts.version)}" if facts else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'  # no favicon request for the browser to fail on
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(title)}</h1>\n{_facts(facts)}"
        f'<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{toc}</ol></nav>\n'
        f"{body}\n<footer>Written by bioscan5m{version}.</footer>\n</main>\n</body>\n</html>\n"
    )


def _facts(facts: RunFacts | None) -> str:
    if facts is None:
        return ""
    rows = [("command", facts.command), ("version", f"bioscan5m {facts.version}"), ("date", facts.date)]
    if facts.data:
        rows.append(("data", facts.data))
    items = "".join(f"<dt>{name}</dt><dd><code>{html.escape(value)}</code></dd>" if name in ("command", "data")
                    else f"<dt>{name}</dt><dd>{html.escape(value)}</dd>" for name, value in rows)
    return f'<dl class="facts">{items}</dl>\n'


def _section(id_: str, section: ReportSection) -> str:
    parts = [f'<section id="{id_}">', f"<h2>{html.escape(section.title)}</h2>", text_html(section.text)]
    parts += [table_html(table) for table in section.tables]
    parts += [_figure(plot) for plot in section.plots]
    return "\n".join(part for part in parts if part) + "\n</section>"


def text_html(text: str) -> str:
    """Short report prose as HTML paragraphs (blank lines part them); `code` spans become ``<code>``."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "\n".join(f"<p>{_inline(p)}</p>" for p in paragraphs)


def _inline(text: str) -> str:
    pieces = re.split(r"`([^`]+)`", text)  # odd pieces are the code spans
    return "".join(f"<code>{html.escape(piece)}</code>" if i % 2 else html.escape(piece)
                   for i, piece in enumerate(pieces))


def table_html(table: ReportTable) -> str:
    """One ``<table>``: the cells of :func:`~bioscan5m.report.tables.table_cells`, numbers right-aligned."""
    frame = table.frame.reset_index() if table.index else table.frame
    header, rows = table_cells(table.frame, index=table.index, digits=table.digits)
    numeric = [is_numeric_dtype(frame[column]) for column in frame.columns] if frame.columns.is_unique \
        else [False] * len(header)
    row_headers = table.frame.index.nlevels if table.index else 0
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    head = "".join(f'<th scope="col">{html.escape(name)}</th>' for name in header)
    body = []
    for row in rows:
        cells = [f'<th scope="row">{html.escape(value)}</th>' if j < row_headers
                 else f"<td{_NUMBER if numeric[j] else ''}>{html.escape(value)}</td>" for j, value in enumerate(row)]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _figure(plot: ReportPlot) -> str:
    caption = html.escape(plot.caption or plot.path.name)
    if not plot.path.is_file():  # a plot from an earlier run, since deleted: say so rather than fail
        return f'<p class="missing">Plot not found: <code>{html.escape(str(plot.path))}</code></p>'
    return (f'<figure><img src="{image_data_uri(plot.path)}" alt="{caption}">'
            f"<figcaption>{caption} <code>{html.escape(plot.path.name)}</code></figcaption></figure>")


def image_data_uri(path: str | os.PathLike[str]) -> str:
    """The image file at ``path`` as a ``data:`` URI (base64), its type from its suffix (PNG by default)."""
    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _unique_ids(titles: Sequence[str]) -> list[str]:
    ids: list[str] = []
    for title in titles:
        base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
        candidate, n = base, 2
        while candidate in ids:
            candidate, n = f"{base}-{n}", n + 1
        ids.append(candidate)
    return ids
