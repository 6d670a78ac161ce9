"""Monocular depth through ``transformers``' ``AutoModelForDepthEstimation``.

Any checkpoint that class loads works (DPT/MiDaS such as ``Intel/dpt-hybrid-midas``,
Depth Anything v1/v2 such as ``depth-anything/Depth-Anything-V2-Small-hf``). Those models
predict *relative inverse depth* (disparity, up to an unknown scale and shift); the
metric variants (``config.depth_estimation_type == "metric"``) predict depth in metres of
a real scene. Neither is in our scene units, so :func:`fit_metric_depth` maps the
prediction to camera-space z (OpenCV camera, scene units, 0 = no object):

* ``depth_align=proxy`` (default): the run's shape proxy (the classic proxy the runner builds
  once from the processed photo and passes as ``estimate(..., proxy=...)``, a
  :class:`~glimpse3d.pipeline.ports.ShapeProxy`) is rendered from the same camera and the
  prediction is fitted to it by least
  squares in inverse-depth space (``1/z = a*d + b``) on the pixels both cover: the proxy
  fixes scale and offset, the model supplies the shape detail. An explicit
  ``reference_depth`` is used the same way.
* ``depth_align=silhouette``, or when no proxy is given: the object is taken as a sphere at the origin whose
  outline matches the silhouette (half-extent ``h`` px at focal ``f``: half-angle
  ``t = atan(h/f)``, radius ``r = distance*sin t``), so its visible surface spans
  ``z`` from ``distance - r`` (nearest point) to ``distance*cos(t)^2`` (the rim); the
  98th/2nd percentiles of the foreground disparity are mapped to those two depths. For
  the unit-sphere-normalised objects of the pipeline (radius ~0.5 at distance 1.5) that
  is z in [1.0, 1.33].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glimpse3d.errors import UserError
from glimpse3d.learned.common import (
    MissingWeightsError,
    Placement,
    cached,
    check_image,
    composite,
    ensure_resident,
    extra_setting,
    load_transformers_model,
    missing_weights_message,
    resolve_weights,
)
from glimpse3d.pipeline.ports import DepthResult, ShapeProxy
from glimpse3d.splat.cameras import DISTANCE, Camera

if TYPE_CHECKING:
    from glimpse3d.config import Settings

EXAMPLE_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"


@dataclass(frozen=True)
class DepthFit:
    """Result of :func:`fit_metric_depth`: depth (H,W) z in scene units (0 = background)
    and the inverse-depth mapping ``1/z = scale * disparity + shift``."""

    depth: np.ndarray
    confidence: float
    scale: float
    shift: float


def fit_metric_depth(
    prediction: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    *,
    inverse: bool = True,
    reference: np.ndarray | None = None,
) -> DepthFit:
    """Map a relative depth prediction (H,W) to camera-space z in scene units.

    ``prediction`` is disparity-like when ``inverse`` (larger = nearer, as DPT/Depth
    Anything output) or depth-like otherwise; ``mask`` (H,W) in [0,1] marks the object;
    ``camera`` gives the distance to the origin and the focal length (scaled to the
    prediction's width); ``reference`` (H,W, 0 = unknown) is an optional depth to align to.

    Confidence in [0,1] = mean of (a) how well the object's disparity separates from the
    background's (fraction of foreground pixels nearer than the background median; 0.5
    without background) and (b) the agreement of the prediction with the reference
    (Pearson correlation of inverse depths) or, without one, with the silhouette's
    distance transform (the interior of a compact object is nearer than its rim).
    """
    pred = np.asarray(prediction, dtype=np.float64)
    h, w = pred.shape
    fg = np.asarray(mask, dtype=np.float64) > 0.5
    if fg.shape != pred.shape:
        raise ValueError(f"mask shape {fg.shape} != prediction shape {pred.shape}")
    zeros = np.zeros((h, w), np.float32)
    if fg.sum() < 8:
        return DepthFit(zeros, 0.0, 0.0, 0.0)
    disp = pred if inverse else 1.0 / np.maximum(pred, 1e-06)
    finite = np.isfinite(disp)
    fg &= finite
    disp = np.where(finite, disp, 0.0)

    distance = float(np.linalg.norm(camera.center)) or DISTANCE
    focal = camera.fx * w / camera.width
    ys, xs = np.nonzero(fg)
    half_extent_px = 0.5 * max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    theta = float(np.clip(np.arctan(half_extent_px / focal), 1e-3, np.radians(60.0)))
    radius = distance * np.sin(theta)  # sphere whose outline matches the silhouette
    z_near, z_far = distance - radius, distance * np.cos(theta) ** 2  # front point, rim

    d_fg = disp[fg]
    bg = ~fg & finite & (np.asarray(mask) <= 0.5)
    separation = float(np.mean(d_fg > np.median(disp[bg]))) if bg.sum() >= 8 else 0.5

    scale = shift = 0.0
    agreement = 0.0
    ref_ok = None
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != pred.shape:
            raise ValueError(f"reference shape {ref.shape} != prediction shape {pred.shape}")
        ref_ok = fg & (ref > 1e-6) & np.isfinite(ref)
        if ref_ok.sum() < 8:
            ref_ok = None
    if ref_ok is not None:
        x, y = disp[ref_ok], 1.0 / reference[ref_ok]
        scale, shift = _robust_line(x, y)
        agreement = _pearson(x, y)
    lo, hi = np.percentile(d_fg, [2.0, 98.0])
    if ref_ok is None or scale <= 0:
        if hi - lo <= 1e-9 * max(1.0, abs(hi)):
            # flat prediction: no shape information, place the object mid-way
            depth = np.where(fg, 0.5 * (z_near + z_far), 0.0).astype(np.float32)
            return DepthFit(depth, 0.0, 0.0, float(2.0 / (z_near + z_far)))
        scale = (1.0 / z_near - 1.0 / z_far) / (hi - lo)
        shift = 1.0 / z_far - scale * lo
        if ref_ok is None:
            agreement = _pearson(d_fg, _distance_transform(fg)[fg])
    inv = scale * disp + shift
    z = 1.0 / np.maximum(inv, 1e-6)
    z = np.clip(z, max(z_near - 0.5 * radius, 1e-3), z_far + radius)
    depth = np.where(fg, z, 0.0).astype(np.float32)
    confidence = float(np.clip(0.5 * separation + 0.5 * max(agreement, 0.0), 0.0, 1.0))
    return DepthFit(depth, confidence, float(scale), float(shift))


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares y = a x + b, refitted once without the worst 10% residuals."""
    if np.ptp(x) <= 1e-12:
        return 0.0, float(np.mean(y))
    a, b = np.polyfit(x, y, 1)
    res = np.abs(y - (a * x + b))
    keep = res <= np.percentile(res, 90.0)
    if keep.sum() >= 4 and np.ptp(x[keep]) > 1e-12:
        a, b = np.polyfit(x[keep], y[keep], 1)
    return float(a), float(b)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.std(x) <= 1e-12 or np.std(y) <= 1e-12:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _distance_transform(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3).astype(np.float64)


def proxy_depth(proxy: ShapeProxy | None, camera: Camera) -> np.ndarray | None:
    """The shape proxy's depth (H,W) z seen by ``camera`` (its size), or None without one."""
    if proxy is None:
        return None
    return np.asarray(proxy.depth(camera), dtype=np.float32)


ALIGN_MODES = ("proxy", "silhouette")


class TransformersDepth:
    """Depth backend: ``AutoModelForDepthEstimation`` + ``AutoImageProcessor``.

    Settings: ``depth_model`` (hub id or local directory), ``device``; optional
    ``depth_align`` (``proxy`` | ``silhouette``, env ``GLIMPSE3D_DEPTH_ALIGN``).
    """

    name = "transformers"

    def __init__(self, model: Any, processor: Any, placement: Placement, model_ref: str,
                 align: str = "proxy") -> None:
        self.model = model
        self.processor = processor
        self.placement = placement
        self.model_ref = model_ref
        kind = getattr(model.config, "depth_estimation_type", None) or "relative"
        self.inverse = kind != "metric"
        if align not in ALIGN_MODES:
            raise UserError(f"depth_align must be one of {', '.join(ALIGN_MODES)}, got {align!r}")
        self.align = align

    @property
    def uses_proxy(self) -> bool:
        """Whether the runner should pass its shape proxy (``proxy`` alignment)."""
        return self.align == "proxy"

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersDepth:
        ref = resolve_weights(settings.depth_model, "depth_model", EXAMPLE_MODEL)
        placement = Placement.from_settings(settings.device)
        align = str(extra_setting(settings, "depth_align", "proxy")).strip().lower()
        loaded = cached(cls, ref, placement.device, lambda: cls.load(ref, placement))
        if align == loaded.align:
            return loaded
        return cls(loaded.model, loaded.processor, placement, ref, align)

    @classmethod
    def load(cls, ref: str, placement: Placement) -> TransformersDepth:
        """Load model + processor from a hub id or a local directory."""
        processor, model = load_transformers_model(
            "AutoModelForDepthEstimation", ref, placement, "depth_model", EXAMPLE_MODEL,
            "the transformers depth backend",
        )
        if processor is None:  # pragma: no cover - defensive
            raise MissingWeightsError(
                missing_weights_message("depth_model", ref, EXAMPLE_MODEL, "missing preprocessor_config.json")
            )
        return cls(model, processor, placement, ref)

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    @torch.inference_mode()
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Raw model output (H,W) float32 at the input size (relative inverse depth for
        relative checkpoints, metres for metric ones)."""
        h, w = rgb.shape[:2]
        ensure_resident(self)
        u8 = (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)
        inputs = self.processor(images=u8, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.placement.device, self.placement.dtype)
        out = self.model(pixel_values=pixel_values).predicted_depth
        if out.ndim == 3:
            out = out[:, None]
        out = torch.nn.functional.interpolate(out.float(), size=(h, w), mode="bicubic", align_corners=False)
        return out[0, 0].cpu().numpy().astype(np.float32)

    def estimate(
        self,
        view_rgba: np.ndarray,
        camera: Camera,
        processed: np.ndarray,
        proxy: ShapeProxy | None = None,
        reference_depth: np.ndarray | None = None,
    ) -> DepthResult:
        """Depth (H,W) z of one view seen by ``camera`` (0 outside the view's alpha).

        The view is composited over white (the generated views' background) before the
        model sees it. ``reference_depth`` (same size, 0 = unknown), when given, is the
        depth the prediction is aligned to; otherwise ``proxy``'s depth (the run's shape
        proxy) in ``proxy`` mode, the silhouette in ``silhouette`` mode or without a proxy
        (see the module docstring).
        """
        view = check_image(view_rgba, (3, 4), "view")
        h, w = view.shape[:2]
        mask = view[..., 3] if view.shape[2] == 4 else np.ones((h, w), np.float32)
        rgb = composite(view, 1.0)
        pred = self.predict(rgb)
        if reference_depth is None and self.align == "proxy":
            cam = camera if (camera.width, camera.height) == (w, h) else camera.resized(w, h)
            reference_depth = proxy_depth(proxy, cam)
        fit = fit_metric_depth(pred, mask, camera, inverse=self.inverse, reference=reference_depth)
        return DepthResult(depth=fit.depth, confidence=fit.confidence)
