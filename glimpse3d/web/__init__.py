"""The web workspace: a single-page app served at ``/`` from ``glimpse3d/web/static``.

``mount_web(app)`` adds
- ``/static/...``: the page's CSS, JS and the vendored ES modules (three.js, Spark), and
- ``/``, ``/projects`` and ``/projects/{project_id}``: ``index.html`` (client-side routes).

The upload size limit shown and checked in the browser comes from
``app.state.settings.max_upload_bytes`` when the API has put its settings there (else 10 MB).
Everything works offline: no CDN is referenced.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
_PLACEHOLDER = "__GLIMPSE3D_MAX_UPLOAD_BYTES__"


def _max_upload_bytes(request: Request) -> int:
    """The API's upload limit in bytes (``app.state.settings``), or the 10 MB default."""
    settings = getattr(request.app.state, "settings", None)
    value = getattr(settings, "max_upload_bytes", None)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_UPLOAD_BYTES


def render_index(max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> str:
    """``index.html`` with the upload limit (bytes) filled in."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return html.replace(_PLACEHOLDER, str(int(max_upload_bytes)))


def mount_web(app: FastAPI) -> None:
    """Serve the workspace on ``app``: static files under ``/static`` and the page at ``/``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="web-static")

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(
            render_index(_max_upload_bytes(request)),
            headers={"Cache-Control": "no-cache"},
        )

    async def project_page(request: Request, project_id: str) -> HTMLResponse:
        return await index(request)

    async def favicon() -> Response:
        return Response(
            (STATIC_DIR / "favicon.svg").read_bytes(), media_type="image/svg+xml"
        )

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.add_api_route("/projects", index, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.add_api_route(
        "/projects/{project_id}", project_page, methods=["GET"], include_in_schema=False,
        response_class=HTMLResponse,
    )
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
