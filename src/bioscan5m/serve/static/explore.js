// Explore page: the reference's 2-D map on one canvas. Points are written straight into an ImageData buffer
// (100k points draw in milliseconds) and found under the cursor through a grid of cells, not DOM nodes.
"use strict";

const canvas = document.getElementById("map");
const context2d = canvas.getContext("2d");
const tooltip = document.getElementById("tooltip");
const rankSelect = document.getElementById("rank");
const searchInput = document.getElementById("search");
const statusText = document.getElementById("map-status");
const errorBox = document.getElementById("error");
const GRID = 256;           // hit-test cells per axis
const HOVER_RADIUS = 7;     // CSS pixels
const map = { n: 0, ids: [], x: null, y: null, ranks: {}, rank: null, match: null, view: { s: 1, ox: 0, oy: 0 } };
const stats = { points: 0, drawn: 0, lastDrawMs: 0, draws: 0 };
window.bioscanMap = { stats, screenOf, pointAt, search: runSearch, map };

async function load() {
  for (;;) {
    let answer;
    try {
      answer = await api("/api/map");
    } catch (error) {
      showError(errorBox, error.message);
      statusText.textContent = "";
      return;
    }
    if (answer.status === 200) return answer.body;
    statusText.textContent = "the map is being computed (first start for this reference only)…";
    await sleep(1000);
  }
}

function prepare(payload) {
  map.n = payload.n;
  map.ids = payload.ids;
  map.x = Float32Array.from(payload.x);
  map.y = Float32Array.from(payload.y);
  for (const [rank, data] of Object.entries(payload.ranks)) {
    map.ranks[rank] = { names: data.names, codes: Int32Array.from(data.codes), colours: null };
  }
  buildGrid();
  const ranks = Object.keys(map.ranks);
  rankSelect.innerHTML = ranks.map(r => `<option>${escapeHtml(r)}</option>`).join("");
  rankSelect.value = ranks.includes("genus") ? "genus" : ranks[ranks.length - 1];
  stats.points = map.n;
}

function buildGrid() {  // counting sort of the points into GRID x GRID cells of the unit square
  const cells = new Int32Array(map.n), counts = new Int32Array(GRID * GRID + 1);
  for (let i = 0; i < map.n; i++) {
    const cx = Math.min(GRID - 1, Math.max(0, Math.floor(map.x[i] * GRID)));
    const cy = Math.min(GRID - 1, Math.max(0, Math.floor(map.y[i] * GRID)));
    cells[i] = cy * GRID + cx;
    counts[cells[i] + 1]++;
  }
  for (let c = 0; c < GRID * GRID; c++) counts[c + 1] += counts[c];
  const fill = counts.slice(0, GRID * GRID), items = new Int32Array(map.n);
  for (let i = 0; i < map.n; i++) items[fill[cells[i]]++] = i;
  map.cellStart = counts;
  map.cellItems = items;
}

function fitView(x0 = 0, y0 = 0, x1 = 1, y1 = 1) {
  const w = canvas.clientWidth, h = canvas.clientHeight, span = Math.max(x1 - x0, y1 - y0, 1e-3);
  const s = 0.92 * Math.min(w, h) / span;
  map.view = { s, ox: w / 2 - s * (x0 + x1) / 2, oy: h / 2 - s * (y0 + y1) / 2 };
}

function colours(rank) {
  const entry = map.ranks[rank];
  if (!entry.colours) {
    // ABGR words for the little-endian Uint32 view of the ImageData buffer
    entry.colours = new Uint32Array(entry.names.length + 1);
    for (let c = -1; c < entry.names.length; c++) {
      const [r, g, b] = colourOf(c);
      entry.colours[c + 1] = (255 << 24) | (b << 16) | (g << 8) | r;
    }
  }
  return entry.colours;
}

let pending = false;
function requestDraw() {
  if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); }
}

function draw() {
  const started = performance.now();
  const ratio = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * ratio), h = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const image = context2d.createImageData(w, h), pixels = new Uint32Array(image.data.buffer);
  pixels.fill(0xffffffff);
  const { s, ox, oy } = map.view, size = Math.max(3, Math.round(3 * ratio));
  const codes = map.ranks[map.rank].codes, palette = colours(map.rank), grey = 0xffd8d4d0;
  let drawn = 0;
  // Two passes: unnamed or unmatched points first, so named and matching ones are drawn on top.
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < map.n; i++) {
      const front = map.match ? map.match[i] === 1 : codes[i] >= 0;
      if (front !== (pass === 1)) continue;
      const px = Math.round((map.x[i] * s + ox) * ratio), py = Math.round((map.y[i] * s + oy) * ratio);
      if (px < 0 || py < 0 || px >= w - size || py >= h - size) continue;
      const colour = map.match && !front ? grey : palette[codes[i] + 1];
      for (let dy = 0; dy < size; dy++) pixels.fill(colour, (py + dy) * w + px, (py + dy) * w + px + size);
      drawn++;
    }
  }
  context2d.putImageData(image, 0, 0);
  stats.drawn = drawn;
  stats.draws++;
  stats.lastDrawMs = performance.now() - started;
}

function screenOf(i) {  // CSS pixel position of point i inside the canvas
  return [map.x[i] * map.view.s + map.view.ox, map.y[i] * map.view.s + map.view.oy];
}

function pointAt(cssX, cssY) {  // the nearest point within HOVER_RADIUS, or -1
  const { s, ox, oy } = map.view, dx = (cssX - ox) / s, dy = (cssY - oy) / s, r = HOVER_RADIUS / s;
  const cx0 = Math.max(0, Math.floor((dx - r) * GRID)), cx1 = Math.min(GRID - 1, Math.floor((dx + r) * GRID));
  const cy0 = Math.max(0, Math.floor((dy - r) * GRID)), cy1 = Math.min(GRID - 1, Math.floor((dy + r) * GRID));
  let best = -1, bestDistance = r * r;
  for (let cy = cy0; cy <= cy1; cy++) {
    for (let cx = cx0; cx <= cx1; cx++) {
      const cell = cy * GRID + cx;
      for (let k = map.cellStart[cell]; k < map.cellStart[cell + 1]; k++) {
        const i = map.cellItems[k], ex = map.x[i] - dx, ey = map.y[i] - dy, d = ex * ex + ey * ey;
        if (d <= bestDistance && (!map.match || map.match[i])) { best = i; bestDistance = d; }
      }
    }
  }
  return best;
}

function describe(i) {
  const names = Object.entries(map.ranks).map(([rank, entry]) => entry.codes[i] >= 0
    ? `<div>${escapeHtml(rank)}: <strong>${escapeHtml(entry.names[entry.codes[i]])}</strong></div>` : "").join("");
  return `<div><strong>${escapeHtml(map.ids[i])}</strong></div>${names}`;
}

function legend() {
  const entry = map.ranks[map.rank], counts = new Map();
  for (const code of entry.codes) if (code >= 0) counts.set(code, (counts.get(code) || 0) + 1);
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 16);
  document.getElementById("legend").innerHTML = top.map(([code, count]) => {
    const [r, g, b] = colourOf(code);
    return `<span><i style="background:rgb(${r},${g},${b})"></i>${escapeHtml(entry.names[code])} (${count})</span>`;
  }).join("") + (counts.size > top.length ? `<span class="muted">… ${counts.size - top.length} more</span>` : "");
}

function runSearch(text) {
  const query = text.trim().toLowerCase();
  map.match = null;
  if (query) {
    const mask = new Uint8Array(map.n);
    let count = 0, x0 = 1, y0 = 1, x1 = 0, y1 = 0;
    for (const entry of Object.values(map.ranks)) {
      const hit = entry.names.map(name => name.toLowerCase().includes(query));
      for (let i = 0; i < map.n; i++) {
        if (entry.codes[i] >= 0 && hit[entry.codes[i]] && !mask[i]) {
          mask[i] = 1; count++;
          x0 = Math.min(x0, map.x[i]); x1 = Math.max(x1, map.x[i]); y0 = Math.min(y0, map.y[i]); y1 = Math.max(y1, map.y[i]);
        }
      }
    }
    map.match = mask;
    statusText.textContent = `${count.toLocaleString()} of ${map.n.toLocaleString()} records match “${text.trim()}”`;
    if (count) fitView(x0 - 0.02, y0 - 0.02, x1 + 0.02, y1 + 0.02);
  } else {
    statusText.textContent = `${map.n.toLocaleString()} reference records`;
  }
  requestDraw();
}

let drag = null;
canvas.addEventListener("mousedown", event => { drag = [event.offsetX, event.offsetY]; canvas.classList.add("panning"); });
window.addEventListener("mouseup", () => { drag = null; canvas.classList.remove("panning"); });
canvas.addEventListener("mousemove", event => {
  if (drag) {
    map.view.ox += event.offsetX - drag[0];
    map.view.oy += event.offsetY - drag[1];
    drag = [event.offsetX, event.offsetY];
    tooltip.style.display = "none";
    requestDraw();
    return;
  }
  const i = pointAt(event.offsetX, event.offsetY);
  if (i < 0) { tooltip.style.display = "none"; return; }
  tooltip.innerHTML = describe(i);
  tooltip.style.left = `${event.offsetX + 14}px`;
  tooltip.style.top = `${event.offsetY + 10}px`;
  tooltip.style.display = "block";
});
canvas.addEventListener("mouseleave", () => { tooltip.style.display = "none"; });
canvas.addEventListener("wheel", event => {
  event.preventDefault();
  const factor = Math.exp(-event.deltaY * 0.0015), v = map.view;
  v.ox = event.offsetX - (event.offsetX - v.ox) * factor;
  v.oy = event.offsetY - (event.offsetY - v.oy) * factor;
  v.s *= factor;
  requestDraw();
}, { passive: false });
rankSelect.addEventListener("change", () => { map.rank = rankSelect.value; legend(); requestDraw(); });
searchInput.addEventListener("input", () => runSearch(searchInput.value));
document.getElementById("reset").addEventListener("click", () => { searchInput.value = ""; fitView(); runSearch(""); });
window.addEventListener("resize", requestDraw);

load().then(payload => {
  if (!payload) return;
  prepare(payload);
  map.rank = rankSelect.value;
  fitView();
  legend();
  runSearch("");
}).catch(error => showError(errorBox, error.message));
api("/api/info").then(({ body }) => {
  document.getElementById("served").textContent = `reference: ${body.reference}`;
}).catch(() => {});
