"""Helpers shared by the API and job tests: small settings, a test photo, a live server."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from glimpse3d.domain import TERMINAL_STATUSES as TERMINAL
from tests.utils.settings import FAST  # noqa: F401 - the one fast preset, re-exported


def disc_photo(size: int = 512, fmt: str = "PNG", exif_orientation: int | None = None,
               ellipse: tuple[float, float] = (0.3, 0.3)) -> bytes:
    """A photo of a two-coloured disc (or ellipse: radii as fractions of ``size`` along x, y)
    on a light grey background."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    rx, ry = ellipse[0] * size, ellipse[1] * size
    inside = ((xx - size / 2) / rx) ** 2 + ((yy - size / 2) / ry) ** 2 < 1.0
    img = np.full((size, size, 3), 232, np.uint8)
    img[inside] = (205, 60, 40)
    img[inside & (xx > size / 2)] = (50, 90, 200)
    img += (np.random.default_rng(0).integers(0, 6, img.shape)).astype(np.uint8)
    pil = Image.fromarray(img)
    buf = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        pil.save(buf, fmt, exif=exif.tobytes())
    else:
        pil.save(buf, fmt)
    return buf.getvalue()


def sample_photo() -> bytes:
    """A sample from ``glimpse3d/samples`` when present, else :func:`disc_photo`."""
    samples = sorted((Path(__file__).resolve().parents[2] / "glimpse3d" / "samples").glob("*.png"))
    return samples[0].read_bytes() if samples else disc_photo()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


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
    wait_for(lambda: server.started, 30, 0.05, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"
