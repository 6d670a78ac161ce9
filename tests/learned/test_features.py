"""TransformersFeatures from a tiny DINOv2; LPIPS availability."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.features import TransformersFeatures, lpips_available, lpips_distance
from glimpse3d.pipeline.backends import load_backend


@pytest.fixture
def features(make_settings, tiny_dir):
    return load_backend("feature", make_settings(
        feature_backend="transformers", feature_model=str(tiny_dir("dinov2")), device="cpu"))


def test_similarity_properties(features, object_rgba):
    assert isinstance(features, TransformersFeatures) and features.name == "transformers"
    a = object_rgba[..., :3]
    rng = np.random.default_rng(0)
    b = rng.random((64, 64, 3)).astype(np.float32)
    assert features.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    s_ab, s_ba = features.similarity(a, b), features.similarity(b, a)
    assert 0.0 <= s_ab < 0.9999 and s_ab == pytest.approx(s_ba, abs=1e-5)
    emb = features.embed([a, b])
    assert emb.shape == (2, 32)  # CLS + mean patch token of a 16-wide ViT
    np.testing.assert_allclose(np.linalg.norm(emb.numpy(), axis=1), 1.0, atol=1e-5)
    # differences outside the mask are ignored
    c = a.copy()
    c[:8] = rng.random((8, 64, 3))
    mask = np.ones((64, 64), np.float32)
    mask[:8] = 0
    assert features.similarity(a, c, mask) == pytest.approx(1.0, abs=1e-5)
    assert features.similarity(a, c) < 0.99999
    # RGBA and a different size are accepted
    assert 0.0 <= features.similarity(object_rgba, b[:32, :32]) <= 1.0


def test_missing_weights(make_settings):
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_FEATURE_MODEL="):
        load_backend("feature", make_settings(feature_backend="transformers"))


@pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed")
def test_lpips_unavailable_returns_none():
    img = np.zeros((16, 16, 3), np.float32)
    assert lpips_distance(img, img) is None
    assert not lpips_available()


def test_clip_checkpoint_uses_image_features(make_settings, tiny_dir, object_rgba):
    feats = load_backend("feature", make_settings(
        feature_backend="transformers", feature_model=str(tiny_dir("clip")), device="cpu"))
    assert type(feats.model).__name__ == "CLIPModel"
    a = object_rgba[..., :3]
    emb = feats.embed([a, a[::-1]])
    assert emb.shape == (2, 12)  # the projection_dim of the tiny CLIP
    assert feats.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= feats.similarity(a, a[::-1].copy()) <= 1.0
