"""report.html in a real browser: headless Chromium (the system's, driven by Playwright) opens it from file://,
logs no error, loads every image and asks for nothing outside the page; a screenshot shows it drawn."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bioscan5m.data.records import load_records
from bioscan5m.data.stats import stats_table
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.report.document import ReportPlot, ReportSection, ReportTable, RunFacts, write_report
from bioscan5m.report.plots import write_stats_report

#: Chromium's own binary (Debian's package, or CHROMIUM=path); Playwright must not download a browser.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags for a quiet, offline, throwaway browser that also runs as root (no sandbox there).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")


@pytest.fixture
def report_page(tmp_path) -> Path:
    """The statistics part of a demo report on a small synthetic dataset: a table and three plots."""
    root = write_synthetic_dataset(tmp_path / "data", records=300, images=False, seed=2)
    records = load_records(root)
    table = stats_table(records)
    files = write_stats_report(records, tmp_path / "stats", table=table)
    section = ReportSection("Synthetic BIOSCAN-5M", f"{len(records)} records in `{root}`.",
                            [ReportTable(table, index=True)],
                            [ReportPlot(p, p.stem.replace("_", " ")) for p in files if p.suffix == ".png"])
    notes = ReportSection("Notes", "A second section, for the table of contents.")
    return write_report(tmp_path / "REPORT.md", "bioscan5m demo", [section, notes],
                        RunFacts.collect(data=root))["html"]


def test_report_renders_in_headless_chromium(report_page, tmp_path):
    from playwright.sync_api import sync_playwright

    messages, failures, requests = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 900})
        try:
            page = browser.new_page()
            page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
            page.on("requestfailed", lambda request: failures.append(request.url))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report_page.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "images => images.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            tables = page.eval_on_selector_all("table", "tables => tables.map(t => t.rows.length)")
            toc = page.eval_on_selector_all("nav a", "links => links.map(a => a.getAttribute('href'))")
            page.screenshot(path=tmp_path / "report.png", full_page=True)
        finally:
            browser.close()

    assert messages == [] and failures == []
    assert requests == [report_page.as_uri()]  # the page itself, nothing else (images are inline)
    assert images == [[True, 1000, 500], [True, 1200, 600], [True, 1200, 600]]  # every plot loaded, full size
    assert tables == [len(stats_table(load_records(tmp_path / "data"))) + 1]  # header + one row per split
    assert toc == ["#synthetic-bioscan-5m", "#notes"]

    shot = np.asarray(Image.open(tmp_path / "report.png").convert("L"))
    assert shot.shape[1] == 1100 and shot.shape[0] > 1800  # the whole page: three plots one above another
    assert (shot < 128).mean() > 0.005 and shot.std() > 20  # text and plots drawn, not a blank page
