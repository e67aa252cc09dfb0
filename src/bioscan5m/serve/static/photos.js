// Photo page: dropped photos go to POST /api/retrieve; each gets its nearest references by image and by DNA.
"use strict";

const drop = document.getElementById("drop");
const input = document.getElementById("photos");
const errorBox = document.getElementById("error");
const busy = document.getElementById("busy");
const resultsBox = document.getElementById("results");
const modelState = document.getElementById("model-state");
const BY = { image: "by image", dna: "by DNA barcode (image→DNA)" };

drop.addEventListener("dragover", event => { event.preventDefault(); drop.classList.add("dragging"); });
drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
drop.addEventListener("drop", event => {
  event.preventDefault();
  drop.classList.remove("dragging");
  search(Array.from(event.dataTransfer.files));
});
input.addEventListener("change", () => search(Array.from(input.files)));

async function search(files) {
  showError(errorBox, "");
  if (!files.length) return;
  const data = new FormData();
  files.forEach(file => data.append("photos", file));
  data.append("k", document.getElementById("k").value);
  busy.textContent = `searching the references for ${files.length} photo(s)…`;
  try {
    render(files, (await api("/api/retrieve", { method: "POST", body: data })).body);
  } catch (error) {
    showError(errorBox, error.message);
  } finally {
    busy.textContent = "";
  }
}

function card(row) {
  const names = ["order", "family", "genus", "species"].map(rank => row[rank]).filter(Boolean);
  return `<div class="card"><img loading="lazy" alt="${escapeHtml(row.processid)}" src="/api/thumbnail/${encodeURIComponent(row.processid)}">` +
    `<div><strong>${escapeHtml(row.species || row.genus || row.family || "unnamed")}</strong></div>` +
    `<div class="muted">${escapeHtml(names.join(" › "))}</div>` +
    `<div class="muted">${escapeHtml(row.processid)} · similarity ${row.similarity.toFixed(3)}</div></div>`;
}

function render(files, result) {
  resultsBox.innerHTML = result.photos.map((name, index) => {
    const url = files[index] ? URL.createObjectURL(files[index]) : "";
    const groups = Object.entries(result.by).map(([key, rows]) =>
      `<h4>${escapeHtml(BY[key] || key)}</h4><div class="cards" data-by="${key}">` +
      rows.filter(row => row.query === name).map(card).join("") + "</div>").join("");
    return `<div class="panel photo-result"><div><img class="query" alt="${escapeHtml(name)}" src="${url}">` +
      `<div class="muted">${escapeHtml(name)}</div></div><div>${groups}</div></div>`;
  }).join("");
}

async function watchModel() {
  for (;;) {
    let info;
    try {
      info = (await api("/api/info")).body;
    } catch (error) {
      showError(errorBox, error.message);
      return;
    }
    const state = info.model.state;
    document.getElementById("served").textContent = info.data ? `specimens: ${info.data}` : "";
    input.disabled = state !== "ready";
    modelState.textContent = {
      ready: "",
      building: "The photo model is being built (first start only: a tiny CLIBD model is aligned on the demo " +
        "dataset). The identify and explore pages work meanwhile; this page is ready in a few minutes.",
      none: "No photo search on this server: start it with --model (a CLIBD folder made by 'bioscan5m align') " +
        "and --data (its dataset root).",
      failed: `The photo model could not be built: ${info.model.error}`,
    }[state];
    if (state !== "building") return;
    await sleep(3000);
  }
}
watchModel();
