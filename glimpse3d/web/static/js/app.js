// Glimpse3D workspace: a small single-page app (no framework), one module per concern:
// api.js (HTTP client + the server's vocabulary), ui.js (DOM helpers), router.js (routes),
// live.js (event stream / polling), projects-page.js and project-page.js (the two pages).

import { API, api } from "./api.js";
import { projectPage } from "./project-page.js";
import { projectsPage } from "./projects-page.js";
import { registerPages, route } from "./router.js";
import { STATUS_LABELS, checkFile } from "./ui.js";

registerPages({ projectsPage, projectPage });
window.glimpse3d = { api, API, checkFile, STATUS_LABELS };
route();
