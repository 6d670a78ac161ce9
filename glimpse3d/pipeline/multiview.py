"""Classic (weight-free) multiview stage: the proxy shape rendered from each camera.

The proxy (:mod:`glimpse3d.pipeline.proxy`) is read from the processed photo's silhouette;
this module renders it with its projected colours (straight, not premultiplied, RGBA float32
in [0,1]) at the requested cameras (``w2c`` extrinsics, :mod:`glimpse3d.splat.cameras`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from glimpse3d.pipeline.proxy import (
    GRID,
    HULL_AZIMUTHS,
    SHAPE_PRIORS,
    Proxy,
    build_proxy,
    subdivisions,
    zbuffer,
)
from glimpse3d.splat.cameras import Camera

if TYPE_CHECKING:
    from glimpse3d.config import Settings

EDGE_SIGMA = 0.7  # px, feather of the rendered alpha


def render_proxy(proxy: Proxy, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Render the proxy: straight-colour RGBA (H,W,4) float32 and camera z depth (H,W) float32
    (0 where there is no object)."""
    m = subdivisions(proxy, camera)
    pts, nrm, col = proxy.points(m)
    depth, rgb = zbuffer(pts, nrm, col, camera)
    assert rgb is not None
    cov = (depth > 0).astype(np.float32)
    # anti-aliased edge: a half-pixel feather (the 0.5 level stays on the covered pixels)
    alpha = cv2.GaussianBlur(cov, (0, 0), EDGE_SIGMA) if EDGE_SIGMA > 0 else cov
    if EDGE_SIGMA > 0:
        alpha = np.where(cov > 0, np.maximum(alpha, 0.5 + 1e-3), np.minimum(alpha, 0.5 - 1e-3))
        alpha[alpha < 0.02] = 0.0
        alpha[(cov > 0) & (alpha > 0.98)] = 1.0
        ring = (cov == 0) & (alpha > 0)
        if ring.any():  # colour of the outer ring pixels from their covered neighbours
            k = np.ones((3, 3), np.float32)
            n = cv2.filter2D(cov, -1, k, borderType=cv2.BORDER_CONSTANT)
            csum = cv2.filter2D(rgb * cov[..., None], -1, k, borderType=cv2.BORDER_CONSTANT)
            rgb = rgb.copy()
            rgb[ring] = csum[ring] / np.maximum(n[ring], 1.0)[:, None]
    return np.concatenate([rgb, alpha[..., None]], axis=-1).astype(np.float32), depth

class ClassicMultiview:
    """Weight-free multiview generator: renders the silhouette proxy from each camera.

    ``shape_prior``: how the proxy reads the silhouette (``auto`` | ``rotational`` |
    ``prism`` | ``inflated``; see :func:`glimpse3d.pipeline.proxy.proxy_field`).
    """

    name = "classic"
    uses_proxy = True  # the runner passes the run's proxy to ``generate``

    def __init__(self, grid: int = GRID, hull_azimuths: int = HULL_AZIMUTHS,
                 shape_prior: str = "auto") -> None:
        if shape_prior not in SHAPE_PRIORS:
            raise ValueError(f"shape_prior must be one of {SHAPE_PRIORS}, got {shape_prior!r}")
        self.grid = grid
        self.hull_azimuths = hull_azimuths
        self.shape_prior = shape_prior

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ClassicMultiview:
        return cls(shape_prior=settings.proxy_shape if settings is not None else "auto")

    def build_proxy(self, processed: np.ndarray) -> Proxy:
        """The proxy of ``processed`` with this backend's grid and shape prior."""
        return build_proxy(processed, grid=self.grid, hull_azimuths=self.hull_azimuths,
                           shape_prior=self.shape_prior)

    def generate(self, processed: np.ndarray, cameras: list[Camera], seed: int = 0,
                 proxy: Proxy | None = None) -> list[np.ndarray]:
        """processed RGBA (S,S,4) float [0,1] -> one RGBA float32 (H,W,4) per camera.

        ``proxy``: the proxy of ``processed`` built already (the runner's); built here when
        None. Deterministic (``seed`` is accepted for the interface and unused).
        """
        if proxy is None:
            proxy = self.build_proxy(processed)
        return [render_proxy(proxy, cam)[0] for cam in cameras]
