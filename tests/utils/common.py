"""Small helpers every test area uses: a test photo, a free port, polling with a deadline."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image


def disc_photo(size: int = 512, fmt: str = "PNG", exif_orientation: int | None = None,
               ellipse: tuple[float, float] = (0.3, 0.3), seed: int = 0) -> bytes:
    """A photo of a two-coloured disc (or ellipse: radii as fractions of ``size`` along x, y)
    on a light grey background with a little noise (``seed``), encoded as ``fmt``."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    rx, ry = ellipse[0] * size, ellipse[1] * size
    inside = ((xx - size / 2) / rx) ** 2 + ((yy - size / 2) / ry) ** 2 < 1.0
    img = np.full((size, size, 3), 232, np.uint8)
    img[inside] = (205, 60, 40)
    img[inside & (xx > size / 2)] = (50, 90, 200)
    img += np.random.default_rng(seed).integers(0, 6, img.shape).astype(np.uint8)
    pil = Image.fromarray(img)
    buf = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        pil.save(buf, fmt, exif=exif.tobytes())
    else:
        pil.save(buf, fmt)
    return buf.getvalue()


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition", *,
             interval: float = 0.2) -> Any:
    """Poll ``predicate`` every ``interval`` seconds until it returns a truthy value (returned);
    fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
