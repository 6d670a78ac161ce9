"""The inflation bound: the union of a silhouette's inscribed balls seen along the view rays."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.pipeline.proxy import (
    BOUND,
    INFLATION_MARGIN,
    _signed_distance,
    ball_half_thickness,
    proxy_field,
)
from glimpse3d.splat.cameras import ELEVATION_DEG, orbit_camera


def _reference(sd: np.ndarray) -> np.ndarray:
    """Brute force: max over every interior pixel q of sd(q)² − |p − q|², per pixel p."""
    h, w = sd.shape
    ys, xs = np.nonzero(sd > 0)
    r2 = sd[ys, xs].astype(np.float64) ** 2
    py, px = np.mgrid[0:h, 0:w]
    d2 = (py.ravel()[:, None] - ys[None]) ** 2 + (px.ravel()[:, None] - xs[None]) ** 2
    return np.sqrt(np.maximum((r2[None] - d2).max(axis=1), 0.0)).reshape(h, w)


def _lollipop(size: int = 96) -> np.ndarray:
    """A disc of radius 24 px with a 6 px wide stick of 30 px to its right."""
    yy, xx = np.mgrid[0:size, 0:size]
    mask = (yy - 48) ** 2 + (xx - 36) ** 2 <= 24**2
    mask[45:51, 58:90] = True
    return mask


def test_matches_the_brute_force_reference() -> None:
    rng = np.random.default_rng(3)
    mask = _lollipop(64 + 32)[16:80, 8:72].copy()
    mask[rng.integers(0, 64, 30), rng.integers(0, 64, 30)] = True  # specks: tiny balls
    sd = _signed_distance(mask)
    np.testing.assert_allclose(ball_half_thickness(sd, chunk=7), _reference(sd), atol=1e-3)


def test_a_band_gets_a_round_cross_section() -> None:
    """A 21 px band (its outline half a pixel outside its edge pixels): the inscribed balls on
    its centre line have radius 10.5 px, and the half-thickness across it is sqrt(r² − x²)."""
    mask = np.zeros((64, 80), bool)
    mask[20:41, 5:75] = True
    h = ball_half_thickness(_signed_distance(mask))
    r = 10.5
    x = np.arange(-9, 10)
    np.testing.assert_allclose(h[30 + x, 40], np.sqrt(r**2 - x**2), atol=0.05)
    assert h[~mask].max() == 0.0


def test_thin_parts_stay_thin() -> None:
    """The stick of a lollipop is as deep as it is wide (half-thickness ≤ its 3 px half-width);
    the old single-ball bound sqrt(2·R·d − d²) gave it sqrt(2·24·3 − 9) ≈ 11.6 px."""
    mask = _lollipop()
    h = ball_half_thickness(_signed_distance(mask))
    assert h[48, 70:88].max() <= 3.0
    assert h[48, 36] == pytest.approx(23.5, abs=0.5)


def test_inflated_proxy_depth_follows_the_parts_width() -> None:
    """The inflated reading of a lollipop photographed from view 0: along the ray through the
    disc's centre the occupied depth is the disc's diameter (times the margin), through the
    stick it is the stick's width, within a voxel or two."""
    size = 96
    alpha = _lollipop(size).astype(np.float32)
    grid = 96
    field_, axis, used = proxy_field(alpha, grid=grid, shape_prior="inflated")
    assert used == "inflated"
    cam = orbit_camera(ELEVATION_DEG, 0.0, size=size)
    voxel = float(axis[1] - axis[0])
    px_to_world = cam.distance / cam.fx
    gx, gy, gz = np.meshgrid(axis, axis, axis, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)[field_.ravel() > 0]
    uv, z = cam.project(pts)
    u, v = uv[:, 0], uv[:, 1]
    for (pu, pv), radius_px in (((36.5, 48.5), 23.5), ((75.5, 48.5), 3.0)):
        on_ray = (np.abs(u - pu) < 0.75) & (np.abs(v - pv) < 0.75)
        extent = float(z[on_ray].max() - z[on_ray].min())
        want = 2 * radius_px * px_to_world * INFLATION_MARGIN
        assert extent == pytest.approx(want, abs=2.5 * voxel), (pu, extent, want)
    assert np.abs(pts).max() <= BOUND
