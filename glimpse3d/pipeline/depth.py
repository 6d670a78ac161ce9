"""Classic depth stage: the proxy shape's depth rendered from each camera.

Depth is metric camera-space z (OpenCV camera, scene units), 0 where there is no object.
The proxy (:mod:`glimpse3d.pipeline.proxy`) is the run's: the runner builds it once from the
processed image and passes it to both classic stages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy import ndimage

from glimpse3d.pipeline.ports import DepthResult
from glimpse3d.pipeline.proxy import Proxy, build_proxy, render_proxy_depth
from glimpse3d.splat.cameras import Camera

if TYPE_CHECKING:
    from glimpse3d.config import Settings


class ClassicDepth:
    """Depth of a view = the proxy's rendered depth, restricted to the view's own silhouette.

    Pixels the view covers but the proxy misses (views from a learned generator can differ)
    take the depth of the nearest proxy pixel. ``confidence`` is the IoU of the view's alpha
    (> 0.5) with the proxy silhouette from the same camera.
    """

    name = "classic"
    uses_proxy = True  # the runner passes the run's proxy to ``estimate``

    def __init__(self, shape_prior: str = "auto") -> None:
        self.shape_prior = shape_prior  # for a proxy built here (none given)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ClassicDepth:
        return cls(shape_prior=settings.proxy_shape if settings is not None else "auto")

    def estimate(self, view_rgba: np.ndarray, camera: Camera, processed: np.ndarray,
                 proxy: Proxy | None = None) -> DepthResult:
        """Depth of one view (H,W[,4]) seen by ``camera``; ``proxy`` is the proxy of
        ``processed`` (the run's), built here with ``shape_prior`` when None."""
        view = np.asarray(view_rgba, dtype=np.float32)
        h, w = view.shape[:2]
        cam = camera if (camera.width, camera.height) == (w, h) else camera.resized(w, h)
        if proxy is None:
            proxy = build_proxy(processed, shape_prior=self.shape_prior)
        depth = render_proxy_depth(proxy, cam)
        proxy_mask = depth > 0
        view_mask = view[..., 3] > 0.5 if view.shape[-1] == 4 else np.ones((h, w), dtype=bool)
        union = (proxy_mask | view_mask).sum()
        confidence = float((proxy_mask & view_mask).sum() / union) if union else 0.0
        if proxy_mask.any():
            need = view_mask & ~proxy_mask
            if need.any():
                _, (iy, ix) = ndimage.distance_transform_edt(~proxy_mask, return_indices=True)
                depth = np.where(need, depth[iy, ix], depth)
            depth = np.where(view_mask, depth, 0.0)
        return DepthResult(depth=depth.astype(np.float32), confidence=confidence)


def depth_stats(depth: np.ndarray) -> tuple[float, float, float]:
    """(min, max, mean) of the depth over the foreground (depth > 0); zeros when empty."""
    d = np.asarray(depth, dtype=np.float64)
    fg = d[d > 0]
    if fg.size == 0:
        return 0.0, 0.0, 0.0
    return float(fg.min()), float(fg.max()), float(fg.mean())


def depth_heatmap(depth: np.ndarray, colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """Colour map of a depth map: (H,W,3) uint8 RGB, near = warm, far = cool, background black.

    The foreground range is stretched to the full colour map (min -> red end, max -> blue end).
    """
    d = np.asarray(depth, dtype=np.float32)
    fg = d > 0
    out = np.zeros((*d.shape, 3), dtype=np.uint8)
    if not fg.any():
        return out
    lo, hi = float(d[fg].min()), float(d[fg].max())
    t = np.zeros_like(d)
    t[fg] = 1.0 - (d[fg] - lo) / (hi - lo) if hi > lo else 1.0
    grey = (t * 255 + 0.5).astype(np.uint8)
    bgr = cv2.applyColorMap(grey, colormap)
    out[fg] = bgr[fg][:, ::-1]
    return out
