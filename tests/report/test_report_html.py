"""report.html: the Markdown's tables as HTML tables, every plot embedded and decodable, nothing external,
written atomically; the demo keeps it in step with REPORT.md; the benchmarks write one beside their tables."""

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bioscan5m.demo import DemoReport
from bioscan5m.report.document import (
    ReportPlot,
    ReportSection,
    ReportTable,
    RunFacts,
    section_markdown,
    sections_from_json,
    sections_to_json,
    write_report,
)
from bioscan5m.report.html import render_html, write_html
from bioscan5m.report.plots import plot_collection_sites, plot_order_counts


class PageParts(HTMLParser):
    """The tables (rows of cell texts), image sources, every src/href value and the headings of a page."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.headings: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        self.links += [value for name, value in attrs.items() if name in ("src", "href")]
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "h2":
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "h2":
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        for buffer in (self._cell, self._heading):
            if buffer is not None:
                buffer.append(data)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text, as rows of cell texts (the |---| rule dropped)."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if not re.fullmatch(r"\|(---\|)+", line):
                current.append([cell.strip() for cell in line.strip("|").split(" | ")])
        else:
            current = None
    return tables


def decode_png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)))
    image.load()
    return image


@pytest.fixture
def sections(tmp_path):
    sites = pd.DataFrame({"coord-lat": [43.5, 9.1, -23.5], "coord-lon": [-80.2, -79.6, -46.6],
                          "records": [1200, 30, 4]})
    orders = pd.Series([500, 20, 3], index=pd.Index(["Diptera", "Hymenoptera", "Coleoptera"], name="order"))
    stats = pd.DataFrame({"records": [900, 100, 1000], "species": [40, 7, 45]},
                         index=pd.Index(["train", "test", "total"], name="split"))
    accuracy = pd.DataFrame({"model": ["BLAST <top hit>", "kmer-profile-5"], "source": ["paper", "this run"],
                             "species": [99.78, np.nan], "genus": [58.7449, 61.0]})
    return [
        ReportSection("Data", "Records in `data/` & their <sites>.", [ReportTable(stats, index=True)],
                      [ReportPlot(plot_collection_sites(sites, tmp_path / "plots" / "sites.png"), "Collection sites"),
                       ReportPlot(plot_order_counts(orders, tmp_path / "plots" / "orders.png"), "Records per order")]),
        ReportSection("Task I", "Micro accuracy.\n\nSecond paragraph.",
                      [ReportTable(accuracy, caption="Accuracy (%)"), ReportTable(accuracy, digits=3)]),
    ]


def test_html_holds_every_markdown_table_and_embeds_every_plot(tmp_path, sections):
    files = write_report(tmp_path / "report" / "REPORT.md", "A report", sections,
                         RunFacts.collect(data="/data/bioscan5m", command="bioscan5m demo --out x"))
    assert files["html"] == tmp_path / "report" / "report.html"
    markdown = files["markdown"].read_text()
    page = files["html"].read_text()
    parts = PageParts(page)

    expected = markdown_tables(markdown)
    assert len(expected) == 3 and parts.tables == expected  # the same cells, header included, in order
    assert parts.tables[0][0] == ["split", "records", "species"] and parts.tables[0][1] == ["train", "900", "40"]
    assert parts.tables[1][1] == ["BLAST <top hit>", "paper", "99.78", "58.74"]  # escaped, then parsed back
    assert parts.tables[1][2][2] == "–" and parts.tables[2][1][3] == "58.745"  # NaN, and 3 digits
    assert parts.headings == ["Data", "Task I"]

    # Every plot is in the page as a PNG that decodes to the very image on disk.
    assert len(parts.images) == 2
    for uri, name in zip(parts.images, ("sites.png", "orders.png")):
        embedded = decode_png(uri)
        on_disk = Image.open(tmp_path / "plots" / name)
        assert embedded.size == on_disk.size == (1200, 600)
        assert np.array_equal(np.asarray(embedded), np.asarray(on_disk))
    assert "![Collection sites](../plots/sites.png)" in markdown  # Markdown links the same files

    # Nothing from outside the page: only in-page anchors and data: URIs; no script, stylesheet or font link.
    assert parts.links and all(link.startswith(("#", "data:")) for link in parts.links)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, flags=re.IGNORECASE)
    assert "@import" not in page and "url(" not in page and not {"script", "iframe", "object"} & parts.tags
    # Title, the run's facts and a table of contents linking each section.
    assert "<title>A report</title>" in page and "bioscan5m demo --out x" in page and "/data/bioscan5m" in page
    assert [link for link in parts.links if link.startswith("#")] == ["#data", "#task-i"]
    assert '<section id="data">' in page and '<section id="task-i">' in page
    assert "<code>data/</code> &amp; their &lt;sites&gt;." in page


def test_html_is_written_atomically(tmp_path, sections):
    dest = tmp_path / "report.html"
    write_html(dest, "first", sections[1:])
    before = dest.read_bytes()
    with pytest.raises(UnicodeEncodeError):  # fails while the page is being written out
        write_html(dest, "bad \ud800 title", sections)
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots", "report.html"]  # no temporary file left


def test_a_deleted_plot_is_named_not_fatal(tmp_path, sections):
    sections[0].plots[1].path.unlink()
    parts = PageParts(page := render_html("r", sections))
    assert len(parts.images) == 1 and "Plot not found" in page and "orders.png" in page


def test_sections_survive_json(tmp_path, sections):
    base = tmp_path
    again = sections_from_json(sections_to_json({"data": sections[:1], "dna": sections[1:]}, base), base)
    assert list(again) == ["data", "dna"]
    restored = again["data"] + again["dna"]
    assert [section_markdown(s, base) for s in restored] == [section_markdown(s, base) for s in sections]
    assert restored[0].plots[0].path == tmp_path / "plots" / "sites.png"
    assert restored[0].tables[0].frame.index.name == "split"


def test_demo_report_keeps_html_in_step_with_markdown(tmp_path, sections):
    path = tmp_path / "REPORT.md"
    first = DemoReport.load(path)
    first.start("data")
    first.add("Synthetic BIOSCAN-5M", "data, first run", tables=sections[0].tables, plots=sections[0].plots)
    first.start("cluster")
    first.add("Task II", "cluster, first run", tables=[ReportTable(pd.DataFrame({"ami": [0.25]}), digits=3)])

    again = DemoReport.load(path)  # `bioscan5m demo --parts cluster`
    again.start("cluster")
    again.add("Task II", "cluster, second run", tables=[ReportTable(pd.DataFrame({"ami": [0.75]}), digits=3)])
    markdown = path.read_text()
    page = (tmp_path / "report.html").read_text()
    parts = PageParts(page)
    assert parts.tables == markdown_tables(markdown)
    assert parts.tables[-1] == [["ami"], ["0.750"]] and "0.250" not in page
    assert "data, first run" in page and "cluster, second run" in page and "cluster, first run" not in page
    assert parts.headings == ["Synthetic BIOSCAN-5M", "Task II"] and len(parts.images) == 2


def test_demo_report_reads_a_markdown_only_report(tmp_path):
    """A REPORT.md written before report.json existed keeps its sections (as text) for parts not run."""
    path = tmp_path / "REPORT.md"
    path.write_text("# bioscan5m demo\n\n<!-- demo part: data -->\n## Synthetic BIOSCAN-5M\n\n10 records.\n\n"
                    "<!-- demo part: dna -->\n## Pretraining\n\nloss 1.0\n\n## Task I\n\n| a |\n|---|\n| 1 |\n\n")
    report = DemoReport.load(path)
    assert {name: [s.title for s in group] for name, group in report.sections.items()} == {
        "data": ["Synthetic BIOSCAN-5M"], "dna": ["Pretraining", "Task I"]}
    report.start("dna")
    report.add("Task I", "new")
    assert "10 records." in (tmp_path / "report.html").read_text() and "loss 1.0" not in path.read_text()


def test_retrieval_report_writes_the_page(tmp_path):
    from bioscan5m.report.retrieval import write_retrieval_report
    from bioscan5m.tasks.retrieve import paper_table

    long = pd.DataFrame([{"direction": d, "queries": q, "rank": r, "k": k, "micro": 0.9, "macro": 0.45,
                          "n_queries": 10, "n_classes": 4}
                         for d in ("image→image", "dna→dna") for q in ("seen", "unseen")
                         for r in ("order", "family", "genus", "species") for k in (1, 5)])
    table = paper_table(long)
    paths = write_retrieval_report(long, table, tmp_path / "task3", data=tmp_path / "data")
    parts = PageParts(paths["html"].read_text())
    assert parts.tables == markdown_tables(paths["markdown"].read_text())
    assert decode_png(parts.images[0]).size == Image.open(paths["plot"]).size
    assert str(tmp_path / "data") in paths["html"].read_text()


def test_zsc_report_writes_markdown_and_page(tmp_path):
    from bioscan5m.data.records import load_records
    from bioscan5m.data.synthetic import write_synthetic_dataset
    from bioscan5m.embeddings.store import Embeddings
    from bioscan5m.tasks.cluster.evaluate import evaluate_encoders
    from bioscan5m.tasks.cluster.protocol import ClusteringProtocol

    root = write_synthetic_dataset(tmp_path / "data", records=300, images=False, seed=1)
    records = load_records(root, split="train")
    species = records.labels("species")
    vectors = np.random.default_rng(0).normal(size=(len(records), 8)).astype(np.float32)
    vectors[:, 0] += 10 * (species % 4)  # some structure for the clustering to find
    embeddings = Embeddings(np.asarray(records.column("processid"), dtype=object), vectors)
    out = tmp_path / "zsc"
    table = evaluate_encoders({"toy": embeddings}, records, out, ["genus", "species"],
                              ClusteringProtocol(reducer="pca", n_components=4), scatter_rank="species")
    markdown = (out / "ami.md").read_text()
    page = (out / "report.html").read_text()
    parts = PageParts(page)
    assert parts.tables == markdown_tables(markdown)
    assert parts.tables[0][0] == ["encoder", "genus", "species"]
    assert parts.tables[0][1] == ["toy", *(f"{v:.3f}" for v in table.set_index("rank")["ami"])]
    assert len(parts.images) == 2  # AMI by rank, and the 2-D map
    assert decode_png(parts.images[1]).size == Image.open(out / "pca_toy_species.png").size
    assert str(root) in page  # the data read, among the run's facts


def test_a_damaged_report_json_is_named(tmp_path):
    from bioscan5m.errors import BioscanError

    (tmp_path / "report.json").write_text('{"data": [{"title": "x"}]}')  # a section without its fields
    with pytest.raises(BioscanError, match="report.json.*not a demo report's data"):
        DemoReport.load(tmp_path / "REPORT.md")
