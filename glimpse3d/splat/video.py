"""Turntable video of a Gaussian-splat model (H.264 ``.mp4`` via imageio + imageio-ffmpeg).

The camera orbits the origin at a fixed elevation (degrees) and distance (scene units),
azimuth going 0 -> 360 degrees (exclusive, so the loop is seamless) counter-clockwise seen
from above (docs/architecture.md, "Cameras"). Frames are composited over ``background`` (RGB in [0,1]).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from glimpse3d.errors import UserError
from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.splat.device import splat_device
from glimpse3d.splat.gaussians import GaussianModel

MAX_FRAMES = 1440
MAX_SIZE = 2048


class VideoError(UserError):
    """Bad turntable parameters."""

    http_status = 422


def turntable_frames(
    model: GaussianModel,
    frames: int = 48,
    size: int = 256,
    elevation: float = 20.0,
    distance: float = 1.5,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    device: str = "auto",
) -> Iterator[np.ndarray]:
    """Yield ``frames`` uint8 RGB images (size, size, 3) of the model orbiting at ``elevation``,
    rendered on :func:`~glimpse3d.splat.device.splat_device` of ``device`` (gsplat on CUDA)."""
    from glimpse3d.splat.rasterizer import render

    model = model.detach().to(splat_device(device))
    bg = torch.as_tensor(background, dtype=model.means.dtype, device=model.device)
    if bg.shape != (3,) or not bool(((bg >= 0) & (bg <= 1)).all()):
        raise VideoError(f"background must be three numbers in [0,1], got {background!r}")
    for k in range(frames):
        camera = orbit_camera(elevation, 360.0 * k / frames, distance, size)
        with torch.no_grad():
            out = render(model, camera, background=bg)
        rgb = out.rgb.detach().clamp(0.0, 1.0).cpu().numpy()
        yield (rgb * 255.0 + 0.5).astype(np.uint8)


def render_turntable(
    model: GaussianModel,
    path: str | os.PathLike[str],
    frames: int = 48,
    size: int = 256,
    elevation: float = 20.0,
    distance: float = 1.5,
    fps: int = 24,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    device: str = "auto",
) -> int:
    """Write an H.264 (yuv420p) turntable ``.mp4`` to ``path``; returns bytes written.

    ``size`` must be even (H.264 4:2:0 needs even dimensions); angles in degrees.
    """
    import imageio.v2 as imageio

    if not 1 <= int(frames) <= MAX_FRAMES:
        raise VideoError(f"frames must be between 1 and {MAX_FRAMES}, got {frames}")
    if not 16 <= int(size) <= MAX_SIZE or int(size) % 2:
        raise VideoError(f"video size must be an even number between 16 and {MAX_SIZE}, got {size}")
    if not 1 <= int(fps) <= 120:
        raise VideoError(f"fps must be between 1 and 120, got {fps}")
    if not distance > 0:
        raise VideoError(f"camera distance must be positive, got {distance}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part.mp4")
    try:
        with imageio.get_writer(
            tmp,
            format="FFMPEG",  # type: ignore[arg-type]
            fps=int(fps),
            codec="libx264",
            pixelformat="yuv420p",
            quality=8,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart"],
        ) as writer:
            for frame in turntable_frames(model, int(frames), int(size), elevation, distance,
                                          background, device):
                writer.append_data(frame)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size
