"""API test helpers: a sample photo, waiting for a job through the API, a live uvicorn server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glimpse3d.domain import TERMINAL_STATUSES as TERMINAL
from glimpse3d.splat.formats import model_to_bytes
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.storage.base import MODELS, PROCESSED, UPLOADS, keys
from tests.utils.common import disc_photo, free_port, wait_for


def sample_photo() -> bytes:
    """A sample from ``glimpse3d/samples`` when present, else :func:`disc_photo`."""
    samples = sorted((Path(__file__).resolve().parents[2] / "glimpse3d" / "samples").glob("*.png"))
    return samples[0].read_bytes() if samples else disc_photo()


def wait_done(get_status: Callable[[], dict], timeout: float = 120.0) -> dict:
    """Poll a status callable until the project is terminal with no job; returns the status."""
    def done() -> dict | None:
        st = get_status()
        p = st["project"]
        return st if p["status"] in TERMINAL and not p["job_active"] else None

    return wait_for(done, timeout, what="the job to finish")


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on a free loopback port (thread); yields the
    base URL; stops the server (lifespan shutdown included) on exit."""
    from glimpse3d.api.server import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app=app, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start", interval=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"


def seed_project(ctx: Any, name: str = "seeded", model: bool = False, status: str = "preprocessing",
                 client_id: str | None = "testclient") -> str:
    """A project as ingest leaves it (original + processed image), optionally with model v0."""
    p = ctx.repo.create_project(name, client_id=client_id)
    pid = p["id"]
    png = disc_photo(64)
    ctx.storage.put_bytes(UPLOADS, keys.original(pid, "png"), png, "image/png")
    ctx.storage.put_bytes(PROCESSED, keys.processed(pid), png, "image/png")
    ctx.repo.update_project(pid, original_image_key=keys.original(pid, "png"),
                            processed_image_key=keys.processed(pid), status=status,
                            progress_percentage=10.0)
    if model:
        g = GaussianModel.random(300, seed=1)
        size = ctx.storage.put_bytes(MODELS, keys.model(pid, 0), model_to_bytes(g, "ply"))
        ctx.repo.upsert_model(pid, 0, None, keys.model(pid, 0), g.num_gaussians, size, "test")
        ctx.repo.update_project(pid, status="completed", progress_percentage=100.0)
    return pid
