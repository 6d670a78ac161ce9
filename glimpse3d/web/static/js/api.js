// Thin client for the Glimpse3D HTTP API (/api/v1). Every error becomes an ApiError whose
// message is the server's `detail` (FastAPI validation lists are joined into one line).

export const API = "/api/v1";

// The vocabulary of the server (glimpse3d/domain.py), read once: no copies here.
export const META = await fetch("/api/meta").then((r) => {
  if (!r.ok) throw new Error(`GET /api/meta answered ${r.status}`);
  return r.json();
});
export const EXPORT_FORMATS = META.export_formats;
export const EXPORT_FILE_EXTENSIONS = META.export_file_extensions;
export const ACTIVE_STATUSES = new Set(META.active_statuses);
export const TERMINAL_STATUSES = new Set(META.terminal_statuses);
export const IMAGE_TYPES = META.image_mime_types;
export const IMAGE_EXTENSIONS = META.image_extensions;
export const NUM_VIEWS = META.num_views;

export class ApiError extends Error {
  /** @param {number} status HTTP status (0 for a network failure) @param {string} message */
  constructor(status, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** One readable line from a FastAPI error body ({detail: str | [{loc, msg}] | object}). */
export function detailText(body, fallback) {
  const d = body && typeof body === "object" ? body.detail ?? body.message ?? body.error : null;
  if (typeof d === "string" && d.trim()) return d;
  if (Array.isArray(d) && d.length) {
    return d.map((e) => {
      if (typeof e === "string") return e;
      const loc = Array.isArray(e.loc) ? e.loc.filter((p) => p !== "body" && p !== "query").join(".") : "";
      return loc ? `${loc}: ${e.msg}` : String(e.msg ?? JSON.stringify(e));
    }).join("; ");
  }
  if (d && typeof d === "object") return d.message ?? JSON.stringify(d);
  return fallback;
}

async function request(method, path, { body, query, headers } = {}) {
  let url = path.startsWith("http") || path.startsWith("/") ? path : `${API}/${path}`;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) qs.set(k, String(v));
    const s = qs.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  let response;
  try {
    response = await fetch(url, { method, body, headers: { Accept: "application/json", ...(headers || {}) } });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the server (${err.message}).`);
  }
  const type = response.headers.get("content-type") || "";
  let data = null;
  if (type.includes("json")) {
    try { data = await response.json(); } catch { data = null; }
  } else if (response.status !== 204) {
    const text = await response.text();
    data = text ? { detail: text.slice(0, 300) } : null;
  }
  if (!response.ok) {
    const retry = response.headers.get("retry-after");
    let msg = detailText(data, `${response.status} ${response.statusText || "error"}`);
    if (response.status === 429 && retry) msg += ` (try again in ${retry} s)`;
    throw new ApiError(response.status, msg, retry);
  }
  return data;
}

function jsonBody(obj) {
  return { body: JSON.stringify(obj), headers: { "Content-Type": "application/json" } };
}

export const api = {
  listProjects: (limit = 24, offset = 0) => request("GET", "projects", { query: { limit, offset } }),
  status: (id) => request("GET", `status/${encodeURIComponent(id)}`),
  /** @param {FormData} form with `file`, `remove_bg`, `name` */
  upload: (form) => request("POST", "upload", { body: form }),
  generate: (id) => request("POST", `generate/${encodeURIComponent(id)}`),
  /** One server-side job: generate (or resume) v0, then `iterations` refinements. */
  run: (id, iterations) => request("POST", `run/${encodeURIComponent(id)}`, { query: { iterations } }),
  refine: (id, iterations) => request("POST", `refine/${encodeURIComponent(id)}`, {
    query: { iterations }, ...jsonBody({ iterations }),
  }),
  cancel: (id) => request("POST", `projects/${encodeURIComponent(id)}/cancel`),
  remove: (id) => request("DELETE", `projects/${encodeURIComponent(id)}`),
  eventsUrl: (id) => `${API}/projects/${encodeURIComponent(id)}/events`,
  exportUrl: (id, format, version) => {
    const qs = new URLSearchParams({ format });
    if (version !== undefined && version !== null) qs.set("version", String(version));
    return `${API}/export/${encodeURIComponent(id)}?${qs}`;
  },
  /** Fetch a file and hand it to the browser as a download; errors carry the server's detail. */
  async download(url, filename) {
    let response;
    try { response = await fetch(url); } catch (err) {
      throw new ApiError(0, `Cannot reach the server (${err.message}).`);
    }
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      throw new ApiError(response.status, detailText(data, `${response.status} ${response.statusText}`));
    }
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) {
      // A signed URL instead of the bytes (S3 storage): follow it.
      const data = await response.json();
      const next = data.url || data.signed_url || data.download_url;
      if (next && next !== url) return api.download(next, filename);
      throw new ApiError(response.status, "The server sent no file for this download.");
    }
    const blob = await response.blob();
    const href = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = href;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 30000);
    return blob.size;
  },
};
