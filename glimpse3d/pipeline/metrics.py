"""Quality metrics for reconstruction and refinement (numpy, CPU).

Conventions: images are float arrays (H,W,3) RGB in [0,1] (an (H,W,4) RGBA input is
reduced to its RGB channels); masks are (H,W) bool or [0,1] floats (> 0.5 = inside);
depth maps are camera-space z in scene units with 0 = no object.

``overall_quality`` combines the per-iteration metrics into one score in [0,1]:

    overall = sum_k w_k * score_k / sum_k w_k   over the metrics that are present, with
    psnr  -> clip((psnr_db - 10) / 30, 0, 1)   weight 0.35   (10 dB -> 0, 40 dB -> 1)
    ssim  -> clip(ssim, 0, 1)                  weight 0.25
    lpips -> clip(1 - lpips, 0, 1)             weight 0.10   (only when not None)
    depth_consistency   in [0,1]               weight 0.15
    feature_consistency in [0,1]               weight 0.15
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from glimpse3d.errors import UserError

if TYPE_CHECKING:
    from glimpse3d.config import Settings

PSNR_RANGE_DB = (10.0, 40.0)
QUALITY_WEIGHTS: dict[str, float] = {
    "psnr": 0.35,
    "ssim": 0.25,
    "lpips": 0.10,
    "depth_consistency": 0.15,
    "feature_consistency": 0.15,
}
DEPTH_TOLERANCE = 0.1  # relative depth error at which a pixel scores 0


class MetricInputError(UserError):
    """Images/depths handed to a metric have incompatible shapes or are empty."""

    http_status = 422


def _rgb(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3):
        raise MetricInputError(f"expected an (H,W) or (H,W,C) image, got shape {arr.shape}")
    return arr


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _rgb(a), _rgb(b)
    if a.shape != b.shape:
        raise MetricInputError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    m = m > 0.5 if m.dtype != bool else m
    if m.shape != shape[:2]:
        raise MetricInputError(f"mask shape {m.shape} does not match image {shape[:2]}")
    return m


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """PSNR in dB (capped at 100 for identical images); with ``mask`` only pixels inside count."""
    a, b = _pair(a, b)
    m = _mask(mask, a.shape)
    if m is None:
        if np.array_equal(a, b):
            return 100.0
        return float(min(peak_signal_noise_ratio(a, b, data_range=data_range), 100.0))
    if not m.any():
        raise MetricInputError("the mask is empty")
    err = float(np.mean((a[m] - b[m]) ** 2))
    return 100.0 if err == 0 else float(min(10.0 * np.log10(data_range**2 / err), 100.0))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Gaussian-window SSIM (sigma 1.5, as in :mod:`glimpse3d.splat.losses`).

    With ``mask`` the SSIM map is averaged over the masked pixels (window cropping ignored).
    """
    a, b = _pair(a, b)
    m = _mask(mask, a.shape)
    kwargs: dict[str, Any] = dict(
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range,
        channel_axis=-1 if a.ndim == 3 else None,
    )
    if min(a.shape[:2]) < 11:
        raise MetricInputError("images must be at least 11x11 for SSIM")
    if m is None:
        return float(structural_similarity(a, b, **kwargs))
    if not m.any():
        raise MetricInputError("the mask is empty")
    _, smap = structural_similarity(a, b, full=True, **kwargs)
    if smap.ndim == 3:
        smap = smap.mean(axis=-1)
    return float(smap[m].mean())


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """:func:`psnr` restricted to ``mask``."""
    return psnr(a, b, mask=mask, data_range=data_range)


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """:func:`ssim` averaged over ``mask``."""
    return ssim(a, b, mask=mask, data_range=data_range)


def depth_consistency(
    pred_depth: np.ndarray,
    ref_depth: np.ndarray,
    mask: np.ndarray | None = None,
    tolerance: float = DEPTH_TOLERANCE,
    align_scale: bool = False,
) -> float:
    """Agreement of two depth maps in [0,1] (1 = identical).

    Scale-aware relative error: for each pixel inside ``mask`` (default: where the reference
    depth is > 0) ``rel = |pred - ref| / ref`` and the pixel scores ``max(0, 1 - rel/tolerance)``
    (a 10 % error scores 0 by default); a pixel where ``pred`` is missing (<= 0) scores 0. The
    result is the mean score. With ``align_scale`` the prediction is first multiplied by the
    median ratio ``ref / pred`` (for relative-depth estimators). Returns 0.0 for an empty mask.
    """
    pred = np.asarray(pred_depth, dtype=np.float64)
    ref = np.asarray(ref_depth, dtype=np.float64)
    if pred.shape != ref.shape or pred.ndim != 2:
        raise MetricInputError(f"depth maps must be (H,W) of one shape, got {pred.shape} and {ref.shape}")
    valid = ref > 0
    if mask is not None:
        valid &= _mask(mask, ref.shape)  # type: ignore[operator]
    if not valid.any():
        return 0.0
    p, r = pred[valid], ref[valid]
    have = p > 0
    if align_scale and have.any():
        p = p * float(np.median(r[have] / p[have]))
    rel = np.where(have, np.abs(p - r) / r, np.inf)
    score = np.clip(1.0 - rel / tolerance, 0.0, 1.0)
    return float(score.mean())


def silhouette_iou(a_alpha: np.ndarray, b_alpha: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of ``alpha > threshold`` masks (1.0 when both are empty)."""
    a = np.asarray(a_alpha) > threshold
    b = np.asarray(b_alpha) > threshold
    if a.shape != b.shape:
        raise MetricInputError(f"alpha shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def overall_quality(metrics: dict[str, float | None]) -> float:
    """Weighted score in [0,1] of the present metrics (see the module docstring)."""
    scores: dict[str, float] = {}
    if metrics.get("psnr") is not None:
        lo, hi = PSNR_RANGE_DB
        scores["psnr"] = (float(metrics["psnr"]) - lo) / (hi - lo)  # type: ignore[arg-type]
    if metrics.get("ssim") is not None:
        scores["ssim"] = float(metrics["ssim"])  # type: ignore[arg-type]
    if metrics.get("lpips") is not None:
        scores["lpips"] = 1.0 - float(metrics["lpips"])  # type: ignore[arg-type]
    for key in ("depth_consistency", "feature_consistency"):
        if metrics.get(key) is not None:
            scores[key] = float(metrics[key])  # type: ignore[arg-type]
    if not scores:
        return 0.0
    total = sum(QUALITY_WEIGHTS[k] for k in scores)
    value = sum(QUALITY_WEIGHTS[k] * float(np.clip(v, 0.0, 1.0)) for k, v in scores.items())
    return float(value / total)


class ClassicFeatures:
    """Hand-crafted perceptual features: gradient-orientation histograms + colour statistics.

    ``similarity(a, b)`` = 0.7 * max(0, Pearson correlation of the orientation-histogram
    descriptors (8x8 px cells, 9 unsigned bins, magnitude weighted, square-rooted)) +
    0.3 * colour-histogram intersection (8 bins per channel). Both images are resized to a
    common working size and, with ``mask``, zeroed outside it. Noise against an object scores
    near 0.1-0.3; an image against itself scores 1.
    """

    name = "classic"

    def __init__(self, size: int = 128, cell: int = 8, orientations: int = 9) -> None:
        self.size = int(size)
        self.cell = int(cell)
        self.orientations = int(orientations)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClassicFeatures:  # noqa: ARG003 - no knobs
        return cls()

    def _prepare(self, img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        import cv2

        arr = _rgb(img).astype(np.float32)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        arr = np.clip(arr, 0.0, 1.0)
        if mask is not None:
            arr = arr * (_mask(mask, arr.shape).astype(np.float32)[..., None])  # type: ignore[union-attr]
        if arr.shape[:2] != (self.size, self.size):
            arr = cv2.resize(arr, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return arr

    def describe(self, img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Feature vector: the HOG descriptor followed by the colour histogram."""
        arr = self._prepare(img, mask)
        return np.concatenate([self._hog(arr), self._hist(arr)])

    def _hog(self, arr: np.ndarray) -> np.ndarray:
        """Magnitude-weighted gradient-orientation histograms per cell (unsigned, square-rooted).

        Unlike block-normalised HOG, flat regions with faint noise contribute little, so the
        descriptor is dominated by the object's real edges.
        """
        import cv2

        gray = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.sqrt(gx * gx + gy * gy)
        ang = np.mod(np.arctan2(gy, gx), np.pi)
        bins = np.minimum((ang / np.pi * self.orientations).astype(np.int64), self.orientations - 1)
        h, w = gray.shape
        ch, cw = h // self.cell, w // self.cell
        rows = np.minimum(np.arange(h) // self.cell, ch - 1)
        cols = np.minimum(np.arange(w) // self.cell, cw - 1)
        cell_id = rows[:, None] * cw + cols[None, :]
        index = (cell_id * self.orientations + bins).ravel()
        hist = np.bincount(index, weights=mag.ravel().astype(np.float64),
                           minlength=ch * cw * self.orientations)
        return np.sqrt(hist)

    @staticmethod
    def _hist(arr: np.ndarray, bins: int = 8) -> np.ndarray:
        idx = np.clip((arr * bins).astype(np.int64), 0, bins - 1)
        hist = np.stack([np.bincount(idx[..., c].ravel(), minlength=bins) for c in range(3)])
        hist = hist.astype(np.float64)
        return (hist / hist.sum(axis=1, keepdims=True)).ravel()

    def similarity(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
        """Perceptual similarity in [0,1] of two RGB(A) images (1 = identical)."""
        a_arr, b_arr = _rgb(a), _rgb(b)
        if a_arr.shape[:2] != b_arr.shape[:2]:
            raise MetricInputError(f"image sizes differ: {a_arr.shape} vs {b_arr.shape}")
        pa, pb = self._prepare(a_arr, mask), self._prepare(b_arr, mask)
        ha, hb = self._hog(pa), self._hog(pb)
        ha, hb = ha - ha.mean(), hb - hb.mean()
        denom = float(np.linalg.norm(ha) * np.linalg.norm(hb))
        if denom < 1e-12:
            corr = 1.0 if np.allclose(pa, pb, atol=1e-6) else 0.0
        else:
            corr = max(0.0, float(ha @ hb) / denom)
        hist = float(np.minimum(self._hist(pa), self._hist(pb)).sum() / 3.0)
        return float(np.clip(0.7 * corr + 0.3 * hist, 0.0, 1.0))


__all__ = [
    "DEPTH_TOLERANCE",
    "QUALITY_WEIGHTS",
    "ClassicFeatures",
    "MetricInputError",
    "depth_consistency",
    "masked_psnr",
    "masked_ssim",
    "overall_quality",
    "psnr",
    "silhouette_iou",
    "ssim",
]
