"""The ports of the pipeline: what each stage needs from a backend, with no registry.

Learned backends (``glimpse3d.learned``) import only this module from the pipeline, so
they sit beside it behind these interfaces; the registry (``pipeline/backends.py``) loads
them by name. Image conventions everywhere in the pipeline: float32 numpy arrays, RGB(A) in
[0,1], shape (H,W,C). Depth is metric camera-space z (OpenCV camera, scene units), 0 = no
object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from glimpse3d.splat.cameras import Camera

# Enhancement strength presets (fraction of the diffusion / detail-transfer strength).
STRENGTH_PRESETS: dict[str, float] = {"low": 0.25, "medium": 0.5, "high": 0.75}


def resolve_strength(strength: float | str | None) -> float:
    """A preset name (low/medium/high), a number or numeric string in (0, 1], or None (medium)
    -> float. Raises ``UserError`` otherwise."""
    from glimpse3d.errors import UserError

    if strength is None:
        return STRENGTH_PRESETS["medium"]
    if isinstance(strength, str):
        key = strength.strip().lower()
        if key in STRENGTH_PRESETS:
            return STRENGTH_PRESETS[key]
        try:
            strength = float(key)
        except ValueError:
            raise UserError(
                f"unknown strength {strength!r}; use a number in (0, 1] or one of "
                f"{', '.join(f'{k}={v}' for k, v in STRENGTH_PRESETS.items())}"
            ) from None
    value = float(strength)
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise UserError(f"strength must be in (0, 1], got {strength}")
    return value


class BackendUnavailable(RuntimeError):
    """A selected backend cannot run (missing extra, missing weights); message says how to fix."""


@dataclass
class DepthResult:
    depth: np.ndarray  # (H,W) float32 camera z; 0 where there is no object
    confidence: float  # in [0,1]


class ShapeProxy(Protocol):
    """A 3D shape of the object built once per run from the processed photo (the classic
    proxy, ``glimpse3d.pipeline.proxy.Proxy``) and passed to the stages that use it."""

    def depth(self, camera: Camera) -> np.ndarray:
        """Camera-space depth z (H,W) float32 seen by ``camera`` (its size), 0 = no object."""


class Segmenter(Protocol):
    name: str

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H,W,3) float32 [0,1] -> foreground mask (H,W) float32 [0,1]."""


class MultiviewGenerator(Protocol):
    """Makes views of the processed photo.

    A backend whose model has its own fixed views (Zero123++, SyncDreamer) also defines
    ``fixed_cameras(settings, size) -> list[Camera]`` (a classmethod, no weights loaded);
    the runner then asks for exactly those cameras and records them with the views, and
    depth and reconstruction use them. Without it the 16 SyncDreamer cameras are used.
    A backend that renders the run's shape proxy sets ``uses_proxy = True``; the runner then
    passes it as ``generate(..., proxy=...)`` (the classic backend's ``Proxy``).
    """

    name: str

    def generate(
        self, processed: np.ndarray, cameras: list[Camera], seed: int = 0
    ) -> list[np.ndarray]:
        """processed RGBA (S,S,4) -> one RGBA (H,W,4) per camera; view 0 is the input view."""


class DepthEstimator(Protocol):
    """Depth of the generated views. ``uses_proxy`` says whether this backend needs the run's
    shape proxy; the runner then builds it (once per run) and passes it as ``proxy``."""

    name: str
    uses_proxy: bool

    def estimate(
        self,
        view_rgba: np.ndarray,
        camera: Camera,
        processed: np.ndarray,
        proxy: ShapeProxy | None = None,
    ) -> DepthResult:
        """Depth of one generated view seen by ``camera``; ``processed`` is the input photo,
        ``proxy`` the run's shape proxy (None when the backend does not use it)."""


class Enhancer(Protocol):
    name: str

    def enhance(
        self,
        rendered: np.ndarray,
        reference: np.ndarray,
        depth: np.ndarray,
        strength: float,
        seed: int = 0,
    ) -> np.ndarray:
        """Improve a rendering (H,W,3) guided by the reference view RGBA (H,W,4) -> (H,W,3)."""


class FeatureExtractor(Protocol):
    name: str

    def similarity(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
        """Perceptual feature similarity of two RGB images in [0,1] (1 = identical)."""
