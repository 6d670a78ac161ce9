// Shared pieces of the workspace: constants, DOM helpers, badges, progress bars, file checks.

import { ACTIVE_STATUSES, API, ApiError, EXPORT_FORMATS, IMAGE_EXTENSIONS, IMAGE_TYPES, NUM_VIEWS, TERMINAL_STATUSES, api } from "./api.js";

export const MAX_UPLOAD_BYTES = (() => {
  const v = parseInt(document.querySelector('meta[name="glimpse3d-max-upload-bytes"]')?.content ?? "", 10);
  return Number.isFinite(v) && v > 0 ? v : 10 * 1024 * 1024;
})();
// The photo formats the API accepts (GET /api/meta, from glimpse3d/domain.py).
export const IMAGE_EXT = new RegExp(`\\.(${IMAGE_EXTENSIONS.join("|")})$`, "i");
export const POLL_MS = 2000;
export const LIST_POLL_MS = 3000;
export const STREAM_RETRY_POLLS = 3; // while polling, try the event stream again every 3 polls

export const STATUS_LABELS = {
  uploading: "Uploaded",
  preprocessing: "Preparing the photo",
  multiview_generating: "Generating 16 views",
  depth_estimating: "Estimating depth",
  reconstructing: "Building the 3D model",
  refining: "Refining",
  exporting: "Exporting",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
  ready: "Ready to generate",
};

/**
 * The status to show: the API leaves a freshly uploaded project in "preprocessing" (10%) with
 * its processed image and no job; that is shown as "ready" (waiting for Generate).
 */
export function shownStatus(p, processedUrl) {
  if (p.status === "preprocessing" && !p.job_active && processedUrl && (p.progress_percentage ?? 0) >= 10) {
    return "ready";
  }
  return p.status;
}

// ---------------------------------------------------------------- small helpers

/** Create an element: h("div", {class: "x", onclick: fn}, child, "text", ...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  if (n < 1024) return `${n} B`;
  const trim = (x) => x.toFixed(1).replace(/\.0$/, "");
  if (n < 1024 * 1024) return `${trim(n / 1024)} KB`;
  return `${trim(n / 1024 / 1024)} MB`;
}

export function formatDate(s) {
  if (!s) return "";
  // The API sends naive UTC timestamps; read them as UTC.
  const iso = /[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
}

export const fmt = (v, digits = 3) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? "–" : Number(v).toFixed(digits));
export const samePath = (a, b) => (a || "").split("?")[0] === (b || "").split("?")[0];

export function toast(message) {
  const t = $("#toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

export function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, STATUS_LABELS[status] ?? status);
}

export function progressBar(pct, label) {
  const v = Math.max(0, Math.min(100, Number(pct) || 0));
  return h("div", {
    class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": 0,
    "aria-valuemax": 100, "aria-valuenow": Math.round(v), "aria-valuetext": `${Math.round(v)}%`,
  }, h("div", { class: "progress-bar", style: `width:${v}%` }));
}

export function setProgress(node, pct) {
  const v = Math.max(0, Math.min(100, Number(pct) || 0));
  node.setAttribute("aria-valuenow", String(Math.round(v)));
  node.setAttribute("aria-valuetext", `${Math.round(v)}%`);
  node.firstElementChild.style.width = `${v}%`;
}

/** Client-side checks before sending a photo; returns an error message or null. */
export function checkFile(file) {
  if (!file) return "Choose a photo first.";
  const typeOk = file.type ? IMAGE_TYPES.includes(file.type) : IMAGE_EXT.test(file.name);
  if (!typeOk) {
    const what = file.type.startsWith("image/") ? "not a supported image" : "not an image";
    return `“${file.name}” is ${what}${file.type ? ` (${file.type})` : ""}. Choose a PNG, JPEG or WebP photo.`;
  }
  if (file.size > MAX_UPLOAD_BYTES) {
    return `“${file.name}” is ${formatBytes(file.size)}; the limit is ${formatBytes(MAX_UPLOAD_BYTES)}.`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  return null;
}


export function iterationsSelect(id, value = 3, min = 1) {
  const select = h("select", { id, name: "iterations" });
  for (let i = min; i <= 10; i++) select.append(h("option", { value: i, selected: i === value }, String(i)));
  return select;
}
