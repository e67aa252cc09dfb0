"""Screenshots of the three pages of ``bioscan5m serve``, and how smoothly the map draws 100,000 points.

Drives Debian's Chromium (Playwright) against a running server: pastes a dozen test barcodes of the dataset
(seen and unseen species) on the identify page, drops a test photo on the photo page, opens the map; saves
``docs/serve-identify.png``, ``docs/serve-photos.png``, ``docs/serve-explore.png``. Then it hands the explore
page a map of 100,000 synthetic points (2,000 species in 200 genera; the page's own code draws it) and times
the first draw, 30 zoom/pan frames and 1,000 hover look-ups.

    bioscan5m serve &                       # the embedded default (the demo's dataset and models)
    python benchmarks/serve_screenshots.py --url http://127.0.0.1:8000 --data ~/.cache/bioscan5m/serve/demo.4000-seed0/data
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from bioscan5m.data.images import ImageStore
from bioscan5m.data.records import load_records

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sample_fasta(root: Path, seen: int = 8, unseen: int = 4) -> str:
    """Barcodes of ``test`` (species in the reference) then ``test_unseen`` (species not in it)."""
    parts = []
    for split, count in (("test", seen), ("test_unseen", unseen)):
        records = load_records(root, split=split)
        parts += [f">{i}\n{s}\n" for i, s in zip(records.ids[:count], records.barcodes(clean=False)[:count])]
    return "".join(parts)


def big_map(points: int = 100_000, species: int = 2000, seed: int = 0) -> dict:
    """A map payload like ``GET /api/map`` answers, with ``points`` points in ``species`` Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.random((species, 2)) * 0.9 + 0.05
    of = rng.integers(0, species, points)
    xy = np.clip(centres[of] + rng.normal(0, 0.006, (points, 2)), 0, 1)
    genus_of = np.arange(species) // 10
    return {"n": points, "ids": [f"SYN{i:06d}" for i in range(points)], "x": np.round(xy[:, 0], 5).tolist(),
            "y": np.round(xy[:, 1], 5).tolist(),
            "ranks": {"genus": {"names": [f"Genus{g}" for g in range(species // 10)], "codes": genus_of[of].tolist()},
                      "species": {"names": [f"Genus{g} species{s}" for s, g in enumerate(genus_of)],
                                  "codes": of.tolist()}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", type=Path, required=True, help="the served dataset root (for test barcodes and a photo)")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    test_id = str(load_records(args.data, split="test").ids[0])
    photo = ImageStore.open(args.data).read_bytes(test_id)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        page.goto(args.url + "/")
        page.fill("#fasta", sample_fasta(args.data))
        page.click("#identify-button")
        page.wait_for_selector("#results:not([hidden])", timeout=120_000)
        page.screenshot(path=args.out / "serve-identify.png", full_page=True)

        page.goto(args.url + "/photos")
        page.wait_for_function("!document.getElementById('photos').disabled", timeout=600_000)
        page.set_input_files("#photos", files=[{"name": f"{test_id}.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        page.wait_for_selector(".cards[data-by='dna'] .card", timeout=120_000)
        page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete)")
        page.screenshot(path=args.out / "serve-photos.png", full_page=True)

        page.goto(args.url + "/explore")
        page.wait_for_function("window.bioscanMap.stats.drawn > 0", timeout=600_000)
        box = page.locator("#map").bounding_box()
        x, y = page.evaluate("window.bioscanMap.screenOf(Math.floor(window.bioscanMap.stats.points / 3))")
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.wait_for_selector("#tooltip", state="visible")
        page.screenshot(path=args.out / "serve-explore.png")

        # 100k points: the page's own drawing and hit-testing, on a payload handed in for /api/map.
        payload = json.dumps(big_map(args.points))
        page.route("**/api/map", lambda route: route.fulfill(status=200, content_type="application/json",
                                                              body=payload))
        page.goto(args.url + "/explore")
        page.wait_for_function(f"window.bioscanMap.stats.points === {args.points} && window.bioscanMap.stats.drawn > 0",
                               timeout=120_000)
        first = page.evaluate("window.bioscanMap.stats.lastDrawMs")
        box = page.locator("#map").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        frames = []
        for step in range(30):
            draws = page.evaluate("window.bioscanMap.stats.draws")
            if step % 2:
                page.mouse.wheel(0, -120)
            else:
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] / 2 + 15, box["y"] + box["height"] / 2 + 5)
                page.mouse.up()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function(f"window.bioscanMap.stats.draws > {draws}")
            frames.append(page.evaluate("window.bioscanMap.stats.lastDrawMs"))
        hover_ms = page.evaluate("""() => { const m = window.bioscanMap, c = document.getElementById('map');
            const t = performance.now(); let found = 0;
            for (let i = 0; i < 1000; i++) { if (m.pointAt((i * 37) % c.clientWidth, (i * 53) % c.clientHeight) >= 0) found++; }
            return [(performance.now() - t) / 1000, found]; }""")
        browser.close()
    print(f"screenshots: {', '.join(str(args.out / f'serve-{p}.png') for p in ('identify', 'photos', 'explore'))}")
    print(f"| map of {args.points:,} points | first draw {first:.1f} ms | zoom/pan frame median "
          f"{statistics.median(frames):.1f} ms, max {max(frames):.1f} ms (30 frames) | hover look-up "
          f"{hover_ms[0] * 1000:.1f} µs each ({hover_ms[1]} of 1000 found a point) |")
    if errors:
        raise SystemExit(f"page errors: {errors}")


if __name__ == "__main__":
    main()
