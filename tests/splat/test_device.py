"""Device selection for splat work, and the gsplat call contract (no GPU here).

``splat_device`` is pure logic over "is a CUDA GPU visible" and "does gsplat import"; both
are patched to exercise every branch. The gsplat wrapper is checked against a stand-in of
``gsplat.rasterization`` that enforces the argument shapes its source asserts (v1.4-1.5:
means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], SH colours [N,K,3] with
(sh_degree+1)^2 <= K, viewmats [C,4,4], Ks [C,3,3]) and returns what it documents
(premultiplied colours with expected depth as the last channel for "RGB+ED", alphas
[C,H,W,1], meta["radii"] [C,N,2] int32), computed with our pure-PyTorch rasterizer.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from glimpse3d.splat import device as dev
from glimpse3d.splat.cameras import Camera, orbit_camera, syncdreamer_cameras
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.rasterizer import render, resolve_backend
from glimpse3d.splat.training import TrainConfig, train


@pytest.fixture
def fake_hardware(monkeypatch):
    """``fake_hardware(cuda=True, gsplat=False)`` sets what splat_device sees."""

    def set_(cuda: bool, gsplat: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(dev, "gsplat_available", lambda: gsplat)

    return set_


def test_auto_is_cpu_without_a_gpu_here():
    if not torch.cuda.is_available():
        assert dev.splat_device("auto") == torch.device("cpu")
        assert dev.splat_device(None) == torch.device("cpu")
        with pytest.raises(dev.DeviceError, match="no CUDA GPU"):
            dev.splat_device("cuda")
        assert dev.describe(torch.device("cpu")) == "cpu (numba)"


@pytest.mark.parametrize(("cuda", "gsplat", "want"), [
    (True, True, "cuda"), (True, False, "cpu"), (False, True, "cpu"), (False, False, "cpu"),
])
def test_auto_needs_cuda_and_gsplat(fake_hardware, cuda, gsplat, want):
    fake_hardware(cuda, gsplat)
    assert dev.splat_device("auto").type == want
    assert dev.splat_device("cpu").type == "cpu"
    assert dev.splat_device("mps").type == "cpu"  # gsplat is CUDA-only


def test_explicit_choices(fake_hardware):
    fake_hardware(True, False)
    assert dev.splat_device("cuda:1") == torch.device("cuda:1")
    assert dev.splat_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(dev.DeviceError, match="choose one of"):
        dev.splat_device("tpu")


def test_rasterizer_auto_backend_per_device(monkeypatch):
    import glimpse3d.splat.rasterizer as R

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(R, "gsplat_available", lambda: True)
    assert resolve_backend("auto", torch.device("cuda")) == "gsplat"
    monkeypatch.setattr(R, "gsplat_available", lambda: False)
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    assert resolve_backend("auto", torch.device("cpu")) == "fast"


def test_training_reports_its_device_and_returns_cpu_tensors():
    model = GaussianModel.random(40, seed=1)
    cams = syncdreamer_cameras(16)[:2]
    targets = [(c, torch.rand(16, 16, 4)) for c in cams]
    out, stats = train(model, targets, TrainConfig(steps=2, image_size=16, device="cpu"))
    assert stats["device"] == "cpu" and out.device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(dev.DeviceError):
            train(model, targets, TrainConfig(steps=1, image_size=16, device="cuda"))


def _camera_from(viewmat: torch.Tensor, k: torch.Tensor, width: int, height: int) -> Camera:
    k = k.double().numpy()
    return Camera(w2c=viewmat.double().numpy(), fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2],
                  width=width, height=height)


def _rasterization_contract(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                            near_plane=0.01, eps2d=0.3, sh_degree=None, packed=True,
                            render_mode="RGB", rasterize_mode="classic", **_):
    n = means.shape[0]
    assert means.shape == (n, 3) and quats.shape == (n, 4) and scales.shape == (n, 3)
    assert opacities.shape == (n,) and viewmats.shape[-2:] == (4, 4) and Ks.shape[-2:] == (3, 3)
    assert colors.ndim == 3 and colors.shape[0] == n and colors.shape[-1] == 3
    assert sh_degree is not None and (sh_degree + 1) ** 2 <= colors.shape[1]
    assert render_mode == "RGB+ED" and rasterize_mode == "classic" and eps2d == 0.3
    assert all(t.dtype == torch.float32 for t in (means, quats, scales, opacities, colors))
    model = GaussianModel(means=means, log_scales=torch.log(scales), quats=quats,
                          opacity_logits=torch.logit(opacities), sh=colors)
    out = render(model, _camera_from(viewmats[0], Ks[0], width, height), backend="torch",
                 sh_degree=sh_degree)
    rgbd = torch.cat([out.rgb, out.depth[..., None]], -1)[None]
    radii = out.radii.round().to(torch.int32)[None, :, None].expand(1, n, 2)
    return rgbd, out.alpha[None, ..., None], {"radii": radii}


def test_gsplat_wrapper_maps_the_documented_contract(monkeypatch):
    monkeypatch.setitem(sys.modules, "gsplat",
                        types.SimpleNamespace(rasterization=_rasterization_contract))
    from glimpse3d.splat._raster_gsplat import render_gsplat

    model = GaussianModel.random(60, sh_degree=1, seed=3)
    cam = orbit_camera(30.0, 45.0, size=24)
    bg = torch.tensor([0.2, 0.5, 0.9])
    got = render_gsplat(model, cam, bg, 1)
    ref = render(model, cam, background=bg, backend="torch")
    np.testing.assert_allclose(got.rgb.numpy(), ref.rgb.numpy(), atol=1e-5)
    np.testing.assert_allclose(got.alpha.numpy(), ref.alpha.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.depth.numpy(), ref.depth.numpy(), atol=1e-5)
    assert torch.equal(got.visible, ref.radii.round() > 0)
