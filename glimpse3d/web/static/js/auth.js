// Sign-in for a server with GLIMPSE3D_AUTH=api_key or supabase (nothing happens in `none` mode).
//
// Loaded before app.js. It wraps window.fetch so that every same-origin /api/ request carries
// `Authorization: Bearer <token>`, and window.EventSource so that event streams carry
// `?access_token=` (EventSource cannot send headers). File links in API responses are signed
// by the server, so <img> tags and downloads need nothing. The token lives in sessionStorage
// (gone when the tab closes). A 401 opens the sign-in dialog: paste an API key, or sign in to
// Supabase with email and password (the server's /api/v1/auth/config says which).

const STORAGE_KEY = "glimpse3d.session";
const nativeFetch = window.fetch.bind(window);
const NativeEventSource = window.EventSource;
let config = null;
let dialog = null;

function loadSession() {
  try { return JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null"); } catch { return null; }
}

function saveSession(session) {
  if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE_KEY);
}

function isApi(url) {
  const u = new URL(url, window.location.href);
  return u.origin === window.location.origin && u.pathname.startsWith("/api/");
}

function withToken(init, input, token) {
  const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
  if (!headers.has("Authorization")) headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers };
}

window.fetch = async (input, init = {}) => {
  const url = typeof input === "string" || input instanceof URL ? String(input) : input.url;
  if (!isApi(url)) return nativeFetch(input, init);
  const session = loadSession();
  let response = await nativeFetch(input, session?.token ? withToken(init, input, session.token) : init);
  if (response.status === 401 && !url.includes("/auth/config")) {
    const renewed = await refreshSupabase(session);
    if (renewed) return nativeFetch(input, withToken(init, input, renewed.token));
    let detail = "";
    try { detail = (await response.clone().json()).detail || ""; } catch { /* not JSON */ }
    openSignIn(detail);
  }
  return response;
};

window.EventSource = class extends NativeEventSource {
  constructor(url, options) {
    const session = loadSession();
    if (session?.token && isApi(url)) {
      const u = new URL(url, window.location.href);
      u.searchParams.set("access_token", session.token);
      url = u.toString();
    }
    super(url, options);
  }
};

async function supabaseToken(grant, body) {
  const res = await nativeFetch(`${config.supabase_url}/auth/v1/token?grant_type=${grant}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", apikey: config.supabase_anon_key || "" },
    body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok || !data.access_token) {
    throw new Error(data.error_description || data.msg || data.message || `sign-in failed (${res.status})`);
  }
  return { mode: "supabase", token: data.access_token, refresh: data.refresh_token, email: data.user?.email };
}

async function refreshSupabase(session) {
  if (!config || config.mode !== "supabase" || !session?.refresh) return null;
  try {
    const renewed = await supabaseToken("refresh_token", { refresh_token: session.refresh });
    saveSession(renewed);
    return renewed;
  } catch {
    saveSession(null);
    return null;
  }
}

function field(label, attrs) {
  const input = Object.assign(document.createElement("input"), attrs);
  const wrap = document.createElement("label");
  wrap.className = "signin-field";
  wrap.append(label, input);
  return [wrap, input];
}

function buildDialog() {
  const d = document.createElement("dialog");
  d.id = "signin-dialog";
  d.setAttribute("aria-labelledby", "signin-title");
  const form = document.createElement("form");
  form.method = "dialog";
  const title = Object.assign(document.createElement("h2"), { id: "signin-title", textContent: "Sign in" });
  const reason = Object.assign(document.createElement("p"), { id: "signin-reason", className: "muted" });
  form.append(title, reason);
  let inputs;
  if (config.mode === "supabase") {
    const [emailRow, email] = field("Email", { type: "email", name: "email", required: true, autocomplete: "username" });
    const [pwRow, password] = field("Password", { type: "password", name: "password", required: true, autocomplete: "current-password" });
    form.append(emailRow, pwRow);
    inputs = { email, password };
  } else {
    const [keyRow, key] = field("API key", { type: "password", name: "api_key", required: true, autocomplete: "off", placeholder: "g3d_…", spellcheck: false });
    form.append(keyRow);
    inputs = { key };
  }
  const error = Object.assign(document.createElement("p"), { id: "signin-error", className: "error", role: "alert" });
  const submit = Object.assign(document.createElement("button"), { type: "submit", className: "button", textContent: "Sign in", id: "signin-submit" });
  form.append(error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      let session;
      if (config.mode === "supabase") {
        session = await supabaseToken("password", { email: inputs.email.value.trim(), password: inputs.password.value });
      } else {
        session = { mode: "api_key", token: inputs.key.value.trim() };
      }
      const check = await nativeFetch("/api/v1/projects?limit=1", { headers: { Authorization: `Bearer ${session.token}` } });
      if (!check.ok) {
        const body = await check.json().catch(() => ({}));
        throw new Error(body.detail || `the server refused the credentials (${check.status})`);
      }
      saveSession(session);
      window.location.reload();
    } catch (err) {
      error.textContent = err.message;
      submit.disabled = false;
    }
  });
  d.append(form);
  document.body.append(d);
  return d;
}

function openSignIn(reason = "") {
  if (!config || config.mode === "none") return;
  dialog = dialog || buildDialog();
  dialog.querySelector("#signin-reason").textContent = reason
    ? `The server says: ${reason}`
    : config.mode === "supabase" ? "Sign in with your account." : "Paste an API key (from `glimpse3d keys create OWNER`).";
  if (!dialog.open) dialog.showModal();
}

function addHeaderButton() {
  const nav = document.querySelector(".site-header nav");
  if (!nav) return;
  const session = loadSession();
  const button = Object.assign(document.createElement("button"), {
    type: "button", id: "signin-toggle", className: "button secondary small",
    textContent: session?.token ? "Sign out" : "Sign in",
  });
  button.addEventListener("click", () => {
    if (loadSession()?.token) { saveSession(null); window.location.reload(); } else openSignIn();
  });
  nav.append(button);
}

async function boot() {
  try {
    const res = await nativeFetch("/api/v1/auth/config", { headers: { Accept: "application/json" } });
    config = res.ok ? await res.json() : { mode: "none" };
  } catch {
    config = { mode: "none" };
  }
  if (config.mode === "none") return;
  addHeaderButton();
  if (!loadSession()?.token) openSignIn();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
