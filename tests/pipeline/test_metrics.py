"""Numpy quality metrics: known answers, skimage agreement, ranges."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from glimpse3d.config import Settings
from glimpse3d.pipeline import metrics as M
from glimpse3d.pipeline.backends import load_backend


def _img(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx), np.cos(5 * yy), xx * yy], -1) * 0.4 + 0.5
    return np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1)


def test_psnr_ssim_match_skimage_and_masks() -> None:
    a, b = _img(0), _img(1)
    assert M.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0))
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1.0, channel_axis=-1)
    assert M.ssim(a, b) == pytest.approx(ref)
    assert M.psnr(a, a) == 100.0 and M.ssim(a, a) == pytest.approx(1.0)
    # RGBA inputs use their RGB channels.
    a4 = np.concatenate([a, np.ones_like(a[..., :1])], -1)
    assert M.psnr(a4, b) == pytest.approx(M.psnr(a, b))
    # Masked: the error lives only in the left half.
    c = a.copy()
    c[:, :24] = np.clip(c[:, :24] + 0.1, 0, 1)
    right = np.zeros(a.shape[:2], bool)
    right[:, 24:] = True
    assert M.masked_psnr(a, c, right) == 100.0
    err = np.mean((a[:, :24] - c[:, :24]) ** 2)
    assert M.masked_psnr(a, c, ~right) == pytest.approx(10 * np.log10(1 / err))
    assert M.masked_ssim(a, c, right) > M.masked_ssim(a, c, ~right)
    with pytest.raises(M.MetricInputError):
        M.psnr(a, b[:10])
    with pytest.raises(M.MetricInputError):
        M.psnr(a, b, mask=np.zeros(a.shape[:2], bool))


def test_depth_consistency_known_values() -> None:
    ref = np.zeros((10, 10), np.float32)
    ref[2:8, 2:8] = 1.5
    assert M.depth_consistency(ref, ref) == 1.0
    # 2.5 % relative error everywhere -> 1 - 0.025/0.1 = 0.75
    assert M.depth_consistency(ref * 1.025, ref) == pytest.approx(0.75, abs=1e-5)
    assert M.depth_consistency(ref * 1.025, ref, tolerance=0.05) == pytest.approx(0.5, abs=1e-5)
    assert M.depth_consistency(ref * 1.2, ref) == 0.0
    # Missing prediction on half the object -> those pixels score 0.
    half = ref.copy()
    half[2:5] = 0
    assert M.depth_consistency(half, ref) == pytest.approx(0.5)
    # Scale alignment forgives a global factor (relative-depth estimators).
    assert M.depth_consistency(ref * 3.0, ref, align_scale=True) == pytest.approx(1.0)
    # Mask restricts the pixels; an empty selection scores 0.
    mask = np.zeros_like(ref, bool)
    mask[5:8] = True
    assert M.depth_consistency(half, ref, mask) == 1.0
    assert M.depth_consistency(ref, np.zeros_like(ref)) == 0.0
    with pytest.raises(M.MetricInputError):
        M.depth_consistency(ref, ref[:5])


def test_silhouette_iou() -> None:
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[:2] = 1
    b[1:3] = 1
    assert M.silhouette_iou(a, b) == pytest.approx(1 / 3)
    assert M.silhouette_iou(a, a) == 1.0
    assert M.silhouette_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_overall_quality_weights_and_range() -> None:
    perfect = {"psnr": 40.0, "ssim": 1.0, "lpips": None, "depth_consistency": 1.0,
               "feature_consistency": 1.0}
    assert M.overall_quality(perfect) == pytest.approx(1.0)
    worst = {"psnr": 5.0, "ssim": -0.2, "depth_consistency": 0.0, "feature_consistency": 0.0}
    assert M.overall_quality(worst) == 0.0
    mid = {"psnr": 25.0, "ssim": 0.5, "depth_consistency": 0.5, "feature_consistency": 0.5}
    assert M.overall_quality(mid) == pytest.approx(0.5)
    # LPIPS is used when present.
    assert M.overall_quality({**mid, "lpips": 0.0}) > M.overall_quality(mid)
    assert M.overall_quality({}) == 0.0


def test_classic_features_rank_similarity() -> None:
    feats = load_backend("feature", Settings())
    assert isinstance(feats, M.ClassicFeatures) and feats.name == "classic"
    yy, xx = np.mgrid[0:96, 0:96]
    disc = ((xx - 48) ** 2 + (yy - 48) ** 2 < 30**2).astype(np.float32)
    img = np.stack([disc * 0.8, disc * (0.3 + 0.5 * (xx / 96)), disc * 0.2], -1).astype(np.float32)
    noise = np.random.default_rng(0).random(img.shape).astype(np.float32)
    same = feats.similarity(img, img)
    close = feats.similarity(img, np.clip(img + 0.03 * noise, 0, 1))
    shifted = feats.similarity(img, np.roll(img, 20, axis=1))
    garbage = feats.similarity(img, noise)
    assert same == pytest.approx(1.0)
    assert 1.0 >= close > 0.8
    assert close > shifted > garbage >= 0.0
    assert garbage < 0.35
    mask = disc > 0
    assert feats.similarity(img, img, mask=mask) == pytest.approx(1.0)
    with pytest.raises(M.MetricInputError):
        feats.similarity(img, img[:50])
