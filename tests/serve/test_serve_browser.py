"""The web app end to end in a real headless browser (Debian's Chromium, driven by Playwright) against uvicorn
on a loopback port: paste real barcodes and download the table, drop a photo and see its neighbours, draw and
hover the map; no page logs an error or asks for anything outside the server."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from bioscan5m.data.images import ImageStore
from bioscan5m.data.records import load_records
from bioscan5m.serve.settings import ServeSettings

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def server(real_barcodes, tiny_clibd, fast_identifier):
    """uvicorn serving the app on a free loopback port, in a thread: yields (base URL, context)."""
    import uvicorn

    from bioscan5m.serve.app import create_app
    from bioscan5m.serve.context import build_context

    root, model = tiny_clibd
    context = build_context(ServeSettings(reference=real_barcodes["reference"], taxonomy=real_barcodes["taxonomy"],
                                          data=root, model=model, identifier_options=fast_identifier, map_reducer="pca"))
    assert context.map.done.wait(120) and context.photos.done.wait(120)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(create_app(context), host="127.0.0.1", port=port,
                                                   log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uvicorn_server.started and time.time() < deadline:
        time.sleep(0.05)
    assert uvicorn_server.started
    yield f"http://127.0.0.1:{port}", context
    uvicorn_server.should_exit = True
    thread.join(10)
    context.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, accept_downloads=True)
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    """A fresh tab that records console messages, page errors, failed requests and every URL it asks for."""
    base, _ = server
    tab = browser.new_page()
    tab.problems, tab.urls = [], []
    tab.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
           else None)
    tab.on("pageerror", lambda error: tab.problems.append(f"pageerror: {error}"))
    tab.on("requestfailed", lambda request: tab.problems.append(f"failed: {request.url}"))
    tab.on("request", lambda request: tab.urls.append(request.url))
    yield tab
    assert tab.problems == []
    assert all(url.startswith((base + "/", "blob:", "data:")) for url in tab.urls), tab.urls
    tab.close()


def test_paste_real_barcodes_get_the_table_and_download_the_tsv(page, server, real_barcodes, tmp_path):
    base, context = server
    lines = real_barcodes["queries"].read_text().splitlines()[:24]  # 12 real held-out records
    page.goto(base + "/")
    page.fill("#fasta", "\n".join(lines))
    page.click("#identify-button")
    page.wait_for_selector("#results:not([hidden])", timeout=60_000)
    rows = page.eval_on_selector_all("#table tbody tr", "rows => rows.map(r => r.dataset.query)")
    assert rows == [line[1:] for line in lines[::2]]
    assert page.text_content("#summary").startswith("12 barcodes")
    headers = page.eval_on_selector_all("#table th", "cells => cells.map(c => c.textContent)")
    assert headers[:3] == ["query", "status", "phylum"] and "species" in headers and "top hits" in headers
    bars = page.eval_on_selector_all("#table tbody tr:first-child .bar > span", "bars => bars.map(b => b.style.width)")
    assert len(bars) == 7 and all(width.endswith("%") for width in bars)

    with page.expect_download() as download:
        page.click("#download button")
    saved = tmp_path / "predictions.tsv"
    download.value.save_as(saved)
    job_id = page.get_attribute("#download", "href").split("/")[3]
    table = context.jobs.get(job_id).result["predictions"]
    assert saved.read_text() == table.to_csv(sep="\t", index=False)
    species = page.eval_on_selector_all("#table tbody tr", "rows => rows.map(r => r.cells[8].querySelector('.name')"
                                        ".textContent)")
    assert species == [name or "–" for name in table["species"]]
    truth = [real_barcodes["query_species"][q] for q in rows]
    assert np.mean([a == b for a, b in zip(species, truth)]) >= 0.75  # real records of known species


def test_text_that_is_not_dna_gets_a_readable_message_on_the_page(page, server):
    base, _ = server
    page.goto(base + "/")
    page.fill("#fasta", "Dear colleague, please find the barcodes attached.")
    page.click("#identify-button")
    page.wait_for_selector("#error:not(:empty)")
    assert "not FASTA or FASTQ" in page.text_content("#error")
    assert page.is_hidden("#results")
    # Chromium logs the 400 answer itself as a failed resource; that one line is expected, nothing else
    assert all("status of 400" in problem for problem in page.problems)
    page.problems.clear()


def test_drop_a_synthetic_photo_get_neighbours_with_thumbnails(page, server, tiny_clibd):
    base, _ = server
    root = tiny_clibd[0]
    record_id = str(load_records(root, split="train").ids[5])
    photo = ImageStore.open(root).read_bytes(record_id)
    page.goto(base + "/photos")
    page.wait_for_function("!document.getElementById('photos').disabled")
    transfer = page.evaluate_handle(
        """b64 => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0)); const data = new DataTransfer();
        data.items.add(new File([bytes], 'specimen.jpg', {type: 'image/jpeg'})); return data; }""",
        base64.b64encode(photo).decode())
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector(".cards[data-by='image'] .card", timeout=60_000)
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth)")
    first = page.text_content(".cards[data-by='image'] .card:first-child")
    assert record_id in first and "similarity 1.000" in first
    assert page.eval_on_selector_all(".cards[data-by='dna'] .card", "cards => cards.length") == 5
    assert page.eval_on_selector("img.query", "i => i.naturalWidth") > 0  # the dropped photo is shown too


def test_the_map_draws_every_point_and_hover_names_one(page, server, tmp_path):
    base, context = server
    page.goto(base + "/explore")
    page.wait_for_function("window.bioscanMap.stats.drawn > 0")
    stats = page.evaluate("window.bioscanMap.stats")
    assert stats["points"] == stats["drawn"] == len(context.map.value.ids)
    page.locator("#map").screenshot(path=tmp_path / "map.png")
    pixels = np.asarray(Image.open(tmp_path / "map.png").convert("RGB")).reshape(-1, 3)
    coloured = pixels[(pixels.max(axis=1) - pixels.min(axis=1)) > 60]
    assert len(coloured) > 500 and len(np.unique(coloured // 32, axis=0)) > 5  # many points, many colours

    box = page.locator("#map").bounding_box()
    index = len(context.map.value.ids) // 2
    x, y = page.evaluate(f"window.bioscanMap.screenOf({index})")
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#tooltip", state="visible")
    shown = page.evaluate(f"window.bioscanMap.map.ids[window.bioscanMap.pointAt({x}, {y})]")
    tooltip = page.text_content("#tooltip")
    assert shown in tooltip and "genus:" in tooltip and "species:" in tooltip

    genus = context.map.value.taxonomy["genus"].dropna().iloc[0]
    page.fill("#search", genus)
    expected = int((context.map.value.taxonomy == genus).any(axis=1).sum())
    assert page.text_content("#map-status").startswith(f"{expected} of ")
    draws = page.evaluate("window.bioscanMap.stats.draws")
    page.mouse.wheel(0, -300)  # zoom in
    page.select_option("#rank", "species")
    page.wait_for_function(f"window.bioscanMap.stats.draws > {draws}")


def test_a_map_of_100k_points_is_drawn_whole_and_hover_finds_points(page, server):
    """The page's own drawing and hit-testing on 100,000 points (handed in for /api/map)."""
    base, _ = server
    rng = np.random.default_rng(0)
    n, species = 100_000, 2000
    of = rng.integers(0, species, n)
    xy = np.clip(rng.random((species, 2))[of] * 0.9 + 0.05 + rng.normal(0, 0.004, (n, 2)), 0, 1)
    payload = {"n": n, "ids": [f"SYN{i:06d}" for i in range(n)], "x": xy[:, 0].round(5).tolist(),
               "y": xy[:, 1].round(5).tolist(),
               "ranks": {"species": {"names": [f"Species {s}" for s in range(species)], "codes": of.tolist()}}}
    page.route("**/api/map", lambda route: route.fulfill(status=200, content_type="application/json",
                                                          body=json.dumps(payload)))
    page.goto(base + "/explore")
    page.wait_for_function(f"window.bioscanMap.stats.points === {n} && window.bioscanMap.stats.drawn > 0")
    assert page.evaluate("window.bioscanMap.stats.drawn") == n  # every point is inside the fitted view
    box = page.locator("#map").bounding_box()
    for index in (0, 54_321, n - 1):
        x, y = page.evaluate(f"window.bioscanMap.screenOf({index})")
        page.mouse.move(box["x"] + x, box["y"] + y)
        found = page.evaluate(f"window.bioscanMap.pointAt({x}, {y})")
        assert found >= 0 and np.hypot(*(xy[found] - xy[index])) < 0.01  # the point there, or one beside it
        page.wait_for_function("document.getElementById('tooltip').textContent.includes('SYN') && "
                               "document.getElementById('tooltip').style.display === 'block'")
        shown = int(page.text_content("#tooltip").split("SYN")[1][:6])  # the cursor sits on whole pixels
        assert np.hypot(*(xy[shown] - xy[index])) < 0.01
        page.mouse.move(box["x"] + 1, box["y"] + 1)  # off the points: the tooltip goes
        page.wait_for_selector("#tooltip", state="hidden")
