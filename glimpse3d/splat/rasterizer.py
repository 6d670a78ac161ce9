"""Differentiable Gaussian-splat rasterizer (standard 3DGS math), CPU first.

Conventions (docs/architecture.md: Cameras; Gaussian model and files):

- ``camera.w2c`` is an OpenCV world-to-camera matrix (x right, y down, z forward); pixel
  ``(i, j)`` (column ``i``, row ``j``) has its centre at ``(i + 0.5, j + 0.5)``.
- 3D covariance ``R S S^T R^T`` (quaternions wxyz, scales = exp(log_scales)); EWA projection with
  the perspective Jacobian (clamped to 1.3x the field of view as in 3DGS/gsplat) plus a 0.3 px^2
  low-pass dilation; radius = 3 sigma of the major axis. A gaussian is drawn only on pixels whose
  centre lies in its square 3-sigma box, with ``alpha = min(0.99, opacity * exp(-0.5 d^T conic d))``
  and pairs with ``alpha < 1/255`` skipped. Compositing is front to back in camera depth; a pixel
  stops at the gaussian that would bring its transmittance below 1e-4 (that gaussian is not drawn).
  Gaussians with camera z <= 0.01 are culled.
- Colours come from the SH coefficients evaluated for the world direction camera centre -> mean,
  ``+0.5``, clamped at 0. RGB is in [0,1] for sane models (not clamped at 1).

Backends: ``"torch"`` (pure PyTorch, exact reference, autograd), ``"fast"`` (numba tile kernel
with an analytic backward, see :mod:`glimpse3d.splat._raster_numba`), ``"gsplat"`` (CUDA, when
installed) and ``"auto"`` (gsplat on CUDA when importable, otherwise ``"fast"`` on CPU).
"""

from __future__ import annotations

import functools
import math

import torch

from glimpse3d.errors import UserError
from glimpse3d.splat._constants import ALPHA_MAX, ALPHA_MIN, TRANSMITTANCE_MIN
from glimpse3d.splat._types import Projected, RenderOutput
from glimpse3d.splat.cameras import Camera
from glimpse3d.splat.device import gsplat_available
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.sh import MAX_SH_DEGREE, sh_to_rgb

NEAR_PLANE = 0.01
LOWPASS_DILATION = 0.3
SIGMA_EXTENT = 3.0
BACKENDS = ("auto", "torch", "fast", "gsplat")


class RasterizerError(UserError):
    """Bad rasterizer input (unknown backend, bad SH degree, bad camera or background)."""

    http_status = 422


# --------------------------------------------------------------------------- projection
def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """(N,4) wxyz quaternions (any norm) -> (N,3,3) rotation matrices."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)


def _check_inputs(model: GaussianModel, camera: Camera, sh_degree: int | None) -> int:
    if not isinstance(model, GaussianModel):
        raise RasterizerError(f"render() needs a GaussianModel, got {type(model).__name__}")
    if not isinstance(camera, Camera):
        raise RasterizerError(f"render() needs a Camera, got {type(camera).__name__}")
    if int(camera.width) <= 0 or int(camera.height) <= 0:
        raise RasterizerError(f"camera size must be positive, got {camera.width}x{camera.height}")
    if not (camera.fx > 0 and camera.fy > 0):
        raise RasterizerError(f"camera focal lengths must be positive, got fx={camera.fx} fy={camera.fy}")
    if not model.means.dtype.is_floating_point:
        raise RasterizerError(f"model tensors must be floating point, got {model.means.dtype}")
    model_degree = model.sh_degree
    degree = model_degree if sh_degree is None else int(sh_degree)
    if not 0 <= degree <= min(model_degree, MAX_SH_DEGREE):
        raise RasterizerError(
            f"sh_degree must be in 0..{min(model_degree, MAX_SH_DEGREE)} for this model, got {sh_degree}"
        )
    return degree


def project(model: GaussianModel, camera: Camera, sh_degree: int | None = None) -> Projected:
    """Project ``model`` into ``camera`` (differentiable w.r.t. every model tensor)."""
    degree = _check_inputs(model, camera, sh_degree)
    dtype, device = model.means.dtype, model.means.device
    width, height = int(camera.width), int(camera.height)
    w2c = torch.as_tensor(camera.w2c, dtype=dtype, device=device)
    rot, trans = w2c[:3, :3], w2c[:3, 3]
    cam_center = torch.as_tensor(camera.center, dtype=dtype, device=device)

    p_cam = model.means @ rot.T + trans
    z = p_cam[:, 2]
    in_front = z > NEAR_PLANE
    z_safe = torch.where(in_front, z, torch.ones_like(z))
    x_over_z, y_over_z = p_cam[:, 0] / z_safe, p_cam[:, 1] / z_safe
    fx, fy, cx, cy = float(camera.fx), float(camera.fy), float(camera.cx), float(camera.cy)
    means2d = torch.stack([fx * x_over_z + cx, fy * y_over_z + cy], dim=-1)

    # EWA: cov2d = J W (R S)(R S)^T W^T J^T, with gsplat's field-of-view clamp on J. Written with
    # broadcasting instead of batched 3x3 matmuls (much faster on CPU for large N).
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    tx = x_over_z.clamp(-lim_x_neg, lim_x_pos)
    ty = y_over_z.clamp(-lim_y_neg, lim_y_pos)
    zeros = torch.zeros_like(z)
    inv_z = 1.0 / z_safe
    jac = torch.stack(
        [fx * inv_z, zeros, -fx * tx * inv_z, zeros, fy * inv_z, -fy * ty * inv_z], dim=-1
    ).reshape(-1, 3)
    jw = (jac @ rot).reshape(-1, 2, 3)  # J W
    rs = quat_to_rotmat(model.quats) * torch.exp(model.log_scales)[:, None, :]  # R S
    v = (jw[:, :, :, None] * rs[:, None, :, :]).sum(2)  # (N,2,3) = J W R S
    cov2d = (v[:, :, None, :] * v[:, None, :, :]).sum(-1)
    a = cov2d[:, 0, 0] + LOWPASS_DILATION
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + LOWPASS_DILATION
    det = a * c - b * b
    ok = in_front & (det > 0)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)

    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt((mid * mid - det).clamp_min(0.1))
        radii = SIGMA_EXTENT * torch.sqrt(lam.clamp_min(0.0))
        u, v = means2d[:, 0], means2d[:, 1]
        x0 = torch.ceil(u - radii - 0.5).clamp(-1, width)
        x1 = torch.floor(u + radii - 0.5).clamp(-1, width)
        y0 = torch.ceil(v - radii - 0.5).clamp(-1, height)
        y1 = torch.floor(v + radii - 0.5).clamp(-1, height)
        boxes = torch.stack([x0, y0, x1, y1], dim=-1).nan_to_num(-1).long()
        boxes[:, 0].clamp_(min=0)
        boxes[:, 1].clamp_(min=0)
        boxes[:, 2].clamp_(max=width - 1)
        boxes[:, 3].clamp_(max=height - 1)
        visible = ok & torch.isfinite(radii) & (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])
        radii = torch.where(visible, radii, torch.zeros_like(radii))

    colors = sh_to_rgb(degree, model.sh, model.means, cam_center)
    return Projected(
        means2d=means2d,
        conics=conics,
        depths=z,
        colors=colors,
        opacities=torch.sigmoid(model.opacity_logits),
        radii=radii,
        visible=visible,
        boxes=boxes,
    )


# --------------------------------------------------------------- pure-PyTorch compositing
def _segment_exclusive_cumsum(values: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Exclusive cumulative sum of ``values`` restarting where sorted ``seg`` ids change."""
    csum = torch.cumsum(values, 0)
    excl = csum - values
    n = seg.shape[0]
    is_start = torch.ones(n, dtype=torch.bool, device=seg.device)
    is_start[1:] = seg[1:] != seg[:-1]
    pos = torch.arange(n, device=seg.device)
    start = torch.cummax(torch.where(is_start, pos, torch.zeros_like(pos)), 0).values
    return excl - excl[start]


def _pair_alpha(g: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Unclamped ``opacity * exp(-0.5 d^T conic d)`` for pairs; ``g`` holds gathered rows of
    (mx, my, conic a, b, c, opacity, ...)."""
    dx = px.to(g.dtype) + 0.5 - g[:, 0]
    dy = py.to(g.dtype) + 0.5 - g[:, 1]
    power = -0.5 * (g[:, 2] * dx * dx + g[:, 4] * dy * dy) - g[:, 3] * dx * dy
    return g[:, 5] * torch.exp(power)


def alpha_boxes(proj: Projected) -> tuple[torch.Tensor, torch.Tensor]:
    """3-sigma boxes shrunk to the bounding box of the ellipse where alpha can reach 1/255.

    Pixels outside it have alpha < 1/255 and are skipped anyway, so this changes no result; it
    only saves work. Returns int64 boxes (x0, y0, x1, y1) and the mask of gaussians to draw.
    """
    with torch.no_grad():
        con = proj.conics.detach().double()
        m2d = proj.means2d.detach().double()
        op = proj.opacities.detach().double()
        tau = 2.0 * torch.log(op / ALPHA_MIN) * (1.0 + 1e-6) + 1e-6
        det = con[:, 0] * con[:, 2] - con[:, 1] ** 2
        ex = torch.sqrt(tau * con[:, 2] / det) + 1e-3  # sqrt(tau * cov_xx)
        ey = torch.sqrt(tau * con[:, 0] / det) + 1e-3
        ok = proj.visible & (op >= ALPHA_MIN) & (det > 0) & torch.isfinite(ex) & torch.isfinite(ey)
        ex = torch.where(ok, ex, torch.zeros_like(ex))
        ey = torch.where(ok, ey, torch.zeros_like(ey))
        tight = torch.stack(
            [
                torch.ceil(m2d[:, 0] - ex - 0.5),
                torch.ceil(m2d[:, 1] - ey - 0.5),
                torch.floor(m2d[:, 0] + ex - 0.5),
                torch.floor(m2d[:, 1] + ey - 0.5),
            ],
            dim=1,
        ).nan_to_num(-1).clamp(-1, 1 << 30).long()
        boxes = proj.boxes.long().clone()
        boxes[:, :2] = torch.maximum(boxes[:, :2], tight[:, :2])
        boxes[:, 2:] = torch.minimum(boxes[:, 2:], tight[:, 2:])
        ok &= (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])
    return boxes, ok


def composite_torch(
    proj: Projected, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pure-PyTorch compositing. Returns premultiplied rgb (H,W,3), alpha (H,W), sum(w z) (H,W).

    Vectorised: every (gaussian, pixel) pair inside the 3-sigma boxes is listed, sorted per pixel
    by depth, and composited with a segmented exclusive cumulative product of (1 - alpha).
    """
    dtype, device = proj.means2d.dtype, proj.means2d.device
    n_pix = width * height
    # one row per gaussian: mx, my, conic a, b, c, opacity, r, g, b, depth (gathered once per pair)
    packed = torch.cat(
        [proj.means2d, proj.conics, proj.opacities[:, None], proj.colors, proj.depths[:, None]], dim=1
    )
    with torch.no_grad():
        boxes, draw = alpha_boxes(proj)
        vis = torch.nonzero(draw).squeeze(1)
        vis = vis[torch.argsort(proj.depths[vis].detach(), stable=True)]  # front to back
        b = boxes[vis]
        bw, bh = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
        counts = bw * bh
        total = int(counts.sum()) if counts.numel() else 0
        gid_local = torch.repeat_interleave(torch.arange(vis.shape[0], device=device), counts)
        offsets = torch.cumsum(counts, 0) - counts
        per = torch.stack([vis, b[:, 0], b[:, 1], bw, offsets], dim=1)[gid_local]  # one gather
        del gid_local
        local = torch.arange(total, device=device) - per[:, 4]
        px = per[:, 1] + local % per[:, 3]
        py = per[:, 2] + local // per[:, 3]
        gid = per[:, 0]
        del per, local
        alpha = _pair_alpha(packed.detach()[:, :6].contiguous()[gid], px, py).clamp_max(ALPHA_MAX)
        keep = torch.nonzero(alpha >= ALPHA_MIN).squeeze(1)
        gid, pix, alpha = gid[keep], (py * width + px)[keep], alpha[keep]
        order = torch.argsort(pix, stable=True)  # pairs were in depth order; keep it per pixel
        gid, pix, alpha = gid[order], pix[order], alpha[order]
        log1m = torch.log1p(-alpha.double())
        log_t = _segment_exclusive_cumsum(log1m, pix)
        keep = torch.nonzero(log_t + log1m >= math.log(TRANSMITTANCE_MIN)).squeeze(1)
        gid, pix = gid[keep], pix[keep]
        px, py = pix % width, pix // width

    rows = packed[gid]
    alpha = _pair_alpha(rows, px, py).clamp_max(ALPHA_MAX)
    log_t = _segment_exclusive_cumsum(torch.log1p(-alpha.to(torch.float64)), pix)
    weight = alpha * torch.exp(log_t).to(dtype)
    feats = torch.cat([rows[:, 6:10], torch.ones_like(weight)[:, None]], 1)  # r, g, b, z, 1
    out = torch.zeros(n_pix, 5, dtype=dtype, device=device).index_add(0, pix, weight[:, None] * feats)
    out = out.reshape(height, width, 5)
    return out[..., :3], out[..., 4], out[..., 3]


# ------------------------------------------------------------------------------ render
@functools.cache
def _fast_available() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``backend`` (auto|torch|fast|gsplat) to the concrete one used on ``device``."""
    if backend not in BACKENDS:
        raise RasterizerError(f"unknown rasterizer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if device.type == "cuda" and torch.cuda.is_available() and gsplat_available():
        return "gsplat"
    if device.type == "cpu" and _fast_available():
        return "fast"
    return "torch"


def _finish(
    rgb_acc: torch.Tensor, alpha: torch.Tensor, depth_acc: torch.Tensor, background: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    has = alpha > 1e-6
    depth = torch.where(has, depth_acc / torch.where(has, alpha, torch.ones_like(alpha)), torch.zeros_like(alpha))
    rgb = rgb_acc + (1.0 - alpha)[..., None] * background
    return rgb, alpha, depth


def render(
    model: GaussianModel,
    camera: Camera,
    background: torch.Tensor | None = None,
    backend: str = "auto",
    sh_degree: int | None = None,
) -> RenderOutput:
    """Render ``model`` from ``camera``; every output is differentiable w.r.t. the model tensors.

    ``background`` is an RGB (3,) tensor in [0,1] (default black, so ``rgb`` is premultiplied).
    ``sh_degree`` limits the SH degree used (default: the model's).
    """
    _check_inputs(model, camera, sh_degree)
    dtype, device = model.means.dtype, model.means.device
    which = resolve_backend(backend, device)
    if background is None:
        background = torch.zeros(3, dtype=dtype, device=device)
    background = torch.as_tensor(background, dtype=dtype, device=device)
    if background.shape != (3,):
        raise RasterizerError(f"background must be an RGB triple of shape (3,), got {tuple(background.shape)}")
    if which == "gsplat":
        if not (device.type == "cuda" and torch.cuda.is_available() and gsplat_available()):
            raise RasterizerError(
                "the gsplat backend needs a CUDA GPU, the gsplat package and the model on the GPU; "
                "use backend='fast' or 'torch' on CPU"
            )
        from glimpse3d.splat._raster_gsplat import render_gsplat

        degree = _check_inputs(model, camera, sh_degree)
        return render_gsplat(model, camera, background, degree)

    width, height = int(camera.width), int(camera.height)
    if which == "fast":
        from glimpse3d.splat._raster_numba import composite_fast, project_fast

        proj = project_fast(model, camera, _check_inputs(model, camera, sh_degree))
        rgb_acc, alpha, depth_acc = composite_fast(proj, width, height)
    else:
        proj = project(model, camera, sh_degree)
        rgb_acc, alpha, depth_acc = composite_torch(proj, width, height)
    rgb, alpha, depth = _finish(rgb_acc, alpha, depth_acc, background)
    return RenderOutput(rgb=rgb, alpha=alpha, depth=depth, visible=proj.visible, radii=proj.radii)
