"""Synthetic objects: the truth renderer against analytic answers."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.testing import synthetic as S
from tests.utils.synthetic import ray_sphere_depth


def test_catalogue_names() -> None:
    assert set(S.catalogue()) == {"sphere", "cylinder", "mug", "box", "cube", "cone", "blob"}


def test_sphere_depth_and_coverage_match_analytic() -> None:
    obj = S.make_sphere()
    cam = orbit_camera(30.0, 40.0, size=128)
    rgba, depth = S.render_truth(obj, cam)
    truth = ray_sphere_depth(cam, np.zeros(3), 0.45)
    both = (depth > 0) & (truth > 0)
    # only grazing rays at the rim may disagree (the tracer stops within 2e-4 of the surface)
    r_px = cam.fx * np.tan(np.arcsin(0.45 / 1.5))
    assert np.sum((depth > 0) ^ (truth > 0)) <= 0.05 * 2 * np.pi * r_px
    err = np.abs(depth[both] - truth[both])
    assert np.percentile(err, 95) < 5e-4 and err.max() < 6e-3  # grazing rim rays are coarser
    # projected disc radius f * tan(asin(r/d))
    assert (rgba[..., 3] > 0.5).sum() == pytest.approx(np.pi * r_px**2, rel=0.02)
    assert rgba.dtype == np.float32 and rgba.shape == (128, 128, 4)
    assert rgba.min() >= 0.0 and rgba.max() <= 1.0


def test_moved_scaled_sphere_depth() -> None:
    obj = S.make_sphere()
    moved = S.fit_view0(obj)
    cam = orbit_camera(30.0, 200.0, size=96)
    _, depth = S.render_truth(moved, cam)
    truth = ray_sphere_depth(cam, moved.offset, 0.45 * moved.scale)
    both = (depth > 0) & (truth > 0)
    assert both.sum() > 1000
    err = np.abs(depth[both] - truth[both])
    assert np.percentile(err, 95) < 1e-3 and err.max() < 1e-2


def test_cone_apex_and_base_seen_from_the_side() -> None:
    cam = orbit_camera(0.0, 0.0, size=256)  # level camera at distance 1.5 on +X
    sil = S.silhouette(S.make_cone(), cam)
    rows = np.nonzero(sil.any(axis=1))[0]
    apex_v = cam.cy - cam.fy * 0.45 / 1.5  # the apex (x=0, z=0.45) is at depth 1.5
    assert abs(rows.min() - apex_v) <= 1.5
    # half-way up the image of the cone it is half as wide as at the base (near side x=+r)
    widths = sil.sum(axis=1)
    assert widths[rows.min() + 5] < widths[rows.max() - 5] / 5


@pytest.mark.parametrize("name", ["sphere", "mug", "box", "cube", "cone"])
def test_fit_view0_centres_at_85_percent(name: str) -> None:
    obj = S.fit_view0(S.catalogue()[name])
    sil = S.silhouette(obj, orbit_camera(30.0, 0.0, size=256))
    ys, xs = np.nonzero(sil)
    long_side = max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
    assert abs(long_side - 0.85 * 256) <= 2
    assert abs((xs.min() + xs.max() + 1) / 2 - 128) <= 1.5
    assert abs((ys.min() + ys.max() + 1) / 2 - 128) <= 1.5


def test_ssaa_alpha_is_soft_and_depth_consistent() -> None:
    obj = S.make_box()
    cam = orbit_camera(30.0, 0.0, size=64)
    rgba1, d1 = S.render_truth(obj, cam)
    rgba2, d2 = S.render_truth(obj, cam, ssaa=2)
    a = rgba2[..., 3]
    assert ((a > 0) & (a < 1)).any()
    assert abs(a.sum() - rgba1[..., 3].sum()) / rgba1[..., 3].sum() < 0.03
    inner = (a == 1) & (rgba1[..., 3] == 1)
    assert np.abs(d1[inner] - d2[inner]).max() < 0.02
    assert 0.9 < d1[d1 > 0].min() < d1[d1 > 0].max() < 2.1


def test_photo_and_iou_helper() -> None:
    img, mask = S.synthetic_photo(S.fit_view0(S.make_sphere()), size=256, ssaa=1)
    assert img.mode == "RGB" and img.size == (256, 256)
    assert 0.3 < (mask > 0.5).mean() < 0.7
    assert S.silhouette_iou(mask, mask) == 1.0
    assert S.silhouette_iou(mask, np.zeros_like(mask)) == 0.0
