"""Losses against scikit-image's reference SSIM / PSNR on random images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from glimpse3d.splat.losses import (
    ImageShapeError,
    d_ssim,
    gaussian_window,
    l1,
    photometric_loss,
    psnr,
    ssim,
    ssim_map,
)


def _pair(seed: int, shape: tuple[int, ...], noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    b = np.clip(a + noise * rng.standard_normal(shape), 0, 1)
    return a, b


@pytest.mark.parametrize("shape", [(32, 40, 3), (24, 24), (50, 31, 1)])
@pytest.mark.parametrize("noise", [0.02, 0.2, 1.0])
def test_ssim_matches_skimage(shape: tuple[int, ...], noise: float) -> None:
    a, b = _pair(1, shape, noise)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        channel_axis=-1 if len(shape) == 3 else None,
    )
    got = ssim(torch.from_numpy(a), torch.from_numpy(b)).item()
    assert got == pytest.approx(ref, abs=1e-9)
    got32 = ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float()).item()
    assert got32 == pytest.approx(ref, abs=1e-5)


def test_ssim_batched_layout_and_identity() -> None:
    a, b = _pair(2, (20, 22, 3))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    batched = ssim(ta.permute(2, 0, 1)[None], tb.permute(2, 0, 1)[None])
    assert batched.item() == pytest.approx(ssim(ta, tb).item(), abs=1e-12)
    assert ssim(ta, ta).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(ta, ta, padding="same").item() == pytest.approx(1.0, abs=1e-9)
    assert ssim_map(ta, tb, padding="same").shape == (1, 3, 20, 22)
    assert ssim_map(ta, tb).shape == (1, 3, 10, 12)
    assert d_ssim(ta, ta).item() == pytest.approx(0.0, abs=1e-12)
    assert 0.0 <= d_ssim(ta, tb).item() <= 1.0


def test_gaussian_window() -> None:
    w = gaussian_window()
    assert w.shape == (11, 11)
    assert w.sum().item() == pytest.approx(1.0)
    assert w[5, 5] == w.max()


@pytest.mark.parametrize("noise", [0.01, 0.1, 0.5])
def test_psnr_matches_skimage(noise: float) -> None:
    a, b = _pair(3, (16, 18, 3), noise)
    ref = peak_signal_noise_ratio(a, b, data_range=1.0)
    assert psnr(torch.from_numpy(a), torch.from_numpy(b)).item() == pytest.approx(ref, rel=1e-9)
    ref255 = peak_signal_noise_ratio(a * 255, b * 255, data_range=255)
    got255 = psnr(torch.from_numpy(a * 255), torch.from_numpy(b * 255), data_range=255.0)
    assert got255.item() == pytest.approx(ref255, rel=1e-9)


def test_l1_and_mask() -> None:
    a = torch.zeros(4, 4, 3)
    b = torch.zeros(4, 4, 3)
    b[:2] = 1.0
    assert l1(a, b).item() == pytest.approx(0.5)
    mask = torch.zeros(4, 4)
    mask[2:] = 1
    assert l1(a, b, mask).item() == pytest.approx(0.0)
    assert l1(a, b, 1 - mask).item() == pytest.approx(1.0)


def test_ssim_is_differentiable_and_improves_under_gradient_descent() -> None:
    a, b = _pair(4, (24, 24, 3), 0.3)
    target = torch.from_numpy(a).float()
    x = torch.from_numpy(b).float().requires_grad_(True)
    start = ssim(x, target).item()
    opt = torch.optim.Adam([x], lr=0.02)
    for _ in range(30):
        opt.zero_grad()
        loss = photometric_loss(x, target, lambda_dssim=0.5)
        loss.backward()
        assert torch.isfinite(x.grad).all()
        opt.step()
    assert ssim(x, target).item() > start + 0.1


def test_bad_shapes_raise_user_errors() -> None:
    with pytest.raises(ImageShapeError):
        ssim(torch.zeros(8, 8, 3), torch.zeros(8, 9, 3))
    with pytest.raises(ImageShapeError):
        ssim(torch.zeros(8, 8, 3), torch.zeros(8, 8, 3))  # smaller than the window
    with pytest.raises(ImageShapeError):
        psnr(torch.zeros(3), torch.zeros(3))
