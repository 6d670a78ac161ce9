"""Synthetic-object helpers shared by the pipeline and testing tests."""

from __future__ import annotations

import numpy as np

from glimpse3d.splat.cameras import Camera, similarity_camera
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


def aligned_ious(render_alpha, obj: S.SyntheticObject, cam0: Camera,
                 cameras: list[Camera], iterations: int = 6) -> list[float]:
    """Silhouette IoU of a model against ``obj`` at ``cameras`` after the protocol's
    alignment (benchmarks/bench_quality.py): a uniform scale about the origin and a shift
    perpendicular to view 0's ray, fitted so the model's view-0 silhouette has the truth's
    area and centroid (all a photo fixes). ``render_alpha(camera) -> (H,W) alpha``."""
    scale, shift = S.fit_similarity(render_alpha, S.silhouette(obj, cam0), cam0, iterations)
    return [S.silhouette_iou(render_alpha(similarity_camera(c, scale, shift)), S.silhouette(obj, c))
            for c in cameras]


TABLE_LEGS = [(x, y) for x in (-0.35, 0.35) for y in (-0.25, 0.25)]  # table_object's legs, local


def table_object(yaw: float = 20.0) -> S.SyntheticObject:
    """A table turned by ``yaw`` degrees, centred on the origin: a 0.8 x 0.6 top from
    z = 0.255 to 0.315 on four legs (radius 0.03, at ``TABLE_LEGS``) down to z = -0.315."""
    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))

    def sdf(q: np.ndarray) -> np.ndarray:
        t = np.stack([c * q[:, 0] + s * q[:, 1], c * q[:, 1] - s * q[:, 0], q[:, 2]], 1)
        legs = [S.sdf_cylinder_z(t - [x, y, -0.03], 0.03, 0.285) for x, y in TABLE_LEGS]
        return np.minimum(S.sdf_box(t - [0, 0, 0.285], np.array([0.4, 0.3, 0.03])),
                          np.min(legs, axis=0))

    return S.SyntheticObject("table", sdf, lambda p, n: np.full((len(p), 3), 0.5), radius=0.7)


def table_leg_positions(yaw: float = 20.0) -> np.ndarray:
    """World (x, y) (4,2) of :func:`table_object`'s legs."""
    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    t = np.array(TABLE_LEGS)
    return np.stack([c * t[:, 0] - s * t[:, 1], s * t[:, 0] + c * t[:, 1]], axis=1)


def bus_object(yaw: float = 60.0) -> S.SyntheticObject:
    """A bus turned by ``yaw`` degrees: a 1.0 x 0.32 x 0.34 body with rounded edges (radius
    0.04) from z = -0.13 to 0.21 on four wheels (radius 0.07) down to z = -0.21."""
    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))

    def sdf(q: np.ndarray) -> np.ndarray:
        t = np.stack([c * q[:, 0] + s * q[:, 1], c * q[:, 1] - s * q[:, 0], q[:, 2]], 1)
        body = S.sdf_box(t - [0, 0, 0.04], np.array([0.46, 0.12, 0.13])) - 0.04
        wheels = [np.maximum(np.linalg.norm((t - [x, y, -0.14])[:, [0, 2]], axis=1) - 0.07,
                             np.abs(t[:, 1] - y) - 0.03)
                  for x in (-0.3, 0.3) for y in (-0.13, 0.13)]
        return np.minimum(body, np.min(wheels, axis=0))

    return S.SyntheticObject("bus", sdf, lambda p, n: np.full((len(p), 3), 0.5), radius=0.7)
