"""Real spherical harmonics for view-dependent colour, degree 0..3 (standard 3DGS constants).

Coefficients are laid out as in 3DGS / gsplat: ``sh`` has shape (N, K, 3) with
K = (degree+1)^2, DC first. ``dirs`` are unit view directions in **world** space, from the
camera centre towards the gaussian mean. Colour = ``eval_sh(...) + 0.5`` clamped at 0
(see :func:`sh_to_rgb`).
"""

from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
MAX_SH_DEGREE = 3


def num_sh_coeffs(degree: int) -> int:
    """Number of SH coefficients K = (degree+1)^2."""
    return (degree + 1) ** 2


def eval_sh(degree: int, sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Evaluate SH of ``degree`` (0..3) for unit ``dirs`` (N,3); ``sh`` is (N,K>=(d+1)^2,3).

    Returns the raw (N,3) value, without the +0.5 offset. Differentiable in ``sh`` and ``dirs``.
    """
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    if sh.shape[-2] < num_sh_coeffs(degree):
        raise ValueError(f"degree {degree} needs {num_sh_coeffs(degree)} SH coefficients, got {sh.shape[-2]}")
    result = SH_C0 * sh[:, 0]
    if degree == 0:
        return result
    x, y, z = (dirs[:, i : i + 1] for i in range(3))
    result = result - SH_C1 * y * sh[:, 1] + SH_C1 * z * sh[:, 2] - SH_C1 * x * sh[:, 3]
    if degree == 1:
        return result
    xx, yy, zz = x * x, y * y, z * z
    xy, yz, xz = x * y, y * z, x * z
    result = (
        result
        + SH_C2[0] * xy * sh[:, 4]
        + SH_C2[1] * yz * sh[:, 5]
        + SH_C2[2] * (2.0 * zz - xx - yy) * sh[:, 6]
        + SH_C2[3] * xz * sh[:, 7]
        + SH_C2[4] * (xx - yy) * sh[:, 8]
    )
    if degree == 2:
        return result
    return (
        result
        + SH_C3[0] * y * (3.0 * xx - yy) * sh[:, 9]
        + SH_C3[1] * xy * z * sh[:, 10]
        + SH_C3[2] * y * (4.0 * zz - xx - yy) * sh[:, 11]
        + SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * sh[:, 12]
        + SH_C3[4] * x * (4.0 * zz - xx - yy) * sh[:, 13]
        + SH_C3[5] * z * (xx - yy) * sh[:, 14]
        + SH_C3[6] * x * (xx - 3.0 * yy) * sh[:, 15]
    )


def sh_to_rgb(
    degree: int, sh: torch.Tensor, means: torch.Tensor, camera_center: torch.Tensor
) -> torch.Tensor:
    """View-dependent RGB (N,3) for gaussians at ``means`` seen from ``camera_center`` (3,).

    RGB = eval_sh(degree, sh, normalize(means - camera_center)) + 0.5, clamped at 0 (not at 1,
    as in 3DGS).
    """
    if degree == 0:
        return (SH_C0 * sh[:, 0] + 0.5).clamp_min(0.0)
    dirs = means - camera_center
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (eval_sh(degree, sh, dirs) + 0.5).clamp_min(0.0)
