// Client-side routes: "/" and "/projects" (list + upload), "/projects/{id}" (project page).

import { $, h } from "./ui.js";

// ---------------------------------------------------------------- router

let cleanup = () => {};
let pages = null;

/** The page functions (they import navigate from here; app.js wires them up). */
export function registerPages(p) {
  pages = p;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  route();
}

export async function route() {
  cleanup();
  cleanup = () => {};
  const main = $("#main");
  main.replaceChildren();
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const m = path.match(/^\/projects\/([^/]+)$/);
  try {
    if (m) cleanup = await pages.projectPage(main, decodeURIComponent(m[1]));
    else if (path === "/" || path === "/projects") cleanup = pages.projectsPage(main);
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
