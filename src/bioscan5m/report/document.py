"""A report as data: titled sections of text, tables and plots, and the facts of the run that made them.

The Markdown and the self-contained HTML page (:mod:`bioscan5m.report.html`) of a report are both written
from these objects, so they always show the same tables. Section text is short prose in which `code` spans
are the only markup. :func:`sections_to_json` / :func:`sections_from_json` keep the sections between runs
(``bioscan5m demo --parts X`` replaces only part X's sections).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bioscan5m.fileio import atomic_write
from bioscan5m.report.tables import markdown_table

PathLike = str | os.PathLike[str]
#: The HTML page written beside a report's Markdown by :func:`write_report`.
HTML_NAME = "report.html"


@dataclass
class ReportTable:
    """A table of a report: floats shown with ``digits`` decimals; ``index`` shows the index as column one."""

    frame: pd.DataFrame
    index: bool = False
    digits: int = 2
    caption: str = ""


@dataclass
class ReportPlot:
    """An image file (PNG) of a report, with a short caption."""

    path: Path
    caption: str = ""

    def __post_init__(self) -> None:
        self.path = Path(self.path)


@dataclass
class ReportSection:
    """One titled section: a paragraph or two of ``text``, then its ``tables``, then its ``plots``."""

    title: str
    text: str = ""
    tables: list[ReportTable] = field(default_factory=list)
    plots: list[ReportPlot] = field(default_factory=list)


@dataclass
class RunFacts:
    """What made a report: the command line, the bioscan5m version, the date (UTC) and the data read."""

    command: str
    version: str
    date: str
    data: str | None = None

    @classmethod
    def collect(cls, data: PathLike | None = None, command: str | None = None) -> RunFacts:
        """The facts of this process: ``command`` defaults to its command line, the date to now."""
        from bioscan5m import __version__

        return cls(command=command or _command_line(), version=__version__,
                   date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   data=None if data is None else str(data))


def _command_line() -> str:
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if script.name == "__main__.py":  # python -m PACKAGE
        program = "bioscan5m" if script.parent.name == "bioscan5m" else f"python -m {script.parent.name}"
    else:
        program = script.name
    return " ".join([program, shlex.join(sys.argv[1:])]).strip()


def section_markdown(section: ReportSection, base: PathLike) -> str:
    """``section`` as Markdown; plots are image links relative to ``base`` (the Markdown file's folder)."""
    blocks = [f"## {section.title}", section.text.strip()]
    for table in section.tables:
        blocks += [f"*{table.caption}*" if table.caption else "", markdown_table(table.frame, index=table.index, digits=table.digits).rstrip()]
    blocks += [f"![{plot.caption}]({_link(plot.path, base)})" for plot in section.plots]
    return "\n\n".join(block for block in blocks if block) + "\n\n"


def _link(path: Path, base: PathLike) -> str:
    link = Path(os.path.relpath(path, base)).as_posix()
    return f"<{link}>" if " " in link else link


def write_report(markdown_path: PathLike, title: str, sections: Sequence[ReportSection],
                 facts: RunFacts | None = None) -> dict[str, Path]:
    """Write ``sections`` as Markdown to ``markdown_path`` and as ``report.html`` beside it (both atomically).

    Returns the paths written, keyed ``markdown`` and ``html``.
    """
    from bioscan5m.report.html import write_html

    markdown_path = Path(markdown_path)
    text = f"# {title}\n\n" + "".join(section_markdown(s, markdown_path.parent) for s in sections)
    with atomic_write(markdown_path) as handle:
        handle.write(text)
    html_path = write_html(markdown_path.with_name(HTML_NAME), title, sections, facts or RunFacts.collect())
    return {"markdown": markdown_path, "html": html_path}


def sections_to_json(sections: dict[str, list[ReportSection]], base: PathLike) -> str:
    """Named groups of sections as JSON; plot paths are stored relative to ``base``."""
    data = {name: [_section_to_dict(section, base) for section in group] for name, group in sections.items()}
    return json.dumps(data, ensure_ascii=False, indent=1)


def sections_from_json(text: str, base: PathLike) -> dict[str, list[ReportSection]]:
    """The sections :func:`sections_to_json` wrote; plot paths are resolved against ``base``.

    Raises ``ValueError`` or ``KeyError`` when ``text`` is not such JSON.
    """
    return {name: [_section_from_dict(item, base) for item in group] for name, group in json.loads(text).items()}


def _section_to_dict(section: ReportSection, base: PathLike) -> dict:
    return {"title": section.title, "text": section.text, "tables": [_table_to_dict(t) for t in section.tables],
            "plots": [{"path": Path(os.path.relpath(plot.path, base)).as_posix(), "caption": plot.caption}
                      for plot in section.plots]}


def _section_from_dict(item: dict, base: PathLike) -> ReportSection:
    return ReportSection(item["title"], item["text"], [_table_from_dict(t) for t in item["tables"]],
                         [ReportPlot(Path(base) / plot["path"], plot["caption"]) for plot in item["plots"]])


def _table_to_dict(table: ReportTable) -> dict:
    frame = table.frame.reset_index() if table.index else table.frame
    # pandas' JSON gives plain numbers (NaN as null) at full precision, whatever the column dtypes.
    cells = json.loads(frame.to_json(orient="split", index=False, double_precision=15))
    return {"columns": cells["columns"], "rows": cells["data"],
            "index_levels": table.frame.index.nlevels if table.index else 0,
            "digits": table.digits, "caption": table.caption}


def _table_from_dict(item: dict) -> ReportTable:
    frame = pd.DataFrame(item["rows"], columns=item["columns"])
    levels = item["index_levels"]
    if levels:
        frame = frame.set_index(list(frame.columns[:levels]))
    return ReportTable(frame, index=bool(levels), digits=item["digits"], caption=item["caption"])
