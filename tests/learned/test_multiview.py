"""Zero123Multiview from a tiny checkpoint; SyncDreamerAdapter with a stand-in module."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from glimpse3d.errors import UserError
from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.multiview import (
    SyncDreamerAdapter,
    Zero123Multiview,
    alpha_from_white,
    relative_pose,
    syncdreamer_index,
)
from glimpse3d.pipeline.backends import BackendUnavailable, load_backend
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


# ------------------------------------------------------------------ SyncDreamer

def test_syncdreamer_not_installed(make_settings):
    with pytest.raises(BackendUnavailable) as info:
        load_backend("multiview", make_settings(multiview_backend="syncdreamer",
                                                multiview_model="no_such_syncdreamer_mod"))
    msg = str(info.value)
    assert "GLIMPSE3D_MULTIVIEW_MODEL" in msg and "liuyuan-pal/SyncDreamer" in msg


def _fake_syncdreamer(monkeypatch, fmt="torch"):
    calls = {}

    def generate_views(image, seed=0, elevation=30.0):
        calls.update(shape=image.shape, seed=seed, elevation=elevation)
        # view k is a flat grey of level k/15 in SyncDreamer's [-1, 1] range
        levels = torch.arange(16, dtype=torch.float32) / 15.0
        out = (levels * 2 - 1).view(16, 1, 1, 1).expand(16, 3, 32, 32).clone()
        if fmt == "numpy_uint8":
            return (levels.numpy()[:, None, None, None] * 255 + 0.5).astype(np.uint8) \
                * np.ones((16, 32, 32, 3), np.uint8)
        return out

    mod = types.ModuleType("fake_syncdreamer")
    mod.generate_views = generate_views
    monkeypatch.setitem(__import__("sys").modules, "fake_syncdreamer", mod)
    return calls


@pytest.mark.parametrize("fmt", ["torch", "numpy_uint8"])
def test_syncdreamer_mapping(monkeypatch, make_settings, object_rgba, fmt):
    calls = _fake_syncdreamer(monkeypatch, fmt)
    gen = load_backend("multiview", make_settings(multiview_backend="syncdreamer",
                                                  multiview_model="fake_syncdreamer"))
    assert isinstance(gen, SyncDreamerAdapter)
    cams = syncdreamer_cameras(40)
    order = [0, 5, 2, 15, 8]
    views = gen.generate(object_rgba, [cams[i] for i in order], seed=3)
    assert calls == {"shape": (256, 256, 4), "seed": 3, "elevation": 30.0}
    assert len(views) == 5 and all(v.shape == (40, 40, 4) for v in views)
    for v, k in zip(views[1:], order[1:], strict=True):
        np.testing.assert_allclose(v[..., :3], k / 15.0, atol=2.5e-3)
    np.testing.assert_allclose(views[0][..., 3].max(), 1.0)  # view 0 = the input photo


def test_syncdreamer_rejects_other_cameras(monkeypatch, make_settings, object_rgba):
    _fake_syncdreamer(monkeypatch)
    gen = load_backend("multiview", make_settings(multiview_backend="syncdreamer",
                                                  multiview_model="fake_syncdreamer:generate_views"))
    cams = syncdreamer_cameras(32)
    assert syncdreamer_index(cams[3], cams[1]) == 14
    with pytest.raises(UserError, match="16 fixed views"):
        gen.generate(object_rgba, [cams[0], orbit_camera(30.0, 10.0, 1.5, 32)])
    with pytest.raises(UserError, match="16 fixed views"):
        gen.generate(object_rgba, [cams[0], orbit_camera(0.0, 22.5, 1.5, 32)])


def test_syncdreamer_module_without_function(monkeypatch, make_settings):
    monkeypatch.setitem(__import__("sys").modules, "empty_sd", types.ModuleType("empty_sd"))
    with pytest.raises(BackendUnavailable, match="generate_views"):
        load_backend("multiview", make_settings(multiview_backend="syncdreamer",
                                                multiview_model="empty_sd"))
