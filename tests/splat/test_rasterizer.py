"""Rasterizer tests: a plain per-pixel brute-force reference, analytic single-gaussian cases,
SH view dependence, culling, and the fast (numba) kernel against the torch reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glimpse3d.splat.cameras import Camera, orbit_camera, syncdreamer_cameras
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.rasterizer import RasterizerError, RenderOutput, render, resolve_backend
from glimpse3d.splat.sh import SH_C0, SH_C1

FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh")


# ------------------------------------------------------------------ brute-force reference
def _ref_project_one(model: GaussianModel, i: int, cam: Camera, degree: int):
    """Plain per-gaussian 3DGS projection (written independently of the rasterizer)."""
    dtype = model.means.dtype
    w2c = torch.tensor(cam.w2c, dtype=dtype)
    p = w2c[:3, :3] @ model.means[i] + w2c[:3, 3]
    x, y, z = p[0], p[1], p[2]
    if float(z.detach()) <= 0.01:
        return None
    q = model.quats[i] / torch.linalg.norm(model.quats[i])
    w, qx, qy, qz = q[0], q[1], q[2], q[3]
    rot = torch.stack(
        [
            torch.stack([1 - 2 * (qy**2 + qz**2), 2 * (qx * qy - w * qz), 2 * (qx * qz + w * qy)]),
            torch.stack([2 * (qx * qy + w * qz), 1 - 2 * (qx**2 + qz**2), 2 * (qy * qz - w * qx)]),
            torch.stack([2 * (qx * qz - w * qy), 2 * (qy * qz + w * qx), 1 - 2 * (qx**2 + qy**2)]),
        ]
    )
    m = rot @ torch.diag(torch.exp(model.log_scales[i]))
    sigma = w2c[:3, :3] @ (m @ m.T) @ w2c[:3, :3].T
    fx, fy = cam.fx, cam.fy
    tanx, tany = 0.5 * cam.width / fx, 0.5 * cam.height / fy
    tx = z * torch.clamp(x / z, -(cam.cx / fx + 0.3 * tanx), (cam.width - cam.cx) / fx + 0.3 * tanx)
    ty = z * torch.clamp(y / z, -(cam.cy / fy + 0.3 * tany), (cam.height - cam.cy) / fy + 0.3 * tany)
    zero = torch.zeros((), dtype=dtype)
    jac = torch.stack(
        [torch.stack([fx / z, zero, -fx * tx / z**2]), torch.stack([zero, fy / z, -fy * ty / z**2])]
    )
    cov = jac @ sigma @ jac.T + 0.3 * torch.eye(2, dtype=dtype)
    conic = torch.linalg.inv(cov)
    det = torch.linalg.det(cov)
    mid = 0.5 * (cov[0, 0] + cov[1, 1])
    mid, det = float(mid.detach()), float(det.detach())
    radius = 3.0 * math.sqrt(mid + math.sqrt(max(0.1, mid**2 - det)))
    uv = torch.stack([fx * x / z + cam.cx, fy * y / z + cam.cy])
    # colour from SH, written out term by term
    d = model.means[i] - torch.tensor(cam.center, dtype=dtype)
    d = d / torch.linalg.norm(d)
    sh = model.sh[i]
    col = SH_C0 * sh[0]
    if degree >= 1:
        col = col - SH_C1 * d[1] * sh[1] + SH_C1 * d[2] * sh[2] - SH_C1 * d[0] * sh[3]
    if degree >= 2:
        dx, dy, dz = d[0], d[1], d[2]
        col = (
            col
            + 1.0925484305920792 * dx * dy * sh[4]
            - 1.0925484305920792 * dy * dz * sh[5]
            + 0.31539156525252005 * (2 * dz * dz - dx * dx - dy * dy) * sh[6]
            - 1.0925484305920792 * dx * dz * sh[7]
            + 0.5462742152960396 * (dx * dx - dy * dy) * sh[8]
        )
    col = torch.clamp(col + 0.5, min=0.0)
    opacity = torch.sigmoid(model.opacity_logits[i])
    return dict(uv=uv, conic=conic, radius=radius, z=z, color=col, opacity=opacity)


def brute_force_render(model: GaussianModel, cam: Camera, background=None, degree: int | None = None):
    """Loop over every pixel and every gaussian (sorted by depth): plain 3DGS compositing."""
    degree = model.sh_degree if degree is None else degree
    dtype = model.means.dtype
    projs = [_ref_project_one(model, i, cam, degree) for i in range(len(model))]
    order = sorted([i for i, p in enumerate(projs) if p is not None], key=lambda i: float(projs[i]["z"].detach()))
    bg = torch.zeros(3, dtype=dtype) if background is None else background
    rgb_rows, a_rows, d_rows = [], [], []
    for py in range(cam.height):
        rgb_row, a_row, d_row = [], [], []
        for px in range(cam.width):
            t = torch.ones((), dtype=dtype)
            color = torch.zeros(3, dtype=dtype)
            acc = torch.zeros((), dtype=dtype)
            dep = torch.zeros((), dtype=dtype)
            for i in order:
                p = projs[i]
                dxy = torch.stack([px + 0.5 - p["uv"][0], py + 0.5 - p["uv"][1]])
                if abs(float(dxy[0].detach())) > p["radius"] or abs(float(dxy[1].detach())) > p["radius"]:
                    continue  # outside the square 3-sigma box
                alpha = torch.clamp(p["opacity"] * torch.exp(-0.5 * dxy @ p["conic"] @ dxy), max=0.99)
                if float(alpha.detach()) < 1.0 / 255.0:
                    continue
                if float((t * (1 - alpha)).detach()) < 1e-4:
                    break
                w = alpha * t
                color = color + w * p["color"]
                acc = acc + w
                dep = dep + w * p["z"]
                t = t * (1 - alpha)
            rgb_row.append(color + (1 - acc) * bg)
            a_row.append(acc)
            d_row.append(dep / acc if float(acc.detach()) > 1e-6 else torch.zeros((), dtype=dtype))
        rgb_rows.append(torch.stack(rgb_row))
        a_rows.append(torch.stack(a_row))
        d_rows.append(torch.stack(d_row))
    return torch.stack(rgb_rows), torch.stack(a_rows), torch.stack(d_rows)


def _scene(
    n: int = 12, seed: int = 3, degree: int = 2, dtype=torch.float32, anisotropic: bool = False
) -> GaussianModel:
    m = GaussianModel.random(n, seed=seed, radius=0.35, sh_degree=degree, scale=0.06)
    if anisotropic:  # needle-like splats, some nearly transparent (opacity < 1/255 for a few)
        gen = torch.Generator().manual_seed(seed + 100)
        m.log_scales = m.log_scales + 1.2 * torch.randn(n, 3, generator=gen)
        m.opacity_logits = m.opacity_logits - 3.0 * torch.rand(n, generator=gen) ** 2 * 3
    m = m.map(lambda t: t.to(dtype))
    for t in m.tensors().values():
        t.requires_grad_(True)
    return m


def _loss(rgb, alpha, depth, seed=0):
    g = torch.Generator().manual_seed(seed)
    w1 = torch.rand(rgb.shape, generator=g, dtype=rgb.dtype)
    w2 = torch.rand(alpha.shape, generator=g, dtype=rgb.dtype)
    w3 = torch.rand(depth.shape, generator=g, dtype=rgb.dtype)
    return (rgb * w1).sum() + (alpha * w2).sum() + 0.3 * (depth * w3).sum()


def _grads(model, out):
    for t in model.tensors().values():
        t.grad = None
    _loss(*out).backward()
    return {k: getattr(model, k).grad.clone() for k in FIELDS}


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("anisotropic", [False, True])
@pytest.mark.parametrize("backend", ["torch", "fast"])
def test_matches_brute_force_values_and_grads(backend, anisotropic):
    dtype = torch.float64 if backend == "torch" else torch.float32
    model = _scene(n=14, seed=3, dtype=dtype, anisotropic=anisotropic)
    cam = orbit_camera(30.0, 40.0, size=24, height=20)  # non-square catches x/y swaps
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=model.means.dtype)
    out = render(model, cam, background=bg, backend=backend)
    assert isinstance(out, RenderOutput)
    assert out.rgb.shape == (20, 24, 3) and out.alpha.shape == (20, 24) and out.depth.shape == (20, 24)
    ref = brute_force_render(model, cam, background=bg)
    tol = 1e-9 if backend == "torch" else 2e-5
    assert out.alpha.max() > 0.5  # the scene actually covers pixels
    for got, want in zip((out.rgb, out.alpha, out.depth), ref, strict=True):
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    g_out = _grads(model, (out.rgb, out.alpha, out.depth))
    g_ref = _grads(model, ref)
    for k in FIELDS:
        scale = g_ref[k].abs().max().item() + 1e-12
        torch.testing.assert_close(g_out[k], g_ref[k], atol=(1e-8 if backend == "torch" else 2e-4) * scale, rtol=1e-3)


def test_gradcheck_float64_torch_path():
    base = _scene(n=4, seed=7, degree=1, dtype=torch.float64)
    cam = orbit_camera(30.0, 10.0, size=10)
    names = list(FIELDS)

    def fn(*tensors):
        m = GaussianModel(**dict(zip(names, tensors, strict=True)))
        out = render(m, cam, background=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64), backend="torch")
        return out.rgb, out.alpha, out.depth

    inputs = tuple(getattr(base, k).detach().clone().requires_grad_(True) for k in names)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "fast"])
@pytest.mark.parametrize("size", [32, 33])
def test_single_isotropic_gaussian_analytic(backend, size):
    s, o, rgb = 0.02, 0.8, torch.tensor([[0.9, 0.4, 0.1]])
    model = GaussianModel.from_points(np.zeros((1, 3)), rgb.numpy(), scale=s, opacity=o)
    cam = orbit_camera(30.0, 0.0, size=size)
    out = render(model, cam, backend=backend)
    var = (cam.fx * s / 1.5) ** 2 + 0.3  # isotropic EWA variance in px^2 at distance 1.5
    assert out.visible.tolist() == [True]
    # 3DGS major eigenvalue: mid + sqrt(max(0.1, mid^2 - det)) = var + sqrt(0.1) when isotropic
    assert out.radii[0].item() == pytest.approx(3 * math.sqrt(var + math.sqrt(0.1)), rel=1e-5)
    c = size // 2
    if size % 2:  # mean exactly on the centre of pixel (c, c): peak alpha == opacity
        assert out.alpha[c, c].item() == pytest.approx(o, rel=1e-5)
        assert out.alpha[c, c + 1].item() == pytest.approx(o * math.exp(-0.5 / var), rel=1e-5)
        assert out.alpha.max().item() == pytest.approx(o, rel=1e-5)
    else:  # mean on the corner shared by 4 pixels
        peak = o * math.exp(-0.5 * 0.5 / var)
        for yy, xx in [(c - 1, c - 1), (c - 1, c), (c, c - 1), (c, c)]:
            assert out.alpha[yy, xx].item() == pytest.approx(peak, rel=1e-5)
        assert out.alpha.max().item() == pytest.approx(peak, rel=1e-5)
    torch.testing.assert_close(out.rgb, out.alpha[..., None] * rgb.reshape(1, 1, 3), atol=1e-6, rtol=1e-5)
    covered = out.alpha > 0
    torch.testing.assert_close(out.depth[covered], torch.full_like(out.depth[covered], 1.5), atol=1e-5, rtol=0)
    assert (out.depth[~covered] == 0).all()
    # nothing drawn outside the 3-sigma box, alpha skipped below 1/255
    ys, xs = torch.nonzero(covered, as_tuple=True)
    r = out.radii[0].item()
    assert ((xs + 0.5 - size / 2).abs() <= r).all() and ((ys + 0.5 - size / 2).abs() <= r).all()
    assert out.alpha[covered].min() >= 1 / 255 - 1e-7


@pytest.mark.parametrize("backend", ["torch", "fast"])
def test_depth_is_camera_distance_for_syncdreamer_views(backend):
    model = GaussianModel.from_points(np.zeros((1, 3)), np.full((1, 3), 0.5), scale=0.03, opacity=0.9)
    for cam in syncdreamer_cameras(size=32):
        out = render(model, cam, backend=backend)
        assert out.alpha[15:17, 15:17].min() > 0.5
        torch.testing.assert_close(out.depth[15:17, 15:17], torch.full((2, 2), 1.5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "fast"])
def test_sh_gives_view_dependent_colour(backend):
    model = GaussianModel.from_points(np.zeros((1, 3)), np.full((1, 3), 0.5), scale=0.03, opacity=0.99, sh_degree=1)
    with torch.no_grad():
        model.sh[0, 3] = torch.tensor([0.6, 0.0, -0.6])  # the -C1*x basis
        model.sh[0, 2] = torch.tensor([0.0, 0.4, 0.0])  # the +C1*z basis
    colours = []
    for az in (0.0, 90.0, 180.0):
        cam = orbit_camera(30.0, az, size=33)
        out = render(model, cam, backend=backend)
        d = -cam.center / np.linalg.norm(cam.center)  # camera -> gaussian at the origin
        want = 0.5 - SH_C1 * d[0] * np.array([0.6, 0.0, -0.6]) + SH_C1 * d[2] * np.array([0.0, 0.4, 0.0])
        got = (out.rgb[16, 16] / out.alpha[16, 16]).detach().numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
        colours.append(got)
    assert abs(colours[0][0] - colours[2][0]) > 0.5  # red flips between front and back
    # sh_degree=0 ignores the higher bands
    out0 = render(model, orbit_camera(30.0, 0.0, size=33), backend=backend, sh_degree=0)
    np.testing.assert_allclose((out0.rgb[16, 16] / out0.alpha[16, 16]).numpy(), [0.5, 0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "fast"])
def test_culling_visible_radii_and_finite_grads(backend):
    cam = orbit_camera(30.0, 0.0, size=32)
    behind = 2.0 * cam.center  # behind the camera
    offscreen = np.array([0.0, 3.0, 0.0])  # far to the side, outside the image
    pts = np.stack([np.zeros(3), behind, offscreen, cam.center])  # last one: at the camera centre
    model = GaussianModel.from_points(pts, np.full((4, 3), 0.7), scale=0.02, opacity=0.7)
    for t in model.tensors().values():
        t.requires_grad_(True)
    out = render(model, cam, backend=backend)
    assert out.visible.tolist() == [True, False, False, False]
    assert out.radii[0] > 0 and (out.radii[1:] == 0).all()
    _loss(out.rgb, out.alpha, out.depth).backward()
    for k in FIELDS:
        g = getattr(model, k).grad
        assert torch.isfinite(g).all(), k
        assert (g[1:] == 0).all(), k  # culled gaussians get no gradient
    assert model.means.grad[0].abs().sum() > 0


def test_background_and_empty_model():
    cam = orbit_camera(30.0, 0.0, size=16)
    empty = GaussianModel.random(0)
    bg = torch.tensor([0.1, 0.2, 0.3])
    for backend in ("torch", "fast"):
        out = render(empty, cam, background=bg, backend=backend)
        torch.testing.assert_close(out.rgb, bg.expand(16, 16, 3))
        assert (out.alpha == 0).all() and (out.depth == 0).all()
        assert out.visible.shape == (0,) and out.radii.shape == (0,)
    model = GaussianModel.random(30, seed=1)
    black = render(model, cam, backend="torch")
    grey = render(model, cam, background=bg, backend="torch")
    torch.testing.assert_close(grey.rgb, black.rgb + (1 - black.alpha)[..., None] * bg)
    assert black.alpha.min() >= 0 and black.alpha.max() <= 1


def test_bad_input_gives_clear_errors():
    model = GaussianModel.random(5)
    cam = orbit_camera(30.0, 0.0, size=16)
    with pytest.raises(RasterizerError, match="backend"):
        render(model, cam, backend="opengl")
    with pytest.raises(RasterizerError, match="sh_degree"):
        render(model, cam, sh_degree=2)
    with pytest.raises(RasterizerError, match="background"):
        render(model, cam, background=torch.zeros(4))


def test_auto_backend_is_cpu_kernel_here():
    assert resolve_backend("auto", torch.device("cpu")) == "fast"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
    model, cam = GaussianModel.random(20, seed=4), orbit_camera(30.0, 0.0, size=24)
    auto, fast = render(model, cam), render(model, cam, backend="fast")
    assert torch.equal(auto.rgb, fast.rgb)
    with pytest.raises(RasterizerError, match="gsplat"):  # no CUDA / gsplat here: a clear error
        render(model, cam, backend="gsplat")


def test_concurrent_fast_renders_from_threads_agree():
    from concurrent.futures import ThreadPoolExecutor

    model, cam = GaussianModel.random(300, seed=9), orbit_camera(30.0, 45.0, size=40)
    want = render(model, cam, backend="fast").rgb
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: render(model, cam, backend="fast").rgb, range(8)))
    for got in outs:
        assert torch.equal(got, want)


@pytest.mark.parametrize("degree", [0, 3])
def test_fast_matches_torch_on_a_larger_scene(degree):
    model = GaussianModel.random(400, seed=11, sh_degree=degree, scale=0.04)
    for t in model.tensors().values():
        t.requires_grad_(True)
    cam = orbit_camera(30.0, 67.5, size=72, height=56)  # partial edge tiles on both axes
    bg = torch.tensor([1.0, 1.0, 1.0])
    outs = {b: render(model, cam, background=bg, backend=b) for b in ("torch", "fast")}
    for name in ("rgb", "alpha", "depth"):
        torch.testing.assert_close(getattr(outs["fast"], name), getattr(outs["torch"], name), atol=1e-4, rtol=1e-4)
    assert torch.equal(outs["fast"].visible, outs["torch"].visible)
    grads = {b: _grads(model, (o.rgb, o.alpha, o.depth)) for b, o in outs.items()}
    for k in FIELDS:
        scale = grads["torch"][k].abs().max().item()
        assert scale > 0, k
        torch.testing.assert_close(grads["fast"][k], grads["torch"][k], atol=1e-4 * scale, rtol=1e-3)


def test_fast_matches_torch_at_the_field_of_view_clamp_with_unnormalised_quats():
    """Gaussians beyond 1.3x the field of view (clamped Jacobian) but still touching the image."""
    cam = orbit_camera(30.0, 0.0, size=48, height=40)
    c2w = cam.c2w
    cam_pts = np.array([[0.66 * 1.4, 0.1, 1.4], [-0.7 * 1.5, -0.2, 1.5], [0.1, 0.68 * 1.3, 1.3], [0.0, 0.0, 1.6]])
    world = cam_pts @ c2w[:3, :3].T + c2w[:3, 3]
    model = GaussianModel.from_points(world, np.array([[0.9, 0.2, 0.1]] * 4), scale=0.25, opacity=0.8)
    gen = torch.Generator().manual_seed(5)
    model.log_scales = model.log_scales + 0.5 * torch.randn(4, 3, generator=gen)
    model.quats = torch.randn(4, 4, generator=gen) * 1.7  # not normalised
    for t in model.tensors().values():
        t.requires_grad_(True)
    outs = {b: render(model, cam, backend=b) for b in ("torch", "fast")}
    assert outs["torch"].visible.all()
    for name in ("rgb", "alpha", "depth"):
        torch.testing.assert_close(getattr(outs["fast"], name), getattr(outs["torch"], name), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(outs["fast"].radii, outs["torch"].radii, atol=1e-3, rtol=1e-5)
    grads = {b: _grads(model, (o.rgb, o.alpha, o.depth)) for b, o in outs.items()}
    for k in FIELDS:
        scale = grads["torch"][k].abs().max().item()
        torch.testing.assert_close(grads["fast"][k], grads["torch"][k], atol=1e-4 * scale, rtol=1e-3)


def _render_in_child(queue) -> None:  # noqa: ANN001
    model, cam = GaussianModel.random(200, seed=9), orbit_camera(30.0, 45.0, size=40)
    queue.put(render(model, cam, backend="fast").rgb.sum().item())


def test_fast_backend_survives_fork():
    """A process that rendered and then forks (server -> workers) can render in the child."""
    import multiprocessing as mp

    model, cam = GaussianModel.random(200, seed=9), orbit_camera(30.0, 45.0, size=40)
    want = render(model, cam, backend="fast").rgb.sum().item()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_render_in_child, args=(queue,))
    proc.start()
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(want)


def test_wrong_argument_types_are_user_errors():
    cam = orbit_camera(30.0, 0.0, size=16)
    with pytest.raises(RasterizerError, match="GaussianModel"):
        render("model.ply", cam)
    with pytest.raises(RasterizerError, match="Camera"):
        render(GaussianModel.random(3), np.eye(4))
