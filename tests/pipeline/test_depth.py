"""Classic depth: the proxy's depth against the analytic depth of a synthetic sphere."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.pipeline.backends import DepthResult
from glimpse3d.pipeline.depth import ClassicDepth, depth_heatmap, depth_stats
from glimpse3d.pipeline.multiview import ClassicMultiview
from glimpse3d.pipeline.preprocess import preprocess_image, validate_image
from glimpse3d.pipeline.proxy import Proxy, build_proxy
from glimpse3d.splat.cameras import orbit_camera, syncdreamer_cameras
from glimpse3d.testing import synthetic as S
from tests.utils.synthetic import ray_sphere_depth


@pytest.fixture(scope="module")
def sphere() -> tuple[S.SyntheticObject, np.ndarray]:
    obj = S.fit_view0(S.make_sphere())
    photo, _ = S.synthetic_photo(obj, size=512, ssaa=1)
    return obj, preprocess_image(validate_image(S.png_bytes(photo))).rgba


@pytest.fixture(scope="module")
def sphere_proxy(sphere) -> Proxy:
    """The proxy of the sphere's processed image, passed to both classic stages (as the runner does)."""
    return build_proxy(sphere[1])


@pytest.mark.parametrize("view", [0, 4, 10])
def test_depth_of_sphere_matches_analytic(sphere, sphere_proxy, view: int) -> None:
    obj, processed = sphere
    cam = syncdreamer_cameras(256)[view]
    rgba = ClassicMultiview().generate(processed, [cam], proxy=sphere_proxy)[0]
    res = ClassicDepth.from_settings(None).estimate(rgba, cam, processed, proxy=sphere_proxy)
    assert isinstance(res, DepthResult)
    assert res.depth.shape == (256, 256) and res.depth.dtype == np.float32
    truth = ray_sphere_depth(cam, obj.offset, 0.45 * obj.scale)
    both = (res.depth > 0) & (truth > 0)
    err = np.abs(res.depth[both] - truth[both])
    iou = S.silhouette_iou(res.depth > 0, truth > 0)
    print(f"view {view}: depth |err| median {np.median(err):.4f} p90 {np.percentile(err, 90):.4f}"
          f" (scene units, sphere radius {0.45 * obj.scale:.3f}); IoU {iou:.3f};"
          f" confidence {res.confidence:.3f}")
    assert iou > 0.95
    assert np.median(err) < 0.01 and np.percentile(err, 90) < 0.03
    assert res.confidence > 0.95
    assert (res.depth[rgba[..., 3] <= 0.5] == 0).all()  # 0 where there is no object


def test_confidence_drops_for_a_view_that_disagrees(sphere, sphere_proxy) -> None:
    _, processed = sphere
    cam = orbit_camera(30.0, 90.0, size=128)
    view = ClassicMultiview().generate(processed, [cam], proxy=sphere_proxy)[0]
    shifted = np.zeros_like(view)
    shifted[:, 30:] = view[:, :-30]  # a generated view that is 30 px off
    good = ClassicDepth().estimate(view, cam, processed, proxy=sphere_proxy)
    bad = ClassicDepth().estimate(shifted, cam, processed, proxy=sphere_proxy)
    assert good.confidence > 0.95 > 0.8 > bad.confidence
    # every pixel of the view's own silhouette gets a depth, nothing outside it
    assert np.array_equal(bad.depth > 0, shifted[..., 3] > 0.5)


def test_depth_follows_view_size(sphere, sphere_proxy) -> None:
    _, processed = sphere
    cam = orbit_camera(30.0, 45.0, size=256)
    view = ClassicMultiview().generate(processed, [cam.resized(128)], proxy=sphere_proxy)[0]
    res = ClassicDepth().estimate(view, cam, processed, proxy=sphere_proxy)  # camera rescaled to the view
    assert res.depth.shape == (128, 128)


def test_heatmap_and_stats() -> None:
    yy, xx = np.mgrid[0:64, 0:80]
    depth = np.where((xx - 40) ** 2 + (yy - 32) ** 2 < 20**2, 1.0 + xx / 80.0, 0.0).astype(np.float32)
    hm = depth_heatmap(depth)
    assert hm.shape == (64, 80, 3) and hm.dtype == np.uint8
    assert (hm[depth == 0] == 0).all()  # background black
    assert (hm[depth > 0].max(axis=1) > 0).all()
    near = hm[32, 21].astype(int)
    far = hm[32, 59].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # near = warm (red), far = cool (blue)
    lo, hi, mean = depth_stats(depth)
    fg = depth[depth > 0]
    assert (lo, hi) == (pytest.approx(fg.min()), pytest.approx(fg.max()))
    assert mean == pytest.approx(fg.mean(), rel=1e-6)
    assert depth_stats(np.zeros((4, 4))) == (0.0, 0.0, 0.0)
    assert (depth_heatmap(np.zeros((4, 4))) == 0).all()
    flat = np.full((4, 4), 1.5, np.float32)
    assert depth_stats(flat) == (1.5, 1.5, 1.5)
    assert depth_heatmap(flat).max() > 0
