// Identify page: the barcodes go to POST /api/jobs; the page polls the job, then draws one row per query.
"use strict";

const form = document.getElementById("identify-form");
const textarea = document.getElementById("fasta");
const fileInput = document.getElementById("file");
const button = document.getElementById("identify-button");
const progress = document.getElementById("progress");
const progressText = document.getElementById("progress-text");
const errorBox = document.getElementById("error");
const results = document.getElementById("results");
const SHOWN_ROWS = 500;  // the table shows this many; the TSV has every row

fileInput.addEventListener("change", () => { if (fileInput.files.length) textarea.value = ""; });
textarea.addEventListener("input", () => { if (textarea.value) fileInput.value = ""; });
textarea.addEventListener("dragover", event => { event.preventDefault(); textarea.classList.add("dragging"); });
textarea.addEventListener("dragleave", () => textarea.classList.remove("dragging"));
textarea.addEventListener("drop", event => {
  event.preventDefault();
  textarea.classList.remove("dragging");
  if (event.dataTransfer.files.length) {
    fileInput.files = event.dataTransfer.files;
    textarea.value = "";
    textarea.placeholder = `file: ${event.dataTransfer.files[0].name}`;
  }
});

form.addEventListener("submit", async event => {
  event.preventDefault();
  showError(errorBox, "");
  results.hidden = true;
  const data = new FormData();
  if (fileInput.files.length) {
    data.append("file", fileInput.files[0]);
  } else if (textarea.value.trim()) {
    // Sent as a file part: form fields have a small size cap, uploads do not.
    data.append("file", new Blob([textarea.value], { type: "text/plain" }), "pasted text");
  } else {
    showError(errorBox, "nothing to identify: paste FASTA or FASTQ barcodes, or choose a file");
    return;
  }
  data.append("hits", document.getElementById("hits").value);
  button.disabled = true;
  try {
    const job = (await api("/api/jobs", { method: "POST", body: data })).body;
    await follow(job);
    const result = (await api(`/api/jobs/${job.id}/result`)).body;
    render(result, `/api/jobs/${job.id}/tsv`);
  } catch (error) {
    showError(errorBox, error.message);
  } finally {
    button.disabled = false;
    progress.hidden = true;
  }
});

async function follow(job) {
  progress.hidden = false;
  for (;;) {
    progress.max = Math.max(job.total, 1);
    progress.value = job.done;
    progressText.textContent = `${job.state}: ${job.done.toLocaleString()} of ${job.total.toLocaleString()} barcodes`;
    if (job.state === "done") return;
    if (job.state === "failed") throw new Error(job.error);
    await sleep(job.total > 2000 ? 500 : 150);
    job = (await api(`/api/jobs/${job.id}`)).body;
  }
}

function rankColumns(record) {
  return Object.keys(record).filter(key => `${key}_confidence` in record);
}

function render(result, tsvUrl) {
  const records = result.records;
  const ranks = records.length ? rankColumns(records[0]) : [];
  const named = records.filter(r => r.status === "ok").length;
  const novel = records.filter(r => r.novel_species).length;
  document.getElementById("summary").textContent =
    `${records.length.toLocaleString()} barcodes: ${named.toLocaleString()} answered, ${novel.toLocaleString()} probably new species`;
  document.getElementById("download").href = tsvUrl;
  document.getElementById("shown").textContent = records.length > SHOWN_ROWS
    ? `The first ${SHOWN_ROWS} rows are shown; the TSV has all ${records.length.toLocaleString()}.` : "";
  const head = ["query", "status", ...ranks, "novel?", "nearest", "identity %", "top hits"];
  document.querySelector("#table thead").innerHTML = `<tr>${head.map(h => `<th>${escapeHtml(h)}</th>`).join("")}</tr>`;
  const rows = records.slice(0, SHOWN_ROWS).map(record => {
    const cells = ranks.map(rank => {
      const confidence = record[`${rank}_confidence`];
      const width = confidence == null ? 0 : Math.round(confidence * 100);
      return `<td><span class="name">${escapeHtml(record[rank] ?? "–")}</span>` +
        `<span class="bar" title="confidence ${confidence ?? "–"}"><span style="width:${width}%"></span></span></td>`;
    });
    const hits = (result.hits[record.query_id] || []).map(hit =>
      `<li>${escapeHtml(hit.reference_id)} ${escapeHtml(hit.species ?? hit.genus ?? "")} (${hit.identity ?? "–"}%)</li>`).join("");
    return `<tr data-query="${escapeHtml(record.query_id)}"><td>${escapeHtml(record.query_id)}</td>` +
      `<td class="${record.status === "ok" ? "status-ok" : "status-other"}">${escapeHtml(record.status)}</td>${cells.join("")}` +
      `<td>${record.novel_species ? '<span class="flag">new species?</span>' : ""}</td>` +
      `<td>${escapeHtml(record.nearest_id ?? "")}</td><td>${record.identity ?? "–"}</td>` +
      `<td>${hits ? `<details><summary>${(result.hits[record.query_id] || []).length} hits</summary><ol>${hits}</ol></details>` : ""}</td></tr>`;
  });
  document.querySelector("#table tbody").innerHTML = rows.join("");
  results.hidden = false;
}

api("/api/info").then(({ body }) => {
  document.getElementById("served").textContent =
    `reference: ${body.reference} (${body.reference_records.toLocaleString()} records)`;
}).catch(error => showError(errorBox, error.message));
