"""Multiview backends with their own fixed cameras, loaded as published.

Zero123++ v1.2: tiny weights in sudo-ai/zero123plus-v1.2's layout, loaded through
``DiffusionPipeline.from_pretrained(..., custom_pipeline=<dir with pipeline.py>)`` with a
stand-in of sudo-ai/zero123plus-pipeline's pipeline.py (tests/learned/remote_code).
SyncDreamer: a checkout whose generate.py is a stand-in with the real command line,
run as a subprocess with this interpreter as "its own environment".
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from glimpse3d.errors import UserError
from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.syncdreamer import SyncDreamerMultiview, split_strip, syncdreamer_index
from glimpse3d.learned.zero123plus import (
    ZERO123PLUS_EXTRA,
    Zero123PlusMultiview,
    split_grid,
    zero123plus_cameras,
)
from glimpse3d.pipeline.backends import BackendUnavailable, load_backend, multiview_cameras
from glimpse3d.splat.cameras import (
    camera_from_record,
    camera_record,
    matching_distance,
    orbit_camera,
    syncdreamer_cameras,
)


def _zero123plus(make_settings, tiny_dir, pipeline="zero123plus_pipeline", **kw):
    return make_settings(
        multiview_backend="zero123plus", multiview_model=str(tiny_dir("zero123plus")),
        multiview_pipeline=str(tiny_dir(pipeline)), trust_remote_code=True, device="cpu",
        multiview_steps=2, view_size=64, **kw)


def test_zero123plus_rig_known_answers():
    cams = zero123plus_cameras(320, input_elevation=10.0)
    assert len(cams) == 7
    assert (cams[0].elevation, cams[0].azimuth, cams[0].distance) == (10.0, 0.0, 1.5)
    assert [c.azimuth for c in cams[1:]] == [30.0, 90.0, 150.0, 210.0, 270.0, 330.0]
    assert [c.elevation for c in cams[1:]] == [30.0, 0.0, 30.0, 0.0, 30.0, 0.0]
    # 30 degree field of view: focal = 160 / tan(15 deg) at 320 px
    np.testing.assert_allclose(cams[1].fx, 160.0 / np.tan(np.radians(15.0)))
    # the orbit distance keeps the object's apparent size of the 1.5 / 280 px@256 camera
    assert cams[1].distance == pytest.approx(matching_distance(30.0))
    assert 0.5 / (cams[1].distance * np.tan(np.radians(15))) == pytest.approx(
        0.5 / (1.5 * 128 / 280))
    np.testing.assert_allclose(cams[3].center / np.linalg.norm(cams[3].center),
                               [np.cos(np.radians(30)) * np.cos(np.radians(150)),
                                np.cos(np.radians(30)) * np.sin(np.radians(150)),
                                np.sin(np.radians(30))], atol=1e-9)


def test_grid_and_strip_splitting():
    grid = np.zeros((6, 4, 3), np.float32)
    for k in range(6):
        r, c = divmod(k, 2)
        grid[r * 2:(r + 1) * 2, c * 2:(c + 1) * 2] = k
    assert [float(t.mean()) for t in split_grid(grid)] == [0, 1, 2, 3, 4, 5]  # row by row
    strip = np.repeat(np.arange(16, dtype=np.float32), 3)[None, :, None].repeat(3, 0)
    assert [float(v.mean()) for v in split_strip(np.broadcast_to(strip, (3, 48, 3)))] == \
        list(range(16))
    with pytest.raises(BackendUnavailable, match="16 square views"):
        split_strip(np.zeros((4, 60, 3)))


def test_camera_records_round_trip():
    for cam in zero123plus_cameras(64, 20.0) + syncdreamer_cameras(48)[:3]:
        back = camera_from_record(camera_record(cam))
        np.testing.assert_allclose(back.w2c, cam.w2c, atol=1e-12)
        assert (back.fx, back.cx, back.width) == (cam.fx, cam.cx, cam.width)
    legacy = camera_from_record({"elevation": 30.0, "azimuth": 45.0, "fx": None}, size=32)
    np.testing.assert_allclose(legacy.w2c, orbit_camera(30.0, 45.0, 1.5, 32).w2c)


def test_zero123plus_loads_and_generates_its_views(make_settings, tiny_dir, object_rgba):
    settings = _zero123plus(make_settings, tiny_dir, input_elevation=20.0)
    cams = multiview_cameras(settings)
    assert len(cams) == 7 and cams[0].width == 64
    gen = load_backend("multiview", settings)
    assert isinstance(gen, Zero123PlusMultiview) and gen.num_inference_steps == 2
    assert type(gen.pipe).__name__ == "Zero123PlusPipeline"
    assert type(gen.pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert gen.pipe.scheduler.config.timestep_spacing == "trailing"  # as the model card sets
    views = gen.generate(object_rgba, cams, seed=3)
    assert len(views) == 7 and all(v.shape == (64, 64, 4) for v in views)
    assert all(v.min() >= 0.0 and v.max() <= 1.0 for v in views)
    # known answer: tile k of the pipeline's own 640x960 grid for the same input and seed
    from glimpse3d.learned.common import resize

    grid = gen.run(resize(object_rgba, 320, 320), seed=3)
    assert grid.shape == (960, 640, 3)
    tiles = split_grid(grid)
    np.testing.assert_allclose(views[4][..., :3], resize(tiles[3], 64, 64), atol=1e-5)
    np.testing.assert_allclose(views[0], np.clip(resize(object_rgba, 64, 64), 0, 1), atol=1e-6)
    other = gen.run(resize(object_rgba, 320, 320), seed=4)
    assert np.abs(other - grid).max() > 1e-3
    with pytest.raises(UserError, match="7 fixed views"):
        gen.generate(object_rgba, syncdreamer_cameras(64), seed=0)


def test_zero123plus_needs_trust_and_names_missing_packages(make_settings, tiny_dir):
    with pytest.raises(BackendUnavailable, match="GLIMPSE3D_TRUST_REMOTE_CODE=1"):
        load_backend("multiview", _zero123plus(make_settings, tiny_dir).model_copy(
            update={"trust_remote_code": False}))
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(BackendUnavailable) as info:
            load_backend("multiview", _zero123plus(
                make_settings, tiny_dir, pipeline="zero123plus_pipeline_full_imports"))
        msg = str(info.value)
        assert "\n" not in msg and "torchvision" in msg and ZERO123PLUS_EXTRA in msg


def test_zero123plus_missing_weights(make_settings):
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_MULTIVIEW_MODEL="):
        load_backend("multiview", make_settings(multiview_backend="zero123plus",
                                                trust_remote_code=True))


# ------------------------------------------------------------------ SyncDreamer

def _syncdreamer(make_settings, tiny_dir, **kw):
    return make_settings(multiview_backend="syncdreamer", syncdreamer_dir=str(tiny_dir("syncdreamer")),
                         syncdreamer_python=sys.executable, view_size=64, **kw)


@pytest.mark.parametrize("elevation", [30.0, 10.0])
def test_syncdreamer_subprocess(make_settings, tiny_dir, object_rgba, elevation, monkeypatch):
    settings = _syncdreamer(make_settings, tiny_dir, input_elevation=elevation)
    gen = load_backend("multiview", settings)
    assert isinstance(gen, SyncDreamerMultiview)
    cams = multiview_cameras(settings)
    assert len(cams) == 16 and [c.elevation for c in cams] == [30.0] * 16
    seen = {}
    run = gen.run

    def spy(rgba, seed=0):
        seen["shape"] = rgba.shape
        return run(rgba, seed)

    monkeypatch.setattr(gen, "run", spy)
    order = [0, 5, 2, 15, 8]
    views = gen.generate(object_rgba, [cams[i] for i in order], seed=9)
    assert seen["shape"] == (256, 256, 4)
    assert len(views) == 5 and all(v.shape == (64, 64, 4) for v in views)
    for v, k in zip(views, order, strict=True):
        if k == 0 and elevation == 30.0:
            np.testing.assert_allclose(v[..., 3].max(), 1.0)  # the input photo itself
            continue
        centre = v[28:36, 28:36, :3]
        np.testing.assert_allclose(centre, int(255 * (k + 2) / 20) / 255, atol=2e-3)
        assert v[2, 2, 3] == 0.0 and v[32, 32, 3] == 1.0  # white -> transparent


def test_syncdreamer_command_line(make_settings, tiny_dir, tmp_path):
    gen = load_backend("multiview", _syncdreamer(make_settings, tiny_dir, input_elevation=12.5))
    cmd = gen.command(tmp_path / "in.png", tmp_path / "out", seed=4)
    assert cmd[:2] == [sys.executable, "generate.py"]
    flags = dict(zip(cmd[2::2], cmd[3::2], strict=True))
    assert flags["--elevation"] == "12.5" and flags["--seed"] == "4"
    assert flags["--sample_num"] == "1" and flags["--ckpt"].endswith("syncdreamer-pretrain.ckpt")
    rgba = np.zeros((256, 256, 4), np.float32)
    rgba[100:150, 100:150] = 1.0
    gen.run(rgba, seed=4)  # the stand-in accepts exactly these flags


def test_syncdreamer_setup_errors(make_settings, tiny_dir, tmp_path, object_rgba):
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_SYNCDREAMER_DIR"):
        load_backend("multiview", make_settings(multiview_backend="syncdreamer"))
    with pytest.raises(MissingWeightsError, match="no generate.py"):
        load_backend("multiview", make_settings(multiview_backend="syncdreamer",
                                                syncdreamer_dir=str(tmp_path)))
    with pytest.raises(MissingWeightsError, match="syncdreamer-pretrain.ckpt"):
        load_backend("multiview", _syncdreamer(make_settings, tiny_dir).model_copy(
            update={"syncdreamer_checkpoint": str(tmp_path / "none.ckpt")}))
    with pytest.raises(BackendUnavailable, match="not an executable"):
        load_backend("multiview", _syncdreamer(make_settings, tiny_dir).model_copy(
            update={"syncdreamer_python": str(tmp_path / "no-python")}))
    broken = tiny_dir("syncdreamer").parent / "sd-broken"
    broken.mkdir(exist_ok=True)
    (broken / "generate.py").write_text("raise SystemExit('CUDA out of memory')\n")
    (broken / "ckpt").mkdir(exist_ok=True)
    (broken / "ckpt" / "syncdreamer-pretrain.ckpt").write_bytes(b"x")
    gen = load_backend("multiview", _syncdreamer(make_settings, tiny_dir).model_copy(
        update={"syncdreamer_dir": str(broken)}))
    with pytest.raises(BackendUnavailable, match="generate.py failed: CUDA out of memory"):
        gen.generate(object_rgba, syncdreamer_cameras(64))
    cams = syncdreamer_cameras(32)
    assert syncdreamer_index(cams[3], cams[1]) == 14
    with pytest.raises(UserError, match="16 fixed views"):
        syncdreamer_index(cams[0], orbit_camera(30.0, 10.0, 1.5, 32))


def test_syncdreamer_records_its_arguments(make_settings, tiny_dir, tmp_path):
    gen = load_backend("multiview", _syncdreamer(make_settings, tiny_dir, input_elevation=5.0))
    out = tmp_path / "o"
    import subprocess

    from PIL import Image

    Image.fromarray(np.zeros((256, 256, 4), np.uint8), "RGBA").save(tmp_path / "i.png")
    subprocess.run(gen.command(tmp_path / "i.png", out, seed=2), cwd=gen.install.checkout,
                   check=True)
    args = json.loads((out / "args.json").read_text())
    assert args["elevation"] == 5.0 and args["seed"] == 2 and args["crop_size"] == 200
    assert args["cfg_scale"] == 2.0 and args["sample_num"] == 1
