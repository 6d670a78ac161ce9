"""Backend interfaces for each stage and the registry that picks one from settings.

Image conventions everywhere in the pipeline: float32 numpy arrays, RGB(A) in [0,1],
shape (H,W,C). Depth is metric camera-space z (OpenCV camera, scene units), 0 = no object.
Classic backends live in ``glimpse3d.pipeline``; learned ones in ``glimpse3d.learned`` and
are imported only when selected.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from glimpse3d.splat.cameras import Camera

if TYPE_CHECKING:
    from glimpse3d.config import Settings


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


class Segmenter(Protocol):
    name: str

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H,W,3) float32 [0,1] -> foreground mask (H,W) float32 [0,1]."""


class MultiviewGenerator(Protocol):
    name: str

    def generate(
        self, processed: np.ndarray, cameras: list[Camera], seed: int = 0
    ) -> list[np.ndarray]:
        """processed RGBA (S,S,4) -> one RGBA (H,W,4) per camera; view 0 is the input view."""


class DepthEstimator(Protocol):
    name: str

    def estimate(
        self, view_rgba: np.ndarray, camera: Camera, processed: np.ndarray
    ) -> DepthResult:
        """Depth of one generated view seen by ``camera``; ``processed`` is the input photo."""


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


REGISTRY: dict[str, dict[str, str]] = {
    "segment": {
        "classic": "glimpse3d.pipeline.preprocess:ClassicSegmenter",
        "transformers": "glimpse3d.learned.segmentation:TransformersSegmenter",
        "rembg": "glimpse3d.learned.segmentation:RembgSegmenter",
    },
    "multiview": {
        "classic": "glimpse3d.pipeline.multiview:ClassicMultiview",
        "diffusers": "glimpse3d.learned.multiview:Zero123Multiview",
        "syncdreamer": "glimpse3d.learned.multiview:SyncDreamerAdapter",
    },
    "depth": {
        "classic": "glimpse3d.pipeline.depth:ClassicDepth",
        "transformers": "glimpse3d.learned.depth:TransformersDepth",
    },
    "enhance": {
        "classic": "glimpse3d.pipeline.refine:ClassicEnhancer",
        "diffusers": "glimpse3d.learned.enhance:SDXLEnhancer",
    },
    "feature": {
        "classic": "glimpse3d.pipeline.metrics:ClassicFeatures",
        "transformers": "glimpse3d.learned.features:TransformersFeatures",
    },
}


def load_backend(stage: str, settings: Settings, overrides: dict[str, Any] | None = None) -> Any:
    """Instantiate the backend chosen for ``stage`` (``segment``/``multiview``/``depth``/
    ``enhance``/``feature``) via ``cls.from_settings(settings)``.

    ``overrides`` (e.g. a project's own settings) may name ``{stage}_backend`` and
    ``{stage}_model``.
    """
    overrides = overrides or {}
    choice = overrides.get(f"{stage}_backend") or getattr(settings, f"{stage}_backend")
    options = REGISTRY[stage]
    if choice not in options:
        raise BackendUnavailable(
            f"unknown {stage} backend {choice!r}; choose one of {', '.join(sorted(options))}"
        )
    module_name, _, cls_name = options[choice].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the {choice!r} {stage} backend needs the learned extras: "
            f"pip install 'glimpse3d[models]' ({exc})"
        ) from exc
    cls = getattr(module, cls_name)
    if overrides.get(f"{stage}_model"):
        settings = settings.model_copy(update={f"{stage}_model": overrides[f"{stage}_model"]})
    return cls.from_settings(settings)
