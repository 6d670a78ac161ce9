// The project page: live progress, views, depth maps, iterations, the 3D viewer, downloads.

import { ACTIVE_STATUSES, API, ApiError, EXPORT_FILE_EXTENSIONS, EXPORT_FORMATS, IMAGE_EXTENSIONS, IMAGE_TYPES, NUM_VIEWS, TERMINAL_STATUSES, api } from "./api.js";
import { renderQualityChart } from "./chart.js";
import { LiveStatus } from "./live.js";
import { navigate } from "./router.js";
import {
  MAX_UPLOAD_BYTES, IMAGE_EXT, POLL_MS, LIST_POLL_MS, STREAM_RETRY_POLLS, STATUS_LABELS, shownStatus, h, $, formatBytes, formatDate, fmt, samePath, toast, showError, statusBadge, progressBar, setProgress, checkFile, iterationsSelect,
} from "./ui.js";

// ---------------------------------------------------------------- project page

export async function projectPage(main, id) {
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
  const meshBtn = h("button", {
    type: "button", id: "mesh-toggle", class: "button secondary small", "aria-pressed": "false", disabled: true,
    title: "Show the textured mesh of the .glb download instead of the splats",
  }, "Mesh");
  let meshPreview = null;
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
            h("label", { for: "version-select" }, "Version"), versionSelect, meshBtn, resetBtn)),
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
  meshBtn.addEventListener("click", () => setMeshPreview(meshBtn.getAttribute("aria-pressed") !== "true"));

  /** Show (or hide) the textured .glb of the selected version in the viewer. */
  async function setMeshPreview(on) {
    if (!viewer || selectedVersion === null) return;
    meshBtn.setAttribute("aria-pressed", String(on));
    if (!on) { meshPreview?.hide(); viewerMsg.hidden = true; return; }
    meshPreview = meshPreview ?? new (await import("./mesh-preview.js")).MeshPreview(viewer);
    const version = selectedVersion;
    viewerMsg.textContent = "Making the mesh…";
    viewerMsg.hidden = false;
    try {
      const faces = await meshPreview.show(api.exportUrl(id, "glb", version));
      if (faces !== null) {
        viewerMsg.hidden = true;
        viewerInfo.textContent = `Mesh of v${version}: ${faces.toLocaleString()} faces (the .glb download)`;
      }
    } catch (err) {
      meshBtn.setAttribute("aria-pressed", "false");
      meshPreview.hide();
      viewerMsg.hidden = false;
      viewerMsg.textContent = `The mesh preview is unavailable: ${err.message}`;
    }
  }

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
      const name = `${(state?.project?.name || "model").replace(/[^\w.-]+/g, "_")}-v${version ?? 0}.${EXPORT_FILE_EXTENSIONS[f] ?? f}`;
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
        meshBtn.disabled = false;
        if (meshPreview?.shown) setMeshPreview(true); // the mesh of the version now selected
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

