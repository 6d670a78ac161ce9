"""Synthetic-object helpers shared by the pipeline and testing tests."""

from __future__ import annotations

import numpy as np

from glimpse3d.splat.cameras import Camera
from glimpse3d.testing import synthetic as S


def render_truth_views(obj: S.SyntheticObject,
                       cameras: list[Camera]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(RGBA views, depth maps) of ``obj`` rendered by the truth renderer, one per camera."""
    views, depths = [], []
    for cam in cameras:
        rgba, depth = S.render_truth(obj, cam)
        views.append(rgba)
        depths.append(depth)
    return views, depths


def ray_sphere_depth(cam: Camera, centre: np.ndarray, radius: float) -> np.ndarray:
    """Analytic camera z of the first hit of each pixel-centre ray with a sphere (0 = miss)."""
    origin, dirs = S.camera_rays(cam)
    oc = origin - centre
    b = dirs @ oc
    disc = b * b - (oc @ oc - radius**2)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    z = (origin + dirs * t[..., None]) @ cam.w2c[2, :3] + cam.w2c[2, 3]
    return np.where(disc > 0, z, 0.0)
