"""SyncDreamer (liuyuan-pal/SyncDreamer) run in its own environment as a subprocess.

SyncDreamer pins pytorch_lightning 1.x and OpenAI CLIP, which cannot be installed beside
this project's torch, so it is not imported: it runs from its own checkout with its own
Python (a venv or conda env made from its ``requirements.txt``), through the repository's
``generate.py`` exactly as its README shows::

    <syncdreamer_python> generate.py --ckpt <checkpoint> --input <in.png> --output <dir>
        --sample_num 1 --cfg_scale 2.0 --elevation <input_elevation> --crop_size 200
        --seed <seed>

(cwd = the checkout). ``generate.py`` writes ``<dir>/0.png``: the 16 views side by side,
256 px each, view ``k`` at elevation 30 degrees and azimuth ``22.5 k`` relative to the
input (the SyncDreamer cameras of docs/architecture.md "Cameras": distance 1.5, focal 280 px
at 256).
``--elevation`` is the input photo's elevation (setting ``input_elevation``): SyncDreamer
needs it to place the input; its outputs stay at elevation 30. When the input elevation
is 30, view 0 is the input photo itself; otherwise it is SyncDreamer's view 0.

Settings: ``syncdreamer_dir`` (the checkout), ``syncdreamer_python`` (default ``python``
on ``PATH``), ``syncdreamer_checkpoint`` (default ``<dir>/ckpt/syncdreamer-pretrain.ckpt``),
``input_elevation``, ``syncdreamer_timeout_seconds``. Nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glimpse3d.errors import UserError
from glimpse3d.learned.common import MissingWeightsError, check_image, extra_setting, resize
from glimpse3d.learned.multiview import alpha_from_white, camera_angles, input_view
from glimpse3d.pipeline.ports import BackendUnavailable
from glimpse3d.splat.cameras import (
    AZIMUTH_STEP_DEG,
    ELEVATION_DEG,
    NUM_VIEWS,
    Camera,
    syncdreamer_cameras,
)

if TYPE_CHECKING:
    from glimpse3d.config import Settings

SYNCDREAMER_SIZE = 256  # px per view, input and output
CHECKPOINT = Path("ckpt") / "syncdreamer-pretrain.ckpt"
CFG_SCALE = 2.0
CROP_SIZE = 200  # README: the object is resized to ~200 px inside the 256 px input
INSTALL = (
    "git clone https://github.com/liuyuan-pal/SyncDreamer; make its own environment "
    "(python -m venv sd-env && sd-env/bin/pip install -r SyncDreamer/requirements.txt); put "
    "syncdreamer-pretrain.ckpt and ViT-L-14.pt in SyncDreamer/ckpt/; then set "
    "GLIMPSE3D_SYNCDREAMER_DIR and GLIMPSE3D_SYNCDREAMER_PYTHON (see docs/models.md)"
)


@dataclass(frozen=True)
class SyncDreamerInstall:
    """Where SyncDreamer lives: checkout, its Python, its checkpoint."""

    checkout: Path
    python: str
    checkpoint: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncDreamerInstall:
        directory = extra_setting(settings, "syncdreamer_dir", "") or ""
        if not directory:
            raise MissingWeightsError(f"GLIMPSE3D_SYNCDREAMER_DIR is not set. {INSTALL}")
        checkout = Path(directory).expanduser()
        if not (checkout / "generate.py").is_file():
            raise MissingWeightsError(
                f"GLIMPSE3D_SYNCDREAMER_DIR={directory} is not a SyncDreamer checkout (no "
                f"generate.py). {INSTALL}"
            )
        ckpt = extra_setting(settings, "syncdreamer_checkpoint", "") or str(checkout / CHECKPOINT)
        checkpoint = Path(ckpt).expanduser()
        if not checkpoint.is_file():
            raise MissingWeightsError(
                f"SyncDreamer checkpoint {checkpoint} not found: download syncdreamer-pretrain.ckpt "
                "(see the SyncDreamer README) on a machine with internet, copy it there or set "
                "GLIMPSE3D_SYNCDREAMER_CHECKPOINT"
            )
        python = str(extra_setting(settings, "syncdreamer_python", "") or "python")
        if shutil.which(python) is None:
            raise BackendUnavailable(
                f"GLIMPSE3D_SYNCDREAMER_PYTHON={python} is not an executable. {INSTALL}"
            )
        return cls(checkout.resolve(), python, checkpoint.resolve())


class SyncDreamerMultiview:
    """Multiview backend ``syncdreamer``: the 16 SyncDreamer views from a subprocess."""

    name = "syncdreamer"

    def __init__(self, install: SyncDreamerInstall, input_elevation: float = ELEVATION_DEG,
                 timeout_s: float = 1800.0) -> None:
        self.install = install
        self.input_elevation = float(input_elevation)
        self.timeout_s = float(timeout_s)

    @classmethod
    def fixed_cameras(cls, settings: Settings, size: int) -> list[Camera]:
        return syncdreamer_cameras(size)

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncDreamerMultiview:
        return cls(SyncDreamerInstall.from_settings(settings),
                   float(extra_setting(settings, "input_elevation", ELEVATION_DEG)),
                   float(extra_setting(settings, "syncdreamer_timeout_seconds", 1800.0)))

    def command(self, input_png: Path, output_dir: Path, seed: int) -> list[str]:
        """The ``generate.py`` command line for one run."""
        return [
            self.install.python, "generate.py",
            "--ckpt", str(self.install.checkpoint),
            "--input", str(input_png),
            "--output", str(output_dir),
            "--sample_num", "1",
            "--cfg_scale", f"{CFG_SCALE:g}",
            "--elevation", f"{self.input_elevation:g}",
            "--crop_size", str(CROP_SIZE),
            "--seed", str(int(seed)),
        ]

    def run(self, rgba: np.ndarray, seed: int = 0) -> list[np.ndarray]:
        """16 RGB views (256,256,3) float32 in [0,1] for an RGBA input (256,256,4)."""
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="glimpse3d-syncdreamer-") as tmp:
            src, out = Path(tmp) / "input.png", Path(tmp) / "out"
            Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA").save(src)
            try:
                proc = subprocess.run(
                    self.command(src, out, seed), cwd=self.install.checkout, capture_output=True,
                    text=True, timeout=self.timeout_s, check=False,
                )
            except subprocess.TimeoutExpired:
                raise BackendUnavailable(
                    f"SyncDreamer did not finish within {self.timeout_s:g} s "
                    "(GLIMPSE3D_SYNCDREAMER_TIMEOUT_SECONDS)"
                ) from None
            if proc.returncode != 0:
                lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
                last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
                raise BackendUnavailable(f"SyncDreamer's generate.py failed: {last}")
            strip_png = out / "0.png"
            if not strip_png.is_file():
                raise BackendUnavailable(f"SyncDreamer's generate.py wrote no {strip_png.name}")
            strip = np.asarray(Image.open(strip_png).convert("RGB"), dtype=np.float32) / 255.0
        return split_strip(strip)

    def generate(self, processed: np.ndarray, cameras: list[Camera], seed: int = 0) -> list[np.ndarray]:
        """processed RGBA (S,S,4) -> one RGBA view per camera; each camera must be one of
        the 16 SyncDreamer cameras (relative to ``cameras[0]``'s azimuth)."""
        if not cameras:
            return []
        img = check_image(processed, (3, 4), "processed image")
        if img.shape[2] == 3:
            img = np.concatenate([img, np.ones((*img.shape[:2], 1), np.float32)], -1)
        indices = [syncdreamer_index(cameras[0], cam) for cam in cameras]
        views = self.run(resize(img, SYNCDREAMER_SIZE, SYNCDREAMER_SIZE), seed)
        input_is_view0 = abs(self.input_elevation - ELEVATION_DEG) < 1e-6
        out = []
        for cam, k in zip(cameras, indices, strict=True):
            if k == 0 and input_is_view0:
                out.append(input_view(img, cam))
                continue
            rgba = np.concatenate([views[k], alpha_from_white(views[k])[..., None]], -1)
            out.append(np.clip(resize(rgba, cam.width, cam.height), 0.0, 1.0))
        return out


def split_strip(strip: np.ndarray) -> list[np.ndarray]:
    """generate.py's (H, 16*H, 3) strip -> 16 square views."""
    h, w = strip.shape[:2]
    if w != NUM_VIEWS * h:
        raise BackendUnavailable(
            f"SyncDreamer output is {w}x{h}, expected {NUM_VIEWS} square views side by side"
        )
    return [strip[:, k * h:(k + 1) * h] for k in range(NUM_VIEWS)]


def syncdreamer_index(reference: Camera, camera: Camera, tol_deg: float = 1.0) -> int:
    """Index k of the SyncDreamer view seen by ``camera`` (azimuth 22.5·k relative to the
    reference, elevation 30°); a :class:`UserError` for any other camera."""
    _, a0, _ = camera_angles(reference)
    e, a, _ = camera_angles(camera)
    rel = (a - a0) % 360.0
    k = int(round(rel / AZIMUTH_STEP_DEG)) % NUM_VIEWS
    off = abs(((rel - k * AZIMUTH_STEP_DEG) + 180.0) % 360.0 - 180.0)
    if off > tol_deg or abs(e - ELEVATION_DEG) > tol_deg:
        raise UserError(
            f"SyncDreamer only produces its 16 fixed views (elevation {ELEVATION_DEG}°, azimuth "
            f"22.5°·k); camera at elevation {e:.1f}°, azimuth {a:.1f}° is not one of them"
        )
    return k
