// Shared by the three pages: the API call that turns a {"error": ...} answer into a readable message.
"use strict";

async function api(url, options) {
  const response = await fetch(url, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("application/json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = body && body.error ? body.error : `the server answered ${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return { status: response.status, body };
}

function showError(element, message) {
  element.textContent = message || "";
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

// A stable, well-spread colour for the n-th name of a rank (golden-angle hues).
function colourOf(code) {
  if (code < 0) return [190, 196, 202];
  const hue = (code * 137.508) % 360, sat = 0.55 + 0.25 * ((code * 7) % 3) / 2, light = 0.42 + 0.12 * ((code * 5) % 3) / 2;
  const c = (1 - Math.abs(2 * light - 1)) * sat, x = c * (1 - Math.abs(((hue / 60) % 2) - 1)), m = light - c / 2;
  const [r, g, b] = hue < 60 ? [c, x, 0] : hue < 120 ? [x, c, 0] : hue < 180 ? [0, c, x] : hue < 240 ? [0, x, c] : hue < 300 ? [x, 0, c] : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}
