"""Browser tests of the web workspace: the real app on a real uvicorn server, driven by
Debian's chromium through Playwright.

Flow: upload a photo on the projects page -> generate (then refine 1 iteration) -> the project
page follows progress live -> 16 views, 16 depth heatmaps, one iteration row, the quality
chart -> the Spark viewer draws the model (canvas pixels read back) -> switch versions ->
download a .glb (loaded with trimesh). Also: rejected uploads show the reason, a failed
project shows its error and a retry action, the point-cloud fallback renders. No console
errors are allowed (except the expected network error of a rejected upload).

Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.utils.common import free_port
from tests.utils.settings import FAST

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
SAMPLE = REPO_ROOT / "glimpse3d" / "samples" / "mug.png"
VIEWER_BG = np.array([0xF4, 0xF5, 0xF7])  # the viewer's clear colour (viewer.js BACKGROUND)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # WebGL2 (Spark) on the CPU: ANGLE over SwiftShader. No --disable-gpu (it turns WebGL off).
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
MAX_UPLOAD = 1024 * 1024
PIPELINE_TIMEOUT_MS = 300_000  # generous: the CI machine may be shared; ~60 s when idle


def _sample_photo(tmp: Path) -> Path:
    """The bundled mug photo, or a 512x512 red disc on a light background."""
    if SAMPLE.is_file():
        return SAMPLE
    img = Image.new("RGB", (512, 512), (236, 237, 240))
    ImageDraw.Draw(img).ellipse((136, 136, 376, 376), fill=(200, 64, 40))
    path = tmp / "disc.png"
    img.save(path)
    return path


def _non_background_fraction(png: bytes) -> float:
    """Share of pixels that differ clearly from the viewer's background colour."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int32)
    return float((np.abs(rgb - VIEWER_BG).sum(axis=-1) > 40).mean())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real app (SQLite + local storage + inline worker) on a free loopback port."""
    import uvicorn

    from glimpse3d.api.app import create_app
    from glimpse3d.config import Settings

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium)")
    data = tmp_path_factory.mktemp("web-data")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data,
        # the fast preset (40 training steps, 1 refinement iteration, ply + splat exports)
        # with larger views and model for the page's pictures
        **{**FAST, "view_size": 128, "max_gaussians": 2000},
        mesh_faces=5000,  # the .glb downloads: a smaller mesh and texture bake in half the time
        mesh_texture_size=256,
        rate_limit="1000/minute",
        max_active_jobs_per_client=10,
        max_upload_bytes=MAX_UPLOAD,  # small, so the too-large check needs no 10 MB transfer
    )
    app = create_app(settings)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "app": app, "data": data}
    finally:
        srv.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless chromium with a fresh user data dir."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


class Console:
    """Console errors and uncaught page errors of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def unexpected(self, allowed: tuple[str, ...] = ()) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in allowed)]


@pytest.fixture
def page(browser_context: Any) -> Iterator[tuple[Any, Console]]:
    pg = browser_context.new_page()
    pg.set_default_timeout(20_000)
    console = Console(pg)
    try:
        yield pg, console
    finally:
        pg.close()


@pytest.fixture
def refinement_gate(server: dict[str, Any]) -> Iterator[threading.Event]:
    """Hold the server's jobs at their first refinement progress event until the returned
    event is set, so what the page must show while a job runs does not depend on how fast the
    machine trains (the inline queue hands ``on_progress`` to each job's runner)."""
    queue = server["app"].state.ctx.queue
    publish = queue.on_progress
    gate = threading.Event()

    def on_progress(event: Any) -> None:
        if event.status == "refining":
            gate.wait(PIPELINE_TIMEOUT_MS / 1000)
        if publish is not None:
            publish(event)

    queue.on_progress = on_progress
    try:
        yield gate
    finally:
        gate.set()
        queue.on_progress = publish


def wait_js(pg: Any, predicate: str, timeout: float = 20_000) -> Any:
    """Poll a JS predicate (``() => ...``) until it is truthy; ``timeout`` in ms. Playwright's
    ``wait_for_function`` compiles its string in the page, which the workspace's CSP (no
    ``'unsafe-eval'``) forbids; ``evaluate`` goes through the debugger protocol instead."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = pg.evaluate(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout / 1000:.0f} s waiting for {predicate!r}")
        time.sleep(0.1)


def _wait_viewer(pg: Any, version: int, renderer: str | None = None) -> None:
    sel = f'#viewer[data-state="ready"][data-version="{version}"]'
    if renderer:
        sel += f'[data-renderer="{renderer}"]'
    pg.wait_for_selector(sel, timeout=60_000)
    pg.wait_for_timeout(600)  # a few frames after the load (Spark sorts in a worker)


def test_upload_generate_refine_view_and_download(
    server: dict[str, Any], page: tuple[Any, Console], tmp_path: Path,
    refinement_gate: threading.Event,
) -> None:
    import trimesh

    pg, console = page
    photo = _sample_photo(tmp_path)
    pg.goto(server["url"] + "/")
    pg.wait_for_selector("#upload-form")
    assert pg.locator("#project-list").get_attribute("aria-live") == "polite"

    pg.set_input_files("#file-input", str(photo))
    # the preview appears once the browser has decoded the picked file
    pg.wait_for_selector("#upload-preview", state="visible", timeout=10_000)
    pg.fill("#project-name", "Browser test")
    pg.click("#upload-btn")
    pg.wait_for_selector("#upload-result:not([hidden])")
    assert "Browser test" in pg.inner_text("#upload-result")
    # the new project is listed with its status, progress bar and thumbnail
    card = pg.locator("#project-list li.project-card", has_text="Browser test")
    card.wait_for()
    assert card.locator('[role="progressbar"]').count() == 1
    card.locator("img.thumb").wait_for()
    pg.screenshot(path=str(ARTIFACTS / "projects.png"), full_page=True)

    # The first event stream is made to fail: the page must fall back to polling; the stream it
    # tries again while the job runs (every 3 polls) goes through.
    events_calls: list[str] = []

    def events_route(route: Any) -> None:
        events_calls.append(route.request.url)
        if len(events_calls) == 1:
            route.abort()
        else:
            route.continue_()

    pg.route("**/api/v1/projects/*/events", events_route)
    pg.select_option("#upload-iterations", "1")
    pg.click("#generate-uploaded")
    pg.wait_for_url("**/projects/*")
    pid = pg.url.rstrip("/").split("/")[-1]
    pg.evaluate("""() => {
        window.__modes = [];
        const el = document.querySelector('#live-mode');
        const note = () => window.__modes.push(el.dataset.mode);
        if (el.dataset.mode) note();
        new MutationObserver(note).observe(el, {attributes: true, attributeFilter: ['data-mode']});
    }""")
    # while the job runs: live updates by polling (the stream failed) and a Cancel button
    wait_js(pg, "() => window.__modes.includes('polling')")
    pg.locator("#cancel-btn").wait_for(state="visible")
    assert pg.locator("#refine-btn").is_disabled()
    # the job waits at its refinement until the page has the stream again (~6 s of polling)
    wait_js(pg, "() => window.__modes.includes('stream')", timeout=PIPELINE_TIMEOUT_MS)
    refinement_gate.set()

    # auto-refine after generation: wait for v1 and the end of the job
    try:
        wait_js(
            pg,
            """() => {
                const badge = document.querySelector('#status-badge .badge');
                return badge && (badge.classList.contains('status-failed') || (
                    badge.classList.contains('status-completed')
                    && document.querySelectorAll('#iterations-body tr').length === 1
                    && document.querySelector('#cancel-btn').hidden));
            }""",
            timeout=PIPELINE_TIMEOUT_MS,
        )
    except Exception:
        pg.screenshot(path=str(ARTIFACTS / "project-timeout.png"), full_page=True)
        status = pg.evaluate(f"fetch('/api/v1/status/{pid}').then(r => r.json())")
        pytest.fail(f"the project did not complete in time: {status['project']}, "
                    f"{len(status['views'])} views, {len(status['models'])} models")
    failure = pg.locator("#failure")
    assert failure.is_hidden(), pg.inner_text("#failure")
    assert pg.locator("#progress").get_attribute("aria-valuenow") == "100"
    assert pg.locator("#views-grid img").count() == 16
    assert pg.locator("#depth-grid img").count() == 16
    alts = pg.locator("#views-grid img").evaluate_all("imgs => imgs.map(i => i.alt)")
    assert all(a.startswith("View ") and "azimuth" in a for a in alts)
    # every image actually decoded
    assert pg.locator("#views-grid img, #depth-grid img").evaluate_all(
        "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"
    )
    row = pg.locator("#iterations-body tr").first
    cells = row.locator("td").all_inner_texts()
    assert float(cells[0]) > 0  # overall quality
    assert pg.locator("#quality-chart svg circle.chart-dot").count() == 1
    versions = pg.locator("#version-select option").evaluate_all("o => o.map(x => x.value)")
    assert versions == ["0", "1"]
    modes = pg.evaluate("window.__modes")
    assert "polling" in modes and "stream" in modes and modes[-1] == "idle", modes
    assert len(events_calls) >= 2

    # the Spark viewer draws the latest version
    _wait_viewer(pg, 1, "spark")
    shot_v1 = pg.locator("#viewer-canvas").screenshot()
    (ARTIFACTS / "viewer-v1.png").write_bytes(shot_v1)
    assert _non_background_fraction(shot_v1) > 0.02
    info = pg.inner_text("#viewer-info")
    assert "Spark" in info and "gaussians" in info

    # switch to v0
    pg.select_option("#version-select", "0")
    _wait_viewer(pg, 0, "spark")
    shot_v0 = pg.locator("#viewer-canvas").screenshot()
    (ARTIFACTS / "viewer-v0.png").write_bytes(shot_v0)
    assert _non_background_fraction(shot_v0) > 0.02
    assert "v0" in pg.locator("#download-glb").get_attribute("download")
    pg.screenshot(path=str(ARTIFACTS / "project.png"), full_page=True)

    # download the .glb of v0 and load it
    with pg.expect_download(timeout=60_000) as dl_info:
        pg.click("#download-glb")
    download = dl_info.value
    assert download.suggested_filename.endswith("-v0.glb")
    glb = tmp_path / "model.glb"
    download.save_as(glb)
    mesh = trimesh.load(glb, file_type="glb", force="mesh")
    assert len(mesh.vertices) > 100 and len(mesh.faces) > 100
    assert np.all(np.abs(mesh.bounds) <= 2.0 + 1e-6)  # fit radius 1 unit, resting on y = 0
    assert pg.locator("#download-error").is_hidden()

    assert console.unexpected(allowed=("net::ERR_FAILED",)) == [], console.errors
    # the list page shows the finished project
    pg.click("text=← All projects")
    pg.locator(f'li.project-card[data-project-id="{pid}"][data-status="completed"]').wait_for()


def _seed_completed_project(ctx: Any, photo: Path, name: str) -> str:
    """A project through the real ingest, with two real .ply model versions in the real
    repository and storage: v0 a red ball, v1 a blue ball (so a version switch shows)."""
    from glimpse3d.splat.formats import save_ply
    from glimpse3d.splat.gaussians import GaussianModel
    from glimpse3d.storage.base import MODELS, keys

    project = ctx.runner().ingest(photo.read_bytes(), photo.name, name=name)
    pid = str(project["id"])
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(3000, 3))
    pts = 0.3 * pts / np.linalg.norm(pts, axis=1, keepdims=True)
    for version, rgb in ((0, (0.85, 0.2, 0.15)), (1, (0.15, 0.3, 0.9))):
        model = GaussianModel.from_points(pts, np.tile(rgb, (len(pts), 1)), scale=0.03, opacity=0.9)
        path = Path(ctx.settings.data_dir) / f"seed_v{version}.ply"
        save_ply(model, path)
        data = path.read_bytes()
        key = keys.model(pid, version)
        ctx.storage.put_bytes(MODELS, key, data)
        ctx.repo.upsert_model(pid, version, version - 1 if version else None, key, len(pts), len(data), "test")
    ctx.repo.upsert_iteration(pid, 1, 0, 1, 24.5, 0.91, None, 0.8, 0.7, 0.82, True, 1.5)
    ctx.repo.update_project(pid, status="completed", current_step="done", progress_percentage=100)
    return pid


def _mean_rgb(png: bytes) -> np.ndarray:
    """Mean colour of the non-background pixels."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.float64)
    mask = np.abs(rgb - VIEWER_BG).sum(axis=-1) > 40
    return rgb[mask].mean(axis=0)


def test_viewer_versions_fallback_and_download(
    server: dict[str, Any], page: tuple[Any, Console], tmp_path: Path
) -> None:
    """Spark draws the stored .ply, the version picker switches models, the keyboard orbits,
    the point-cloud fallback draws, and the .glb download is a real mesh."""
    import trimesh

    pg, console = page
    ctx = server["app"].state.ctx
    pid = _seed_completed_project(ctx, _sample_photo(tmp_path), "Seeded model")
    pg.goto(f"{server['url']}/projects/{pid}")
    _wait_viewer(pg, 1, "spark")
    assert pg.locator("#version-select option").evaluate_all("o => o.map(x => x.value)") == ["0", "1"]
    shot_v1 = pg.locator("#viewer-canvas").screenshot()
    (ARTIFACTS / "seeded-v1.png").write_bytes(shot_v1)
    assert _non_background_fraction(shot_v1) > 0.05
    r, _, b = _mean_rgb(shot_v1)
    assert b > r + 60, (r, b)  # v1 is blue

    pg.select_option("#version-select", "0")
    _wait_viewer(pg, 0, "spark")
    shot_v0 = pg.locator("#viewer-canvas").screenshot()
    (ARTIFACTS / "seeded-v0.png").write_bytes(shot_v0)
    r, _, b = _mean_rgb(shot_v0)
    assert r > b + 60, (r, b)  # v0 is red

    # zoom in with the keyboard: the ball covers more of the canvas
    before = _non_background_fraction(shot_v0)
    pg.focus("#viewer-canvas")
    for _ in range(3):
        pg.keyboard.press("+")
    pg.wait_for_timeout(800)
    assert _non_background_fraction(pg.locator("#viewer-canvas").screenshot()) > before * 1.3
    pg.click("#reset-view")

    with pg.expect_download(timeout=60_000) as dl_info:
        pg.click("#download-glb")
    download = dl_info.value
    assert download.suggested_filename == "Seeded_model-v0.glb"
    glb = tmp_path / "seeded.glb"
    download.save_as(glb)
    mesh = trimesh.load(glb, file_type="glb", force="mesh")
    assert len(mesh.faces) > 100 and mesh.visual.kind == "texture"
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert np.all(extent > 1.9) and np.all(extent < 2.01), extent  # a ball, fit radius 1 unit
    assert pg.locator("#download-obj").get_attribute("download") == "Seeded_model-v0.obj.zip"
    assert pg.locator("#download-usdz").is_visible()

    # the mesh preview shows the .glb's textured mesh where the splats were, then the splats again
    pg.click("#mesh-toggle")
    pg.locator('#viewer[data-mesh="shown"]').wait_for(timeout=60_000)
    pg.wait_for_timeout(400)
    assert pg.locator("#mesh-toggle").get_attribute("aria-pressed") == "true"
    assert "faces" in pg.inner_text("#viewer-info")
    shot_mesh = pg.locator("#viewer-canvas").screenshot()
    (ARTIFACTS / "seeded-v0-mesh.png").write_bytes(shot_mesh)
    # same place and size as the splats, same colour
    assert abs(_non_background_fraction(shot_mesh) - _non_background_fraction(shot_v0)) < 0.3 * _non_background_fraction(shot_v0)
    r, _, b = _mean_rgb(shot_mesh)
    assert r > b + 60, (r, b)
    pg.click("#mesh-toggle")
    pg.locator("#viewer:not([data-mesh])").wait_for()
    assert pg.locator("#mesh-toggle").get_attribute("aria-pressed") == "false"

    assert console.unexpected() == [], console.errors

    # when Spark cannot load, the three.js point-cloud fallback draws the same model
    pg.route("**/vendor/spark/*", lambda route: route.abort())
    pg.goto(f"{server['url']}/projects/{pid}")
    _wait_viewer(pg, 1, "points")
    shot_pts = pg.locator("#viewer-canvas").screenshot()
    (ARTIFACTS / "seeded-points.png").write_bytes(shot_pts)
    assert _non_background_fraction(shot_pts) > 0.03
    r, _, b = _mean_rgb(shot_pts)
    assert b > r + 60, (r, b)  # v1 is blue
    assert "points" in pg.inner_text("#viewer-info")
    assert pg.locator("#iterations-body tr").count() == 1
    assert console.unexpected(allowed=("net::ERR_FAILED",)) == [], console.errors
    pg.unroute("**/vendor/spark/*")


def test_rejected_uploads_show_the_reason(server: dict[str, Any], page: tuple[Any, Console]) -> None:
    pg, console = page
    pg.goto(server["url"] + "/")
    pg.wait_for_selector("#upload-form")
    requests: list[str] = []
    pg.on("request", lambda r: requests.append(r.url) if "/upload" in r.url else None)

    # client-side: a text file is refused before sending
    pg.set_input_files(
        "#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    error = pg.locator("#upload-error")
    error.wait_for()
    assert "not an image" in error.inner_text()
    pg.click("#upload-btn")
    assert "not an image" in error.inner_text()

    # client-side: larger than the server's limit (put in the page by mount_web)
    big = b"\x89PNG\r\n\x1a\n" + bytes(MAX_UPLOAD)
    pg.set_input_files("#file-input", files=[{"name": "huge.png", "mimeType": "image/png", "buffer": big}])
    assert "the limit is 1 MB" in error.inner_text()
    assert "up to 1 MB" in pg.inner_text("#drop-help")
    assert requests == []

    # server-side: text disguised as a PNG -> 415 with the server's detail
    pg.set_input_files(
        "#file-input", files=[{"name": "fake.png", "mimeType": "image/png", "buffer": b"not a photo at all"}]
    )
    assert error.is_hidden()
    pg.click("#upload-btn")
    wait_js(pg, "() => document.querySelector('#upload-error').textContent.includes('rejected')")
    text = error.inner_text()
    assert "not an image" in text.lower() and "PNG" in text, text
    assert error.get_attribute("role") == "alert"
    assert len(requests) == 1
    pg.screenshot(path=str(ARTIFACTS / "upload-rejected.png"), full_page=True)
    assert console.unexpected(allowed=("status of 415",)) == [], console.errors


def test_failed_project_shows_error_and_retry(server: dict[str, Any], page: tuple[Any, Console], tmp_path: Path) -> None:
    """A project whose run failed: the error message is shown with a Retry button."""
    import httpx

    pg, console = page
    photo = _sample_photo(tmp_path)
    with photo.open("rb") as fh:
        r = httpx.post(server["url"] + "/api/v1/upload", files={"file": ("p.png", fh, "image/png")},
                       data={"name": "Broken run"}, timeout=60)
    assert r.status_code == 201, r.text
    pid = r.json()["project_id"]
    repo = server["app"].state.ctx.repo
    repo.update_project(pid, status="failed", current_step="multiview",
                        error_message="multiview: out of memory (test)")

    pg.goto(f"{server['url']}/projects/{pid}")
    failure = pg.locator("#failure")
    failure.wait_for()
    assert "out of memory (test)" in pg.inner_text("#failure-message")
    assert failure.get_attribute("role") == "alert"
    assert pg.locator("#retry-btn").is_visible()
    assert pg.locator("#status-badge .badge.status-failed").count() == 1
    assert pg.locator("#viewer").get_attribute("data-state") == "empty"
    pg.screenshot(path=str(ARTIFACTS / "project-failed.png"), full_page=True)

    # keyboard: the Retry button is reachable and the project is deleted from the list later
    pg.locator("#retry-btn").focus()
    assert pg.evaluate("document.activeElement.id") == "retry-btn"
    assert console.unexpected() == [], console.errors
    r = httpx.delete(f"{server['url']}/api/v1/projects/{pid}", timeout=30)
    assert r.status_code == 204
    pg.goto(f"{server['url']}/projects/{pid}")
    pg.wait_for_selector("text=Project not found")
