"""Zero123++ v1.2 (``sudo-ai/zero123plus-v1.2``): six consistent views in one diffusion run.

The checkpoint is loaded as its model card says: ``DiffusionPipeline.from_pretrained(
weights, custom_pipeline=<sudo-ai/zero123plus-pipeline>)`` (remote code, so
``GLIMPSE3D_TRUST_REMOTE_CODE=1`` is required), then the scheduler is replaced by
``EulerAncestralDiscreteScheduler`` with ``timestep_spacing="trailing"``. The pipeline is
called with the input as a PIL RGBA image (``pipe(image, num_inference_steps=...)``) and
returns one 640x960 image: a grid of 3 rows x 2 columns of 320 px tiles, read row by row.

Cameras (:func:`zero123plus_cameras`): tile ``k`` (0..5) is at azimuth ``30 + 60 k``
degrees relative to the input and elevation ``input_elevation + (20, -10)[k % 2]``, with a
30 degree field of view. Our view 0 is the input itself (SyncDreamer intrinsics at
elevation ``input_elevation``, azimuth 0); views 1..6 are the tiles. The orbit distance of
the tiles is :func:`~glimpse3d.splat.cameras.matching_distance` of 30 degrees (2.56), at
which the object appears as large as in the input view; the pipeline's background is
estimated from each tile's border and turned into alpha.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glimpse3d.errors import UserError
from glimpse3d.learned.common import (
    Placement,
    cached,
    check_image,
    diffusers_kwargs,
    ensure_resident,
    extra_setting,
    load_failure,
    pipeline_modules,
    place_pipeline,
    require,
    resize,
    resolve_weights,
    seeded_generator,
    weight_variant,
)
from glimpse3d.learned.multiview import alpha_from_background, input_view
from glimpse3d.learned.segmentation import trust_remote_code
from glimpse3d.pipeline.ports import BackendUnavailable
from glimpse3d.splat.cameras import (
    BASE_SIZE,
    DISTANCE,
    Camera,
    fov_camera,
    matching_distance,
    orbit_camera,
)

if TYPE_CHECKING:
    from glimpse3d.config import Settings

EXAMPLE_MODEL = "sudo-ai/zero123plus-v1.2"
EXAMPLE_PIPELINE = "sudo-ai/zero123plus-pipeline"
#: what the custom pipeline imports beyond the models extra
ZERO123PLUS_EXTRA = "glimpse3d[zero123plus]"

TILE = 320  # px per view in the output grid
GRID_ROWS, GRID_COLS = 3, 2
AZIMUTHS_DEG = (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)  # relative to the input
ELEVATION_OFFSETS_DEG = (20.0, -10.0, 20.0, -10.0, 20.0, -10.0)  # relative to the input
FOV_DEG = 30.0
DEFAULT_STEPS = 75  # the model card's example


def zero123plus_cameras(size: int = BASE_SIZE, input_elevation: float = 30.0) -> list[Camera]:
    """The 7 cameras of a Zero123++ v1.2 run: the input view, then the 6 tiles in order."""
    distance = matching_distance(FOV_DEG)
    cams = [orbit_camera(input_elevation, 0.0, DISTANCE, size)]
    for azimuth, offset in zip(AZIMUTHS_DEG, ELEVATION_OFFSETS_DEG, strict=True):
        cams.append(fov_camera(input_elevation + offset, azimuth, distance, FOV_DEG, size))
    return cams


def split_grid(grid: np.ndarray) -> list[np.ndarray]:
    """A (3*T, 2*T, C) grid image -> its 6 tiles, row by row."""
    h, w = grid.shape[:2]
    th, tw = h // GRID_ROWS, w // GRID_COLS
    return [grid[r * th:(r + 1) * th, c * tw:(c + 1) * tw]
            for r in range(GRID_ROWS) for c in range(GRID_COLS)]


def _same_camera(a: Camera, b: Camera, tol_deg: float = 0.5) -> bool:
    d_az = abs(((a.azimuth - b.azimuth) + 180.0) % 360.0 - 180.0)
    return (d_az <= tol_deg and abs(a.elevation - b.elevation) <= tol_deg
            and math.isclose(a.distance, b.distance, rel_tol=1e-3)
            and math.isclose(a.fx / a.width, b.fx / b.width, rel_tol=1e-3))


class Zero123PlusMultiview:
    """Multiview backend ``zero123plus``; its cameras are fixed (:meth:`fixed_cameras`).

    Settings: ``multiview_model`` (weights: hub id or local directory),
    ``multiview_pipeline`` (the custom pipeline: a directory holding ``pipeline.py`` or a
    hub id, default ``sudo-ai/zero123plus-pipeline``), ``trust_remote_code``,
    ``input_elevation`` (degrees), ``multiview_steps`` (default 75), ``device``.
    """

    name = "zero123plus"

    def __init__(self, pipe: Any, placement: Placement, managed_offload: bool = False,
                 steps: int = DEFAULT_STEPS, input_elevation: float = 30.0) -> None:
        self.pipe = pipe
        self.placement = placement
        self.managed_offload = managed_offload
        self.num_inference_steps = steps
        self.input_elevation = float(input_elevation)
        self._lock = threading.Lock()

    @classmethod
    def fixed_cameras(cls, settings: Settings, size: int) -> list[Camera]:
        return zero123plus_cameras(size, float(extra_setting(settings, "input_elevation", 30.0)))

    @classmethod
    def from_settings(cls, settings: Settings) -> Zero123PlusMultiview:
        ref = resolve_weights(settings.multiview_model, "multiview_model", EXAMPLE_MODEL,
                              ("model_index.json",))
        pipeline_ref = str(extra_setting(settings, "multiview_pipeline", "") or EXAMPLE_PIPELINE)
        if not trust_remote_code(settings):
            raise BackendUnavailable(
                f"Zero123++ runs its custom pipeline's code ({pipeline_ref}): set "
                "GLIMPSE3D_TRUST_REMOTE_CODE=1 to allow it"
            )
        placement = Placement.from_settings(settings.device)
        loaded = cached(cls, ref, placement.device, lambda: cls.load(ref, pipeline_ref, placement),
                        (pipeline_ref,))
        steps = int(extra_setting(settings, "multiview_steps", 0) or DEFAULT_STEPS)
        elevation = float(extra_setting(settings, "input_elevation", 30.0))
        return cls(loaded.pipe, placement, loaded.managed_offload, steps, elevation)

    @classmethod
    def load(cls, ref: str, pipeline_ref: str, placement: Placement) -> Zero123PlusMultiview:
        diffusers = require("diffusers", "the Zero123++ multiview backend")
        kwargs = diffusers_kwargs(placement)
        variant = weight_variant(ref, "unet", placement.dtype)
        if variant:
            kwargs["variant"] = variant
        try:
            pipe = diffusers.DiffusionPipeline.from_pretrained(
                ref, custom_pipeline=pipeline_ref, trust_remote_code=True, **kwargs
            )
        except ImportError as exc:
            from glimpse3d.learned.segmentation import _missing_packages

            raise BackendUnavailable(
                f"the Zero123++ pipeline {pipeline_ref!r} needs {_missing_packages(exc)} that "
                f"are not installed: pip install '{ZERO123PLUS_EXTRA}'"
            ) from None
        except (OSError, ValueError) as exc:
            raise load_failure("multiview_model", ref, EXAMPLE_MODEL, exc) from exc
        if type(pipe).__name__ != "Zero123PlusPipeline":
            raise BackendUnavailable(
                f"multiview_model {ref!r} with pipeline {pipeline_ref!r} loaded "
                f"{type(pipe).__name__}, not Zero123PlusPipeline"
            )
        pipe.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(
            pipe.scheduler.config, timestep_spacing="trailing"
        )
        managed = place_pipeline(pipe, placement)
        return cls(pipe, placement, managed)

    def modules(self) -> list[torch.nn.Module]:
        return pipeline_modules(self.pipe)

    def run(self, rgba: np.ndarray, seed: int = 0) -> np.ndarray:
        """The pipeline's 640x960 grid (H,W,3) float32 in [0,1] for an RGBA input (T,T,4).

        ``torch.manual_seed(seed)`` is set too: the pipeline draws the condition-latent
        noise with ``torch.randn_like`` (global generator); calls are serialised.
        """
        from PIL import Image

        u8 = (np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        image = Image.fromarray(u8, "RGBA")
        ensure_resident(self)
        with self._lock, torch.inference_mode():
            torch.manual_seed(int(seed))
            out = self.pipe(image, num_inference_steps=int(self.num_inference_steps),
                            generator=seeded_generator(seed, self.placement.device)).images[0]
        return np.asarray(out.convert("RGB"), dtype=np.float32) / 255.0

    def generate(self, processed: np.ndarray, cameras: list[Camera], seed: int = 0) -> list[np.ndarray]:
        """processed RGBA (S,S,4) -> 7 RGBA views for :meth:`fixed_cameras` (any size):
        view 0 the input, views 1..6 the grid's tiles."""
        img = check_image(processed, (3, 4), "processed image")
        rig = zero123plus_cameras(BASE_SIZE, self.input_elevation)
        if len(cameras) != len(rig) or not all(
                _same_camera(c.resized(BASE_SIZE), r) for c, r in zip(cameras, rig, strict=True)):
            raise UserError(
                "Zero123++ makes 7 fixed views (the input and 6 tiles at azimuth 30..330 deg, "
                f"elevation {self.input_elevation:g}+20/-10 deg); other cameras were requested"
            )
        if img.shape[2] == 3:
            img = np.concatenate([img, np.ones((*img.shape[:2], 1), np.float32)], -1)
        tiles = split_grid(self.run(resize(img, TILE, TILE), seed))
        out = [input_view(img, cameras[0])]
        for cam, tile in zip(cameras[1:], tiles, strict=True):
            rgba = np.concatenate([tile, alpha_from_background(tile)[..., None]], -1)
            out.append(np.clip(resize(rgba, cam.width, cam.height), 0.0, 1.0))
        return out


__all__ = ["Zero123PlusMultiview", "split_grid", "zero123plus_cameras"]
