"""CUDA rendering through gsplat (optional; imported lazily, only when gsplat and a GPU exist).

Same conventions as the CPU rasterizer: viewmats = OpenCV w2c, quaternions wxyz, scales =
exp(log_scales), opacities = sigmoid(logits), SH coefficients (N,K,3) DC first, pixel centres at
integer + 0.5, 0.3 px^2 dilation ("classic" mode), near plane 0.01. gsplat's tile-based 3-sigma
culling differs from the CPU square boxes only in pixels where alpha is tiny.
"""

from __future__ import annotations

import numpy as np
import torch

from glimpse3d.splat._types import RenderOutput
from glimpse3d.splat.cameras import Camera
from glimpse3d.splat.gaussians import GaussianModel


def render_gsplat(model: GaussianModel, camera: Camera, background: torch.Tensor, sh_degree: int):  # noqa: ANN201
    """Render with ``gsplat.rasterization`` and map its outputs to ``RenderOutput``."""
    import gsplat

    dtype, device = model.means.dtype, model.means.device
    viewmat = torch.as_tensor(np.asarray(camera.w2c), dtype=torch.float32, device=device)[None]
    ks = torch.as_tensor(camera.K, dtype=torch.float32, device=device)[None]
    n_coeffs = (sh_degree + 1) ** 2
    colors, alphas, meta = gsplat.rasterization(
        means=model.means.float(),
        quats=model.quats.float(),
        scales=torch.exp(model.log_scales).float(),
        opacities=torch.sigmoid(model.opacity_logits).float(),
        colors=model.sh[:, :n_coeffs].float(),
        viewmats=viewmat,
        Ks=ks,
        width=int(camera.width),
        height=int(camera.height),
        near_plane=0.01,
        eps2d=0.3,
        sh_degree=sh_degree,
        packed=False,
        render_mode="RGB+ED",
        rasterize_mode="classic",
    )
    rgb_acc = colors[0, ..., :3].to(dtype)
    alpha = alphas[0, ..., 0].to(dtype)
    has = alpha > 1e-6
    depth = torch.where(has, colors[0, ..., 3].to(dtype), torch.zeros_like(alpha))
    rgb = rgb_acc + (1.0 - alpha)[..., None] * background
    radii = meta["radii"][0]
    if radii.ndim == 2:  # newer gsplat: per-axis (N, 2) integer radii
        radii = radii.max(dim=-1).values
    radii = radii.to(dtype)
    return RenderOutput(rgb=rgb, alpha=alpha, depth=depth, visible=radii > 0, radii=radii)
