"""TransformersDepth from tiny DPT / Depth Anything checkpoints, and the metric fit."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.errors import UserError
from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.depth import TransformersDepth, fit_metric_depth, proxy_depth
from glimpse3d.pipeline.backends import DepthResult, load_backend
from glimpse3d.pipeline.proxy import build_proxy
from glimpse3d.pipeline.runner import PipelineRunner
from glimpse3d.splat.cameras import orbit_camera, syncdreamer_cameras


def _sphere_depth(cam, radius=0.5):
    """Ray-cast z (0 = miss) of a sphere at the origin seen by ``cam``."""
    u, v = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    d = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)
    dn = d / np.linalg.norm(d, axis=-1, keepdims=True)
    c = cam.w2c[:3, 3]  # the origin in camera space
    b = dn @ c
    disc = b**2 - (c @ c - radius**2)
    hit = disc > 0
    t = b - np.sqrt(np.maximum(disc, 0))
    return np.where(hit, t * dn[..., 2], 0.0), hit


def test_fit_from_silhouette_recovers_sphere():
    cam = syncdreamer_cameras(64)[5]
    z, hit = _sphere_depth(cam)
    disp = np.where(hit, 3.0 / np.maximum(z, 1e-6) + 7.0, 0.1)  # affine-invariant disparity
    fit = fit_metric_depth(disp, hit.astype(np.float32), cam)
    err = np.abs(fit.depth[hit] - z[hit])
    assert err.mean() < 0.03 and err.max() < 0.1
    assert (fit.depth[~hit] == 0).all()
    assert fit.confidence > 0.9


def test_fit_to_reference_is_exact_for_affine_disparity():
    cam = orbit_camera(30.0, 45.0, 1.5, 48)
    z, hit = _sphere_depth(cam)
    disp = np.where(hit, 2.0 / np.maximum(z, 1e-6) - 0.3, 0.0)
    fit = fit_metric_depth(disp, hit.astype(np.float32), cam, reference=z)
    np.testing.assert_allclose(fit.depth[hit], z[hit], atol=1e-5)
    assert fit.scale == pytest.approx(0.5) and fit.shift == pytest.approx(0.15)
    assert fit.confidence == pytest.approx(1.0, abs=1e-6)


def test_fit_metric_prediction_and_flat_prediction():
    cam = syncdreamer_cameras(64)[0]
    z, hit = _sphere_depth(cam)
    fit = fit_metric_depth(np.where(hit, 4.0 * z, 9.0), hit.astype(np.float32), cam, inverse=False)
    assert np.abs(fit.depth[hit] - z[hit]).mean() < 0.03
    flat = fit_metric_depth(np.ones_like(z), hit.astype(np.float32), cam)
    assert flat.confidence == 0.0
    assert np.ptp(flat.depth[hit]) == 0 and 1.0 < flat.depth[hit][0] < 1.5
    empty = fit_metric_depth(np.ones_like(z), np.zeros_like(z), cam)
    assert (empty.depth == 0).all() and empty.confidence == 0.0


@pytest.mark.parametrize("arch", ["dpt", "depth_anything"])
def test_backend_from_tiny_checkpoint(arch, tiny_dir, make_settings, object_rgba):
    path = tiny_dir(arch)
    settings = make_settings(depth_backend="transformers", depth_model=str(path), device="cpu")
    backend = load_backend("depth", settings)
    assert isinstance(backend, TransformersDepth) and backend.name == "transformers"
    assert backend.inverse  # relative checkpoints predict disparity
    cam = syncdreamer_cameras(64)[2]
    assert backend.uses_proxy  # the runner passes its proxy in the default alignment
    shape = build_proxy(object_rgba)  # the run's proxy, as the runner builds it
    res = backend.estimate(object_rgba, cam, object_rgba, proxy=shape)
    assert isinstance(res, DepthResult)
    assert res.depth.shape == (64, 64) and res.depth.dtype == np.float32
    fg = object_rgba[..., 3] > 0.5
    assert (res.depth[~fg] == 0).all()
    assert 0.5 < res.depth[fg].min() <= res.depth[fg].max() < 2.5
    assert np.ptp(res.depth[fg]) > 0  # the tiny model's prediction varies
    assert 0.0 <= res.confidence <= 1.0
    # raw prediction at the input size
    assert backend.predict(object_rgba[..., :3]).shape == (64, 64)
    # the same (class, model, device) is loaded once
    assert load_backend("depth", settings) is backend
    # default alignment: the classic proxy rendered from the same camera (known answer)
    assert backend.align == "proxy"
    proxy = proxy_depth(shape, cam)
    assert proxy is not None and proxy.max() > 0
    pred = backend.predict(object_rgba[..., :3] * object_rgba[..., 3:] + 1 - object_rgba[..., 3:])
    expected = fit_metric_depth(pred, object_rgba[..., 3], cam, reference=proxy)
    np.testing.assert_allclose(res.depth, expected.depth, rtol=1e-5, atol=1e-6)
    assert res.confidence == pytest.approx(expected.confidence)
    # an explicit reference depth wins
    z, _ = _sphere_depth(cam)
    aligned = backend.estimate(object_rgba, cam, object_rgba, proxy=shape, reference_depth=z)
    assert aligned.depth.shape == (64, 64) and (aligned.depth[~fg] == 0).all()
    ref_fit = fit_metric_depth(pred, object_rgba[..., 3], cam, reference=z)
    np.testing.assert_allclose(aligned.depth, ref_fit.depth, rtol=1e-5, atol=1e-6)


def test_silhouette_alignment_setting(tiny_dir, make_settings, object_rgba, monkeypatch):
    monkeypatch.setenv("GLIMPSE3D_DEPTH_ALIGN", "silhouette")
    backend = load_backend("depth", make_settings(
        depth_backend="transformers", depth_model=str(tiny_dir("dpt")), device="cpu"))
    assert backend.align == "silhouette"
    cam = syncdreamer_cameras(64)[4]
    assert not backend.uses_proxy
    res = backend.estimate(object_rgba, cam, object_rgba)
    pred = backend.predict(object_rgba[..., :3] * object_rgba[..., 3:] + 1 - object_rgba[..., 3:])
    expected = fit_metric_depth(pred, object_rgba[..., 3], cam)
    np.testing.assert_allclose(res.depth, expected.depth, rtol=1e-5, atol=1e-6)
    # the disc's silhouette (half-extent h px at f=70) -> a sphere whose nearest point is at
    # 1.5 - 1.5 sin(t) and rim at 1.5 cos^2(t), t = atan(h/f): the 2nd/98th depth percentiles
    fg = object_rgba[..., 3] > 0.5
    ys, xs = np.nonzero(fg)
    t = np.arctan(0.5 * max(np.ptp(xs) + 1, np.ptp(ys) + 1) / cam.fx)
    lo, hi = np.percentile(res.depth[fg], [2, 98])
    assert lo == pytest.approx(1.5 - 1.5 * np.sin(t), abs=0.01)
    assert hi == pytest.approx(1.5 * np.cos(t) ** 2, abs=0.01)
    monkeypatch.setenv("GLIMPSE3D_DEPTH_ALIGN", "nonsense")
    with pytest.raises(UserError, match="depth_align"):
        load_backend("depth", make_settings(
            depth_backend="transformers", depth_model=str(tiny_dir("dpt")), device="cpu"))


def test_proxy_shape_setting_reaches_the_alignment(tiny_dir, make_settings, object_rgba, sqlite_url):
    from glimpse3d.db.repository import open_repository

    repo = open_repository(sqlite_url)
    pid = repo.create_project("disc")["id"]  # processed before its camera was recorded

    def settings(**kw):
        return make_settings(depth_backend="transformers", depth_model=str(tiny_dir("dpt")),
                             device="cpu", **kw)

    def backend(**kw):
        return load_backend("depth", settings(**kw))

    # the alignment proxy is the run's: the runner builds it with ``proxy_shape``
    runs = {prior: PipelineRunner(repo, None, settings(proxy_shape=prior)) for prior in ("auto", "inflated")}
    shapes = {prior: run._proxy(pid, object_rgba).shape for prior, run in runs.items()}
    assert (shapes["auto"], shapes["inflated"]) == ("rotational", "inflated")
    default, prism = backend(), backend(proxy_shape="prism")
    assert prism.model is default.model  # same cached weights, another alignment proxy
    repo.close()


def test_project_override(tiny_dir, make_settings, object_rgba):
    settings = make_settings(device="cpu")  # classic by default
    backend = load_backend(
        "depth", settings,
        overrides={"depth_backend": "transformers", "depth_model": str(tiny_dir("dpt"))},
    )
    assert isinstance(backend, TransformersDepth)
    assert backend.estimate(object_rgba, syncdreamer_cameras(64)[0], object_rgba).depth.shape == (64, 64)


def test_missing_weights(make_settings, tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        load_backend("depth", make_settings(depth_backend="transformers", depth_model=None))
    assert "GLIMPSE3D_DEPTH_MODEL=" in str(info.value)
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_DEPTH_MODEL"):
        load_backend("depth", make_settings(depth_backend="transformers",
                                            depth_model="Intel/dpt-hybrid-midas"))
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_DEPTH_MODEL"):
        load_backend("depth", make_settings(depth_backend="transformers",
                                            depth_model=str(tmp_path / "missing")))
