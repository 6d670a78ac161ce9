// Glimpse3D workspace: a small single-page app (no framework).
// Routes: "/" and "/projects" (list + upload), "/projects/{id}" (live project page).

import { ACTIVE_STATUSES, API, ApiError, EXPORT_FORMATS, TERMINAL_STATUSES, api } from "./api.js";
import { renderQualityChart } from "./chart.js";

const MAX_UPLOAD_BYTES = (() => {
  const v = parseInt(document.querySelector('meta[name="glimpse3d-max-upload-bytes"]')?.content ?? "", 10);
  return Number.isFinite(v) && v > 0 ? v : 10 * 1024 * 1024;
})();
// The formats the API recognises from the file's content (api/uploads.py).
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/bmp", "image/x-ms-bmp", "image/tiff"];
const IMAGE_EXT = /\.(png|jpe?g|webp|bmp|tiff?)$/i;
const POLL_MS = 2000;
const LIST_POLL_MS = 3000;
const NUM_VIEWS = 16;

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
function shownStatus(p, processedUrl) {
  if (p.status === "preprocessing" && !p.job_active && processedUrl && (p.progress_percentage ?? 0) >= 10) {
    return "ready";
  }
  return p.status;
}

// ---------------------------------------------------------------- small helpers

/** Create an element: h("div", {class: "x", onclick: fn}, child, "text", ...). */
function h(tag, attrs = {}, ...children) {
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

const $ = (sel, root = document) => root.querySelector(sel);

function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  if (n < 1024) return `${n} B`;
  const trim = (x) => x.toFixed(1).replace(/\.0$/, "");
  if (n < 1024 * 1024) return `${trim(n / 1024)} KB`;
  return `${trim(n / 1024 / 1024)} MB`;
}

function formatDate(s) {
  if (!s) return "";
  // The API sends naive UTC timestamps; read them as UTC.
  const iso = /[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
}

const fmt = (v, digits = 3) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? "–" : Number(v).toFixed(digits));
const samePath = (a, b) => (a || "").split("?")[0] === (b || "").split("?")[0];

function toast(message) {
  const t = $("#toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, STATUS_LABELS[status] ?? status);
}

function progressBar(pct, label) {
  const v = Math.max(0, Math.min(100, Number(pct) || 0));
  return h("div", {
    class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": 0,
    "aria-valuemax": 100, "aria-valuenow": Math.round(v), "aria-valuetext": `${Math.round(v)}%`,
  }, h("div", { class: "progress-bar", style: `width:${v}%` }));
}

function setProgress(node, pct) {
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

// ---------------------------------------------------------------- router

let cleanup = () => {};

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  route();
}

async function route() {
  cleanup();
  cleanup = () => {};
  const main = $("#main");
  main.replaceChildren();
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const m = path.match(/^\/projects\/([^/]+)$/);
  try {
    if (m) cleanup = await projectPage(main, decodeURIComponent(m[1]));
    else if (path === "/" || path === "/projects") cleanup = projectsPage(main);
    else {
      document.title = "Not found · Glimpse3D";
      main.append(h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "/", "data-link": true }, "Back to the projects")));
    }
  } catch (err) {
    main.append(h("p", { class: "error", role: "alert" }, `Something went wrong: ${err.message}`));
  }
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

// ---------------------------------------------------------------- projects page

function projectsPage(main) {
  document.title = "Projects · Glimpse3D";
  let stopped = false;
  let listTimer = null;
  let offset = 0;
  const pageSize = 24;
  let chosen = null;
  let previewUrl = null;

  const fileInput = h("input", {
    type: "file", id: "file-input", name: "file", class: "visually-hidden",
    accept: "image/png,image/jpeg,image/webp,image/bmp,image/tiff", "aria-describedby": "drop-help",
  });
  const preview = h("img", { id: "upload-preview", class: "upload-preview", alt: "", hidden: true });
  const chosenName = h("p", { id: "chosen-file", class: "chosen-file", "aria-live": "polite" });
  const dropzone = h("div", { class: "dropzone", id: "dropzone" },
    preview,
    h("p", { class: "drop-title" }, "Drop a photo here or ",
      fileInput, h("label", { for: "file-input", class: "button secondary" }, "choose a file")),
    h("p", { id: "drop-help", class: "muted small" },
      `PNG, JPEG or WebP, up to ${formatBytes(MAX_UPLOAD_BYTES)}. One object on a plain background works best.`),
    chosenName,
  );
  const nameInput = h("input", { id: "project-name", name: "name", type: "text", maxlength: 120, placeholder: "e.g. Blue mug", autocomplete: "off" });
  const removeBg = h("input", { id: "remove-bg", name: "remove_bg", type: "checkbox", checked: true });
  const uploadBtn = h("button", { type: "submit", id: "upload-btn", class: "button primary" }, "Upload");
  const uploadError = h("p", { id: "upload-error", class: "error", role: "alert", hidden: true });
  const result = h("div", { id: "upload-result", class: "upload-result", hidden: true, "aria-live": "polite" });

  const form = h("form", { id: "upload-form", class: "upload-form", novalidate: true },
    dropzone,
    h("div", { class: "form-row" },
      h("label", { for: "project-name" }, "Project name ", h("span", { class: "muted small" }, "(optional)")),
      nameInput),
    h("div", { class: "form-row checkbox" }, removeBg, h("label", { for: "remove-bg" }, "Remove the background")),
    h("div", { class: "form-actions" }, uploadBtn),
    uploadError,
  );

  const list = h("ul", { id: "project-list", class: "project-grid", "aria-live": "polite" });
  const listMsg = h("p", { id: "list-msg", class: "muted" }, "Loading projects…");
  const pager = h("div", { class: "pager" });

  main.append(
    h("h1", { class: "visually-hidden" }, "Projects"),
    h("section", { class: "card upload-card", "aria-labelledby": "upload-heading" },
      h("h2", { id: "upload-heading" }, "New project from a photo"), form, result),
    h("section", { class: "projects-section", "aria-labelledby": "projects-heading" },
      h("h2", { id: "projects-heading" }, "Projects"), listMsg, list, pager),
  );

  function choose(file) {
    chosen = null;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    preview.hidden = true;
    chosenName.textContent = "";
    const problem = checkFile(file);
    showError(uploadError, problem);
    if (problem) return;
    chosen = file;
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.alt = `Preview of ${file.name}`;
    preview.hidden = false;
    chosenName.textContent = `${file.name} · ${formatBytes(file.size)}`;
    if (!nameInput.value) nameInput.value = file.name.replace(/\.[^.]+$/, "").slice(0, 120);
  }

  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  preview.addEventListener("error", () => {
    // Not decodable by the browser (e.g. TIFF, or not an image at all): the server decides.
    preview.hidden = true;
    if (chosen) chosenName.textContent = `${chosen.name} · ${formatBytes(chosen.size)} · no preview`;
  });
  for (const ev of ["dragenter", "dragover"]) {
    dropzone.addEventListener(ev, (e) => { e.preventDefault(); dropzone.classList.add("dragging"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    dropzone.addEventListener(ev, () => dropzone.classList.remove("dragging"));
  }
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer?.files?.[0];
    if (file) choose(file);
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const problem = checkFile(chosen ?? fileInput.files[0]);
    if (problem) { showError(uploadError, problem); return; }
    const file = chosen ?? fileInput.files[0];
    const data = new FormData();
    data.append("file", file, file.name);
    data.append("remove_bg", removeBg.checked ? "true" : "false");
    if (nameInput.value.trim()) data.append("name", nameInput.value.trim());
    uploadBtn.disabled = true;
    uploadBtn.textContent = "Uploading…";
    showError(uploadError, null);
    try {
      const res = await api.upload(data);
      showUploaded(res);
      form.reset();
      choose(null);
      showError(uploadError, null);
      refreshList();
    } catch (err) {
      showError(uploadError, `Upload rejected: ${err.message}`);
    } finally {
      uploadBtn.disabled = false;
      uploadBtn.textContent = "Upload";
    }
  });

  function showUploaded(res) {
    const id = res.project_id ?? res.id;
    const err = h("p", { class: "error", role: "alert", hidden: true });
    const iterations = iterationsSelect("upload-iterations", 3, 0);
    const generate = h("button", { type: "button", class: "button primary", id: "generate-uploaded" }, "Generate 3D model");
    generate.addEventListener("click", async () => {
      generate.disabled = true;
      try {
        await api.generate(id);
        sessionStorage.setItem(`glimpse3d:auto-refine:${id}`, iterations.value);
        navigate(`/projects/${encodeURIComponent(id)}`);
      } catch (e2) {
        showError(err, e2.message);
        generate.disabled = false;
      }
    });
    result.replaceChildren(
      h("div", { class: "upload-result-body" },
        res.processed_url || res.original_url
          ? h("img", { src: res.processed_url || res.original_url, alt: `Prepared photo of ${res.name ?? "the new project"}`, class: "result-thumb" })
          : null,
        h("div", {},
          h("p", {}, h("strong", {}, res.name ?? "New project"), " uploaded · ",
            statusBadge(shownStatus(res, res.processed_url))),
          h("div", { class: "inline-actions" },
            generate,
            h("label", { for: "upload-iterations" }, "then refine"), iterations, h("span", { class: "muted small" }, "iterations"),
            h("a", { href: `/projects/${encodeURIComponent(id)}`, "data-link": true, class: "button secondary" }, "Open project")),
          err)),
    );
    result.hidden = false;
  }

  async function refreshList() {
    if (stopped) return;
    clearTimeout(listTimer);
    let data;
    try {
      data = await api.listProjects(pageSize, offset);
    } catch (err) {
      listMsg.textContent = `Could not load the projects: ${err.message}`;
      listMsg.className = "error";
      listTimer = setTimeout(refreshList, LIST_POLL_MS * 2);
      return;
    }
    if (stopped) return;
    const items = data.items ?? [];
    listMsg.className = "muted";
    listMsg.textContent = data.total ? `${data.total} project${data.total === 1 ? "" : "s"}` : "No projects yet: upload a photo to start.";
    list.replaceChildren(...items.map(projectCard));
    pager.replaceChildren();
    if (data.total > pageSize) {
      const prev = h("button", { type: "button", class: "button secondary", disabled: offset === 0 }, "Newer");
      const next = h("button", { type: "button", class: "button secondary", disabled: offset + pageSize >= data.total }, "Older");
      prev.addEventListener("click", () => { offset = Math.max(0, offset - pageSize); refreshList(); });
      next.addEventListener("click", () => { offset += pageSize; refreshList(); });
      pager.append(prev, h("span", { class: "muted" }, `${offset + 1}–${Math.min(offset + pageSize, data.total)} of ${data.total}`), next);
    }
    const anyActive = items.some((p) => ACTIVE_STATUSES.has(shownStatus(p, p.thumbnail_url)) && p.status !== "uploading");
    listTimer = setTimeout(refreshList, anyActive ? LIST_POLL_MS : LIST_POLL_MS * 5);
  }

  function generateButton(p) {
    const btn = h("button", { type: "button", class: "button primary small", "aria-label": `Generate the 3D model of ${p.name}` }, "Generate");
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      try {
        await api.generate(p.id);
        navigate(`/projects/${encodeURIComponent(p.id)}`);
      } catch (err) {
        toast(err.message);
        btn.disabled = false;
      }
    });
    return btn;
  }

  function projectCard(p) {
    const href = `/projects/${encodeURIComponent(p.id)}`;
    const del = h("button", { type: "button", class: "button ghost small", "aria-label": `Delete ${p.name}` }, "Delete");
    del.addEventListener("click", async () => {
      if (!window.confirm(`Delete “${p.name}” and all its files?`)) return;
      try { await api.remove(p.id); toast(`Deleted ${p.name}`); refreshList(); } catch (err) { toast(err.message); }
    });
    const shown = shownStatus(p, p.thumbnail_url);
    return h("li", { class: "project-card", dataset: { projectId: p.id, status: p.status } },
      h("a", { href, "data-link": true, class: "thumb-link", tabindex: -1, "aria-hidden": "true" },
        p.thumbnail_url
          ? h("img", { src: p.thumbnail_url, alt: "", loading: "lazy", class: "thumb" })
          : h("div", { class: "thumb placeholder" }, "no image")),
      h("div", { class: "project-card-body" },
        h("h3", {}, h("a", { href, "data-link": true }, p.name || "Untitled")),
        h("p", {}, statusBadge(shown), " ", h("span", { class: "muted small" }, `${Math.round(p.progress_percentage ?? 0)}%`)),
        progressBar(p.progress_percentage, `Progress of ${p.name}`),
        p.status === "failed" && p.error_message ? h("p", { class: "error small" }, p.error_message) : null,
        h("p", { class: "muted small" }, formatDate(p.updated_at || p.created_at)),
        h("div", { class: "card-actions" },
          shown === "ready" ? generateButton(p) : null,
          h("a", { href, "data-link": true, class: "button secondary small" }, "Open"), del)),
    );
  }

  refreshList();
  return () => {
    stopped = true;
    clearTimeout(listTimer);
    if (previewUrl) URL.revokeObjectURL(previewUrl);
  };
}

function iterationsSelect(id, value = 3, min = 1) {
  const select = h("select", { id, name: "iterations" });
  for (let i = min; i <= 10; i++) select.append(h("option", { value: i, selected: i === value }, String(i)));
  return select;
}

// ---------------------------------------------------------------- live updates

/**
 * Follows a project: EventSource on /events (each message triggers a status refresh), falling
 * back to polling /status every 2 s when the stream fails. Stops when no job is active.
 */
class LiveStatus {
  constructor(id, onStatus, onMode) {
    this.id = id;
    this.onStatus = onStatus;
    this.onMode = onMode;
    this.es = null;
    this.timer = null;
    this.inflight = null;
    this.pending = false;
    this.stopped = false;
    this.last = null;
  }

  start() {
    this.stopped = false;
    if (!this.es && typeof EventSource !== "undefined") {
      try {
        const es = new EventSource(api.eventsUrl(this.id));
        this.es = es;
        es.onopen = () => { this.stopPolling(); this.onMode("stream"); };
        es.onmessage = (e) => this.onEvent(e.data);
        for (const name of ["status", "end", "deleted"]) {
          es.addEventListener(name, (e) => this.onEvent(e.data));
        }
        es.onerror = () => {
          // The stream ended or is unavailable: fall back to polling while a job runs.
          es.close();
          if (this.es === es) this.es = null;
          if (!this.stopped) this.startPolling();
        };
      } catch {
        this.startPolling();
      }
    } else if (!this.es) this.startPolling();
    this.refresh();
  }

  onEvent(raw) {
    let data = null;
    try { data = JSON.parse(raw); } catch { data = null; }
    if (data && typeof data === "object") {
      const p = data.project ?? data;
      if (p.status || p.progress_percentage !== undefined) this.onStatus(null, p);
    }
    this.refresh();
  }

  startPolling() {
    if (this.timer || this.stopped) return;
    this.onMode("polling");
    this.timer = setInterval(() => this.refresh(), POLL_MS);
  }

  stopPolling() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Fetch the status now (coalescing overlapping requests). */
  async refresh() {
    if (this.inflight) { this.pending = true; return this.inflight; }
    this.inflight = (async () => {
      try {
        const status = await api.status(this.id);
        this.last = status;
        if (!this.stopped) this.onStatus(status, status.project);
        const p = status.project;
        const active = p.job_active ?? ACTIVE_STATUSES.has(p.status);
        if (!active && (TERMINAL_STATUSES.has(p.status) || p.job_active === false)) this.idle();
      } catch (err) {
        if (!this.stopped) this.onStatus(null, null, err);
      }
    })();
    await this.inflight;
    this.inflight = null;
    if (this.pending && !this.stopped) { this.pending = false; return this.refresh(); }
    return undefined;
  }

  /** No job: close the stream and stop polling (start() again after queueing a job). */
  idle() {
    this.stopPolling();
    if (this.es) { this.es.close(); this.es = null; }
    this.onMode("idle");
  }

  stop() {
    this.stopped = true;
    this.idle();
  }
}

// ---------------------------------------------------------------- project page

async function projectPage(main, id) {
  document.title = "Project · Glimpse3D";
  let state = null; // last full status payload
  let viewer = null;
  let viewerModule = null;
  let selectedVersion = null;
  let userPickedVersion = false;
  let loadedModelKey = null;

  const titleEl = h("h1", { id: "project-title" }, "Project");
  const badgeHolder = h("span", { id: "status-badge" });
  const stepEl = h("p", { id: "current-step", class: "current-step" });
  const bar = progressBar(0, "Pipeline progress");
  bar.id = "progress";
  const pctEl = h("span", { id: "progress-text", class: "progress-text" }, "0%");
  const modeEl = h("p", { id: "live-mode", class: "muted small" });
  const iterations = iterationsSelect("iterations");
  // Until the first status arrives: nothing to start or cancel.
  const generateBtn = h("button", { type: "button", id: "generate-btn", class: "button primary", hidden: true }, "Generate 3D model");
  const refineBtn = h("button", { type: "button", id: "refine-btn", class: "button primary", disabled: true }, "Refine");
  const cancelBtn = h("button", { type: "button", id: "cancel-btn", class: "button secondary", hidden: true }, "Cancel");
  const deleteBtn = h("button", { type: "button", id: "delete-btn", class: "button danger" }, "Delete project");
  const actionError = h("p", { id: "action-error", class: "error", role: "alert", hidden: true });
  const failureMsg = h("p", { id: "failure-message" });
  const retryBtn = h("button", { type: "button", id: "retry-btn", class: "button primary" }, "Retry");
  const failure = h("div", { id: "failure", class: "failure", role: "alert", hidden: true },
    h("h2", {}, "Processing failed"), failureMsg, retryBtn);
  const cancelledNote = h("p", { id: "cancelled-note", class: "notice", hidden: true },
    "This run was cancelled. Start it again with Generate or Refine.");

  const versionSelect = h("select", { id: "version-select", name: "version", disabled: true });
  const resetBtn = h("button", { type: "button", id: "reset-view", class: "button secondary small" }, "Reset view");
  const viewerInfo = h("span", { id: "viewer-info", class: "muted small", "aria-live": "polite" });
  const canvas = h("canvas", {
    id: "viewer-canvas", tabindex: 0, role: "img",
    "aria-label": "Interactive 3D model. Drag to orbit, scroll to zoom; arrow keys orbit, plus and minus zoom, 0 resets.",
  });
  const viewerMsg = h("p", { class: "viewer-msg", id: "viewer-msg" }, "No model yet: generate one to see it here.");
  const viewerBox = h("div", { id: "viewer", class: "viewer", dataset: { state: "empty" } }, canvas, viewerMsg);
  const downloads = h("div", { id: "downloads", class: "downloads", role: "group", "aria-label": "Download the selected version" });
  const downloadError = h("p", { id: "download-error", class: "error", role: "alert", hidden: true });

  const inputImages = h("div", { id: "input-images", class: "input-images" });
  const viewsCount = h("span", { class: "muted small", id: "views-count" }, `0 / ${NUM_VIEWS}`);
  const depthCount = h("span", { class: "muted small", id: "depth-count" }, `0 / ${NUM_VIEWS}`);
  const viewsGrid = h("ol", { id: "views-grid", class: "thumb-grid" });
  const depthGrid = h("ol", { id: "depth-grid", class: "thumb-grid" });
  for (let k = 0; k < NUM_VIEWS; k++) {
    viewsGrid.append(h("li", { class: "thumb-slot pending", dataset: { index: k } }, h("span", { class: "slot-label" }, `${k}`)));
    depthGrid.append(h("li", { class: "thumb-slot pending", dataset: { index: k } }, h("span", { class: "slot-label" }, `${k}`)));
  }
  const chartBox = h("div", { id: "quality-chart", class: "chart-box" });
  const iterBody = h("tbody", { id: "iterations-body" });
  const iterTable = h("table", { id: "iterations-table", class: "data-table" },
    h("caption", { class: "visually-hidden" }, "Refinement iterations and their metrics"),
    h("thead", {}, h("tr", {},
      ...[["#", "Iteration"], ["Quality", "Overall quality (0–1)"], ["PSNR", "PSNR in dB"], ["SSIM", "SSIM (0–1)"],
        ["Depth", "Depth consistency (0–1)"], ["Features", "Feature consistency (0–1)"],
        ["Accepted", "Enhanced views accepted"], ["Converged", "Converged"], ["Time", "Processing time in seconds"]]
        .map(([t, title]) => h("th", { scope: "col", title }, t === title ? t : h("abbr", { title }, t))))),
    iterBody);
  const iterEmpty = h("p", { class: "muted", id: "iterations-empty" }, "No refinement iterations yet.");

  main.append(
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "/", "data-link": true }, "← All projects")),
    h("header", { class: "project-head" }, titleEl, badgeHolder),
    h("section", { class: "card status-card", "aria-labelledby": "status-heading" },
      h("h2", { id: "status-heading", class: "visually-hidden" }, "Status and actions"),
      stepEl,
      h("div", { class: "progress-row" }, bar, pctEl),
      modeEl,
      failure,
      cancelledNote,
      h("div", { class: "actions" },
        generateBtn,
        h("span", { class: "refine-group" },
          h("label", { for: "iterations" }, "Iterations"), iterations, refineBtn),
        cancelBtn, deleteBtn),
      actionError),
    h("div", { class: "two-col" },
      h("section", { class: "card viewer-card", "aria-labelledby": "viewer-heading" },
        h("div", { class: "card-head" },
          h("h2", { id: "viewer-heading" }, "3D model"),
          h("div", { class: "viewer-toolbar" },
            h("label", { for: "version-select" }, "Version"), versionSelect, resetBtn)),
        viewerBox,
        h("p", { class: "viewer-foot" }, viewerInfo),
        h("h3", { class: "small-heading" }, "Downloads"),
        downloads,
        downloadError),
      h("section", { class: "card", "aria-labelledby": "input-heading" },
        h("h2", { id: "input-heading" }, "Input photo"), inputImages)),
    h("section", { class: "card", "aria-labelledby": "views-heading" },
      h("div", { class: "card-head" }, h("h2", { id: "views-heading" }, "Generated views"), viewsCount),
      viewsGrid),
    h("section", { class: "card", "aria-labelledby": "depth-heading" },
      h("div", { class: "card-head" }, h("h2", { id: "depth-heading" }, "Depth maps"), depthCount),
      depthGrid),
    h("section", { class: "card", "aria-labelledby": "refine-heading" },
      h("h2", { id: "refine-heading" }, "Refinement"),
      h("div", { class: "refine-layout" },
        h("figure", { class: "chart-figure" }, chartBox, h("figcaption", { class: "muted small" }, "Overall quality per iteration")),
        h("div", { class: "table-wrap" }, iterEmpty, iterTable))),
  );
  renderDownloads();

  // ---- actions
  async function act(button, fn, okMessage) {
    showError(actionError, null);
    button.disabled = true;
    try {
      await fn();
      if (okMessage) toast(okMessage);
      live.start();
    } catch (err) {
      showError(actionError, err.message);
    } finally {
      button.disabled = false;
      if (state) updateActions(state.project, state.models ?? []);
    }
  }
  generateBtn.addEventListener("click", () => act(generateBtn, () => api.generate(id), "Generation queued"));
  refineBtn.addEventListener("click", () => act(refineBtn, () => api.refine(id, Number(iterations.value)), "Refinement queued"));
  cancelBtn.addEventListener("click", () => act(cancelBtn, () => api.cancel(id), "Cancelling…"));
  retryBtn.addEventListener("click", () => act(retryBtn, () => retry(), "Retrying"));
  deleteBtn.addEventListener("click", async () => {
    if (!window.confirm("Delete this project, its database rows and all its files?")) return;
    try {
      await api.remove(id);
      toast("Project deleted");
      navigate("/", { replace: true });
    } catch (err) {
      showError(actionError, err.message);
    }
  });
  versionSelect.addEventListener("change", () => {
    userPickedVersion = true;
    selectedVersion = Number(versionSelect.value);
    renderDownloads();
    showModel();
  });
  resetBtn.addEventListener("click", () => viewer?.resetView());

  /** Retry a failed/cancelled run: refine again when a model exists, else generate. */
  function retry() {
    const models = state?.models ?? [];
    const job = state?.project?.job;
    if (job?.kind === "refine" || (models.length && job?.kind !== "generate")) {
      return api.refine(id, Number(job?.iterations ?? iterations.value));
    }
    return api.generate(id);
  }

  function renderDownloads() {
    const version = selectedVersion;
    const disabled = version === null;
    downloads.replaceChildren(...EXPORT_FORMATS.map((f) => {
      const url = disabled ? "#" : api.exportUrl(id, f, version);
      const name = `${(state?.project?.name || "model").replace(/[^\w.-]+/g, "_")}-v${version ?? 0}.${f}`;
      const a = h("a", {
        href: url, class: `button secondary small download${disabled ? " disabled" : ""}`, download: name,
        id: `download-${f}`, "aria-disabled": disabled ? "true" : null,
        "aria-label": `Download version ${version ?? ""} as .${f}`,
      }, `.${f}`);
      a.addEventListener("click", async (e) => {
        e.preventDefault();
        if (disabled || a.getAttribute("aria-busy") === "true") return;
        showError(downloadError, null);
        a.setAttribute("aria-busy", "true");
        const label = a.textContent;
        a.textContent = `.${f} …`;
        try {
          await api.download(url, name);
        } catch (err) {
          showError(downloadError, `.${f}: ${err.message}`);
        } finally {
          a.textContent = label;
          a.removeAttribute("aria-busy");
        }
      });
      return a;
    }));
  }

  // ---- rendering of the status payload
  function updateHeader(p) {
    if (p.name) { titleEl.textContent = p.name; document.title = `${p.name} · Glimpse3D`; }
    const shown = shownStatus(p, p.processed_url);
    if (p.status) badgeHolder.replaceChildren(statusBadge(shown));
    const pct = p.progress_percentage ?? 0;
    setProgress(bar, pct);
    pctEl.textContent = `${Math.round(pct)}%`;
    const stepName = p.current_step ? String(p.current_step).replace(/_/g, " ") : null;
    const label = STATUS_LABELS[shown] ?? p.status;
    stepEl.textContent = stepName && stepName !== label.toLowerCase() ? `${label} · step: ${stepName}` : label;
    failure.hidden = p.status !== "failed";
    failureMsg.textContent = p.error_message || "The run stopped with an unknown error.";
    cancelledNote.hidden = p.status !== "cancelled";
  }

  function updateActions(p, models) {
    const active = p.job_active ?? (ACTIVE_STATUSES.has(p.status) && p.status !== "uploading");
    // A failed run has its own Retry button; a finished model is refined, not regenerated.
    generateBtn.hidden = p.status === "failed" || models.length > 0;
    generateBtn.disabled = active;
    refineBtn.disabled = active || models.length === 0;
    iterations.disabled = refineBtn.disabled;
    cancelBtn.hidden = !active;
    retryBtn.hidden = active;
  }

  function updateInput(p) {
    const items = [["original_url", "Uploaded photo"], ["processed_url", "Prepared (background removed, centred)"]];
    for (const [key, caption] of items) {
      const url = p[key];
      let fig = inputImages.querySelector(`[data-key="${key}"]`);
      if (!url) { fig?.remove(); continue; }
      if (!fig) {
        fig = h("figure", { dataset: { key } }, h("img", { alt: `${caption} of ${p.name ?? "the project"}`, class: "input-img" }), h("figcaption", { class: "muted small" }, caption));
        inputImages.append(fig);
      }
      const img = fig.querySelector("img");
      if (!samePath(img.getAttribute("src"), url)) img.src = url;
    }
  }

  function fillGrid(grid, items, urlKey, altFn, countEl) {
    let n = 0;
    for (const item of items) {
      const slot = grid.children[item.view_index];
      const url = item[urlKey];
      if (!slot || !url) continue;
      n++;
      let img = slot.querySelector("img");
      if (!img) {
        img = h("img", { alt: altFn(item), loading: "lazy", decoding: "async" });
        slot.replaceChildren(h("a", { href: url, target: "_blank", rel: "noopener", "aria-label": `${altFn(item)} (opens the full image)` }, img), h("span", { class: "slot-label" }, `${item.view_index}`));
        slot.classList.remove("pending");
      }
      if (!samePath(img.getAttribute("src"), url)) { img.src = url; slot.querySelector("a").href = url; }
    }
    for (const slot of grid.children) {
      const idx = Number(slot.dataset.index);
      if (!items.some((it) => it.view_index === idx && it[urlKey]) && !slot.classList.contains("pending")) {
        slot.classList.add("pending");
        slot.replaceChildren(h("span", { class: "slot-label" }, `${idx}`));
      }
    }
    countEl.textContent = `${n} / ${NUM_VIEWS}`;
  }

  function updateIterations(iters) {
    const sorted = [...iters].sort((a, b) => a.iteration_number - b.iteration_number);
    iterEmpty.hidden = sorted.length > 0;
    iterTable.hidden = sorted.length === 0;
    iterBody.replaceChildren(...sorted.map((it) => h("tr", { dataset: { iteration: it.iteration_number } },
      h("th", { scope: "row" }, String(it.iteration_number)),
      h("td", {}, fmt(it.overall_quality)),
      h("td", {}, fmt(it.psnr, 2)),
      h("td", {}, fmt(it.ssim)),
      h("td", {}, fmt(it.depth_consistency)),
      h("td", {}, fmt(it.feature_consistency)),
      h("td", {}, it.accepted_views ?? "–"),
      h("td", {}, it.converged ? "yes" : "no"),
      h("td", {}, fmt(it.processing_time, 1)),
    )));
    renderQualityChart(chartBox, sorted.map((it) => ({ x: it.iteration_number, y: Number(it.overall_quality) })));
  }

  function updateVersions(models) {
    const versions = models.map((m) => m.version).sort((a, b) => a - b);
    const current = [...versionSelect.options].map((o) => Number(o.value));
    if (versions.join(",") !== current.join(",")) {
      versionSelect.replaceChildren(...versions.map((v) => {
        const m = models.find((x) => x.version === v);
        const label = `v${v}${v === 0 ? " (reconstruction)" : ` (refinement ${v})`} · ${m.num_gaussians?.toLocaleString?.() ?? "?"} gaussians`;
        return h("option", { value: v }, label);
      }));
    }
    versionSelect.disabled = versions.length === 0;
    resetBtn.disabled = versions.length === 0;
    if (!versions.length) {
      versionSelect.replaceChildren(h("option", { value: "" }, "none yet"));
      selectedVersion = null;
      renderDownloads();
      return;
    }
    const latest = versions[versions.length - 1];
    const next = userPickedVersion && versions.includes(selectedVersion) ? selectedVersion : latest;
    if (next !== selectedVersion) {
      selectedVersion = next;
      renderDownloads();
    }
    versionSelect.value = String(selectedVersion);
  }

  async function showModel() {
    const models = state?.models ?? [];
    const m = models.find((x) => x.version === selectedVersion);
    if (!m) return;
    const url = m.url || m.splat_url || api.exportUrl(id, "ply", m.version);
    const key = `${m.version}:${url.split("?")[0]}:${m.file_size_bytes}`;
    if (key === loadedModelKey) return;
    loadedModelKey = key;
    viewerMsg.textContent = "Loading the model…";
    viewerMsg.hidden = false;
    try {
      if (!viewer) {
        viewerModule = viewerModule ?? await import("./viewer.js");
        const prefer = new URLSearchParams(location.search).get("renderer") === "points" ? "points" : "spark";
        viewer = new viewerModule.SplatViewer(viewerBox, canvas, { onInfo: (t) => { viewerInfo.textContent = t; }, prefer });
      }
      const res = await viewer.load(url);
      if (res) {
        viewerMsg.hidden = true;
        viewerBox.dataset.version = String(m.version);
      }
    } catch (err) {
      loadedModelKey = null;
      viewerBox.dataset.state = "error";
      viewerMsg.hidden = false;
      viewerMsg.textContent = `The 3D view is unavailable: ${err.message}`;
    }
  }

  function onStatus(status, project, error) {
    if (error) {
      if (error instanceof ApiError && error.status === 404) {
        live.stop();
        main.replaceChildren(h("h1", {}, "Project not found"),
          h("p", { class: "error", role: "alert" }, error.message),
          h("p", {}, h("a", { href: "/", "data-link": true }, "Back to the projects")));
        return;
      }
      modeEl.textContent = `Connection problem: ${error.message} (retrying)`;
      return;
    }
    if (!status) { if (project) updateHeader({ ...(state?.project ?? {}), ...project }); return; }
    state = status;
    const p = { ...status.project, progress_percentage: status.progress_percentage ?? status.project.progress_percentage };
    updateHeader(p);
    updateActions(p, status.models ?? []);
    updateInput(p);
    fillGrid(viewsGrid, status.views ?? [], "url", (v) => `View ${v.view_index}: azimuth ${fmt(v.azimuth, 1)}°, elevation ${fmt(v.elevation, 0)}°`, viewsCount);
    fillGrid(depthGrid, status.depth_maps ?? [], "heatmap_url", (d) => `Depth heatmap of view ${d.view_index}${d.min_depth != null ? `: ${fmt(d.min_depth, 2)}–${fmt(d.max_depth, 2)}` : ""}`, depthCount);
    updateIterations(status.iterations ?? []);
    updateVersions(status.models ?? []);
    renderDownloads();
    showModel();
    maybeAutoRefine(p, status.models ?? []);
  }

  /** After "Generate, then refine N" on the projects page: queue the refinement once v0 exists. */
  function maybeAutoRefine(p, models) {
    const key = `glimpse3d:auto-refine:${id}`;
    const n = Number(sessionStorage.getItem(key) ?? "0");
    const running = p.job_active ?? ACTIVE_STATUSES.has(p.status);
    if (!n || running) return;
    if (p.status === "failed" || p.status === "cancelled") { sessionStorage.removeItem(key); return; }
    if (!models.length) return;
    sessionStorage.removeItem(key);
    iterations.value = String(n);
    act(refineBtn, () => api.refine(id, n), `Refinement queued (${n} iterations)`);
  }

  const live = new LiveStatus(id, onStatus, (mode) => {
    modeEl.textContent = {
      stream: "Live updates: streaming",
      polling: `Live updates: polling every ${POLL_MS / 1000} s`,
      idle: "No job running",
    }[mode] ?? "";
    modeEl.dataset.mode = mode;
  });
  live.start();

  return () => {
    live.stop();
    viewer?.dispose();
  };
}

// ---------------------------------------------------------------- boot

window.glimpse3d = { api, API, checkFile, STATUS_LABELS };
route();
