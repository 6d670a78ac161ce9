// The projects page: upload (drag and drop), then the project list.

import { ACTIVE_STATUSES, API, ApiError, EXPORT_FORMATS, IMAGE_EXTENSIONS, IMAGE_TYPES, NUM_VIEWS, TERMINAL_STATUSES, api } from "./api.js";
import { renderQualityChart } from "./chart.js";
import { navigate } from "./router.js";
import {
  MAX_UPLOAD_BYTES, IMAGE_EXT, POLL_MS, LIST_POLL_MS, STREAM_RETRY_POLLS, STATUS_LABELS, shownStatus, h, $, formatBytes, formatDate, fmt, samePath, toast, showError, statusBadge, progressBar, setProgress, checkFile, iterationsSelect,
} from "./ui.js";

// ---------------------------------------------------------------- projects page

export function projectsPage(main) {
  document.title = "Projects · Glimpse3D";
  let stopped = false;
  let listTimer = null;
  let offset = 0;
  const pageSize = 24;
  let chosen = null;
  let previewUrl = null;

  const fileInput = h("input", {
    type: "file", id: "file-input", name: "file", class: "visually-hidden",
    accept: IMAGE_TYPES.join(","), "aria-describedby": "drop-help",
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
        await api.run(id, Number(iterations.value)); // one job: generate, then refine
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

