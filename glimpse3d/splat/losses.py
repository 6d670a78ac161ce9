"""Differentiable image losses and quality measures (torch).

Images are float tensors with values in [0, ``data_range``] (RGB in [0,1] by default) in
either channels-last layout ``(H,W)`` / ``(H,W,C)`` (the project's convention) or batched
channels-first ``(B,C,H,W)``. Both arguments of a function must have the same shape.

``ssim`` is the standard Wang et al. (2004) SSIM with an 11x11 gaussian window (sigma 1.5),
K1=0.01, K2=0.03 and population (co)variances. With ``padding="valid"`` (the default) it is
evaluated only where the window fits inside the image, which equals
``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)``; ``padding="same"`` zero-pads
like the 3DGS reference implementation.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypedDict, Unpack

import torch

from glimpse3d.errors import UserError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


class ImageShapeError(UserError):
    """Two images that must be compared have incompatible shapes or layouts."""

    http_status = 422


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise ImageShapeError("losses expect torch tensors")
    if a.shape != b.shape:
        raise ImageShapeError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim not in (2, 3, 4):
        raise ImageShapeError(f"expected (H,W), (H,W,C) or (B,C,H,W) images, got shape {tuple(a.shape)}")


def _to_bchw(x: torch.Tensor) -> torch.Tensor:
    """(H,W) -> (1,1,H,W); (H,W,C) -> (1,C,H,W); (B,C,H,W) unchanged."""
    if x.ndim == 2:
        return x[None, None]
    if x.ndim == 3:
        return x.permute(2, 0, 1)[None]
    return x


def l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference; with ``mask`` (broadcastable, {0,1} or weights) a weighted mean."""
    _check_pair(a, b)
    diff = (a - b).abs()
    if mask is None:
        return diff.mean()
    w = mask.to(diff.dtype)
    if w.ndim == diff.ndim - 1 and w.shape == diff.shape[:-1]:
        w = w[..., None]  # (H,W) mask for (H,W,C) images
    w = torch.broadcast_to(w, diff.shape)
    return (diff * w).sum() / w.sum().clamp_min(1e-8)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference."""
    _check_pair(a, b)
    return ((a - b) ** 2).mean()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / mse)`` (inf when identical)."""
    err = mse(a, b)
    return 10.0 * torch.log10(data_range**2 / err)


@lru_cache(maxsize=8)
def _gauss_1d(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _band_matrix(
    n: int, size: int, sigma: float, same: bool, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Matrix applying the 1D gaussian along an axis of length ``n``.

    ``same``: (n, n), zero padding outside the image; otherwise (n-size+1, n), valid part only.
    """
    key = (n, size, sigma, same, dtype, str(device))
    cached = _BANDS.get(key)
    if cached is not None:
        return cached
    g = _gauss_1d(size, sigma)
    half = size // 2
    rows = torch.arange(n)[:, None]
    cols = torch.arange(n)[None, :]
    off = cols - rows + half
    band = torch.where((off >= 0) & (off < size), g[off.clamp(0, size - 1)], torch.zeros(()))
    if not same:
        band = band[half : n - half]
    band = band.to(dtype=dtype, device=device)
    if len(_BANDS) > 32:
        _BANDS.clear()
    _BANDS[key] = band
    return band


_BANDS: dict[tuple, torch.Tensor] = {}


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2D gaussian window (size, size), float64."""
    g = _gauss_1d(size, sigma)
    return torch.outer(g, g)


def ssim_map(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    padding: str = "valid",
) -> torch.Tensor:
    """Per-pixel SSIM as (B,C,H',W') (H'=H-window+1 for ``valid``, H for ``same``)."""
    _check_pair(a, b)
    if padding not in ("valid", "same"):
        raise ImageShapeError(f"padding must be 'valid' or 'same', got {padding!r}")
    x, y = _to_bchw(a), _to_bchw(b)
    if padding == "valid" and min(x.shape[-2:]) < window_size:
        raise ImageShapeError(f"images must be at least {window_size}x{window_size} for SSIM")
    mh = _band_matrix(x.shape[-2], window_size, sigma, padding == "same", x.dtype, x.device)
    mw = _band_matrix(x.shape[-1], window_size, sigma, padding == "same", x.dtype, x.device)
    # Separable gaussian filtering as two banded matrix products (much faster than conv2d on CPU).
    stacked = torch.stack([x, y, x * x, y * y, x * y], dim=1)  # (B,5,C,H,W)
    stacked = mh @ stacked @ mw.T
    mu_x, mu_y, xx, yy, xy = stacked.unbind(1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


class SSIMOptions(TypedDict, total=False):
    """The keyword options of :func:`ssim_map`, which :func:`ssim` and :func:`d_ssim` pass on."""

    data_range: float
    window_size: int
    sigma: float
    padding: str


def ssim(a: torch.Tensor, b: torch.Tensor, **options: Unpack[SSIMOptions]) -> torch.Tensor:
    """Mean SSIM (differentiable scalar) of :func:`ssim_map` with ``options``. See the module
    docstring for the exact definition."""
    return ssim_map(a, b, **options).mean()


def d_ssim(a: torch.Tensor, b: torch.Tensor, **options: Unpack[SSIMOptions]) -> torch.Tensor:
    """Structural dissimilarity ``(1 - ssim) / 2`` in [0, 1]."""
    return (1.0 - ssim(a, b, **options)) / 2.0


def photometric_loss(
    pred: torch.Tensor, target: torch.Tensor, lambda_dssim: float = 0.2
) -> torch.Tensor:
    """The 3DGS image loss ``(1 - lambda) * L1 + lambda * (1 - SSIM)`` (SSIM zero-padded, 'same').

    As in the 3DGS reference code the structural term is ``1 - SSIM`` (twice :func:`d_ssim`).
    """
    loss = (1.0 - lambda_dssim) * l1(pred, target)
    if lambda_dssim > 0:
        loss = loss + lambda_dssim * (1.0 - ssim(pred, target, padding="same"))
    return loss


def psnr_to_mse(value_db: float, data_range: float = 1.0) -> float:
    """Inverse of :func:`psnr` for a scalar."""
    return data_range**2 / (10.0 ** (value_db / 10.0))


__all__ = [
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "ImageShapeError",
    "SSIMOptions",
    "d_ssim",
    "gaussian_window",
    "l1",
    "mse",
    "photometric_loss",
    "psnr",
    "psnr_to_mse",
    "ssim",
    "ssim_map",
]
