"""Zero123Multiview from a tiny checkpoint; alpha recovery of generated views."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.multiview import (
    Zero123Multiview,
    alpha_from_background,
    alpha_from_white,
    relative_pose,
)
from glimpse3d.pipeline.backends import load_backend
from glimpse3d.splat.cameras import Camera, orbit_camera, syncdreamer_cameras


def test_relative_pose_known_answers():
    cams = syncdreamer_cameras(64)
    np.testing.assert_allclose(relative_pose(cams[0], cams[0]), [0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(relative_pose(cams[0], cams[4]), [0, 1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(relative_pose(cams[0], cams[8]), [0, 0, -1, 0], atol=1e-6)
    np.testing.assert_allclose(relative_pose(cams[4], cams[2]),
                               [0, -math.sin(math.radians(45)), math.cos(math.radians(45)), 0],
                               atol=1e-6)
    # higher camera -> negative polar delta (Zero123's polar angle is measured from +Z)
    high = orbit_camera(40.0, 0.0, 2.0, 64)
    np.testing.assert_allclose(relative_pose(cams[0], high), [-math.radians(10), 0, 1, 0.5],
                               atol=1e-6)
    # angles are recovered from the pose when a camera does not carry them
    bare = Camera(w2c=cams[3].w2c, fx=70, fy=70, cx=32, cy=32, width=64, height=64)
    np.testing.assert_allclose(relative_pose(cams[0], bare), relative_pose(cams[0], cams[3]),
                               atol=1e-6)


def test_alpha_from_white():
    rgb = np.ones((8, 8, 3), np.float32)
    rgb[2:6, 2:6] = [0.2, 0.5, 0.9]
    a = alpha_from_white(rgb)
    assert (a[2:6, 2:6] == 1).all() and a[0, 0] == 0 and a[7, 7] == 0


def test_alpha_from_estimated_background():
    rgb = np.full((10, 10, 3), 0.5, np.float32)  # Zero123++-style grey background
    rgb[3:7, 3:7] = [0.9, 0.2, 0.1]
    a = alpha_from_background(rgb)
    assert (a[3:7, 3:7] == 1).all() and a[0, 0] == 0 and a[9, 5] == 0


def test_zero123_from_tiny_checkpoint(tiny_dir, make_settings, object_rgba):
    settings = make_settings(multiview_backend="diffusers",
                             multiview_model=str(tiny_dir("zero123")), device="cpu")
    gen = load_backend("multiview", settings)
    assert isinstance(gen, Zero123Multiview) and gen.name == "diffusers"
    assert gen.native_size == 32
    gen.num_inference_steps = 3
    cams = syncdreamer_cameras(48)
    views = gen.generate(object_rgba, cams, seed=7)
    assert len(views) == 16
    for v in views:
        assert v.shape == (48, 48, 4) and v.dtype == np.float32
        assert v.min() >= 0.0 and v.max() <= 1.0
    # view 0 is the input itself (resized to the camera)
    from glimpse3d.learned.common import resize

    np.testing.assert_allclose(views[0], np.clip(resize(object_rgba, 48), 0, 1), atol=1e-6)
    again = gen.generate(object_rgba, cams[:3], seed=7)
    np.testing.assert_allclose(again[1], views[1], atol=1e-4)  # batch size differs
    other = gen.generate(object_rgba, cams[:3], seed=8)
    assert np.abs(other[1] - views[1]).max() > 1e-3


def test_zero123_pose_reaches_the_unet(tiny_dir, make_settings, object_rgba):
    gen = load_backend("multiview", make_settings(
        multiview_backend="diffusers", multiview_model=str(tiny_dir("zero123")), device="cpu"))
    gen.num_inference_steps = 2
    rgb = np.ones((32, 32, 3), np.float32) * 0.5
    cams = syncdreamer_cameras(32)
    a = gen.sample(rgb, relative_pose(cams[0], cams[4])[None], seed=0)
    b = gen.sample(rgb, relative_pose(cams[0], cams[8])[None], seed=0)
    assert a.shape == (1, 32, 32, 3)
    # same seed and input, only the pose differs -> a different view
    assert np.abs(a - b).max() > 1e-4
    np.testing.assert_array_equal(a, gen.sample(rgb, relative_pose(cams[0], cams[4])[None], seed=0))


def test_zero123_missing_weights(make_settings, tmp_path):
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_MULTIVIEW_MODEL="):
        load_backend("multiview", make_settings(multiview_backend="diffusers"))
    d = tmp_path / "not-zero123"
    d.mkdir()
    (d / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        load_backend("multiview", make_settings(multiview_backend="diffusers", multiview_model=str(d)))
