"""TransformersSegmenter from a tiny SegFormer; RembgSegmenter's availability messages."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.segmentation import (
    RembgSegmenter,
    TransformersSegmenter,
    _matting_map,
)
from glimpse3d.pipeline.backends import BackendUnavailable, load_backend


def test_segformer_mask_matches_model(tiny_dir, make_settings, object_rgba):
    path = tiny_dir("segformer")
    seg = load_backend("segment", make_settings(segment_backend="transformers",
                                                segment_model=str(path), device="cpu"))
    assert isinstance(seg, TransformersSegmenter) and seg.mode == "semantic"
    assert seg.background_ids == [0]
    rgb = object_rgba[..., :3]
    mask = seg.segment(rgb)
    assert mask.shape == (64, 64) and mask.dtype == np.float32
    assert 0.0 <= mask.min() <= mask.max() <= 1.0
    # known answer: P(foreground) of the model's own logits, upsampled
    with torch.no_grad():
        pv = seg.processor(images=(rgb * 255 + 0.5).astype(np.uint8), return_tensors="pt")
        logits = seg.model(**pv).logits
        p = torch.softmax(logits, 1)[:, 1:2]
        ref = torch.nn.functional.interpolate(p, size=(64, 64), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(mask, ref[0, 0].numpy(), atol=1e-5)
    # uint8 and RGBA input are accepted as well
    assert seg.segment((object_rgba * 255).astype(np.uint8)).shape == (64, 64)


def test_non_segmentation_model_needs_trust(tiny_dir, make_settings, monkeypatch):
    monkeypatch.delenv("GLIMPSE3D_TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(BackendUnavailable, match="GLIMPSE3D_TRUST_REMOTE_CODE=1"):
        load_backend("segment", make_settings(segment_backend="transformers",
                                              segment_model=str(tiny_dir("dinov2")), device="cpu"))


def test_remote_code_matting_model(tiny_dir, make_settings, monkeypatch, capsys):
    """A BiRefNet-style checkpoint with its own code loads only when trusted."""
    path = str(tiny_dir("matting"))
    monkeypatch.delenv("GLIMPSE3D_TRUST_REMOTE_CODE", raising=False)
    settings = make_settings(segment_backend="transformers", segment_model=path, device="cpu")
    with pytest.raises(BackendUnavailable, match="GLIMPSE3D_TRUST_REMOTE_CODE=1"):
        load_backend("segment", settings)
    assert "trust_remote_code" not in capsys.readouterr().out  # no interactive prompt
    trusted = make_settings(segment_backend="transformers", segment_model=path, device="cpu",
                            trust_remote_code=True)
    seg = load_backend("segment", trusted)
    assert seg.mode == "matting" and seg.processor is None
    rgb = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    mask = seg.segment(rgb)
    assert mask.shape == (40, 50) and mask.dtype == np.float32
    # known answer: sigmoid of the model's last output on the 1024^2 ImageNet-normalised input
    with torch.no_grad():
        out = seg.model(pixel_values=seg._pixel_values(rgb))[-1]
        ref = torch.nn.functional.interpolate(torch.sigmoid(out), size=(40, 50), mode="bilinear",
                                              align_corners=False)
    assert seg._pixel_values(rgb).shape == (1, 3, 1024, 1024)
    np.testing.assert_allclose(mask, ref[0, 0].numpy(), atol=1e-5)


def test_segment_missing_weights(make_settings):
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_SEGMENT_MODEL="):
        load_backend("segment", make_settings(segment_backend="transformers"))


def test_matting_output_forms():
    final = torch.full((1, 1, 4, 4), 2.0)
    side = torch.zeros((1, 1, 4, 4))
    assert torch.equal(_matting_map([side, final]), final)  # BiRefNet: last is final
    assert torch.equal(_matting_map(([final, side], ["features"])), final)  # RMBG-1.4
    assert _matting_map(torch.ones(1, 4, 4)).shape == (1, 1, 4, 4)


def test_rembg_missing_model_file(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net-home"))
    with pytest.raises(MissingWeightsError) as info:
        load_backend("segment", make_settings(segment_backend="rembg",
                                              segment_model=str(tmp_path / "u2net.onnx")))
    msg = str(info.value)
    assert "GLIMPSE3D_SEGMENT_MODEL" in msg and "u2net.onnx" in msg and "never" in msg
    # a model *name* is looked up in $U2NET_HOME
    with pytest.raises(MissingWeightsError, match="u2net-home"):
        load_backend("segment", make_settings(segment_backend="rembg", segment_model="isnet-general-use"))
    assert RembgSegmenter.model_file("u2net")[0] == "u2net"
    assert RembgSegmenter.model_file("/m/x.onnx")[0] == "u2net_custom"


@pytest.mark.skipif(importlib.util.find_spec("rembg") is not None, reason="rembg is installed")
def test_rembg_package_missing(make_settings, tmp_path):
    model = tmp_path / "u2net.onnx"
    model.write_bytes(b"not really onnx")
    with pytest.raises(BackendUnavailable) as info:
        load_backend("segment", make_settings(segment_backend="rembg", segment_model=str(model)))
    assert not isinstance(info.value, MissingWeightsError)
    assert "pip install 'rembg[cpu]'" in str(info.value)


def test_rembg_mask_conversion():
    from PIL import Image

    def fake_remove(img, session, only_mask):
        assert only_mask and session == "S"
        arr = np.zeros((img.height, img.width), np.uint8)
        arr[:, : img.width // 2] = 255
        return Image.fromarray(arr, "L")

    seg = RembgSegmenter("S", fake_remove)
    mask = seg.segment(np.zeros((8, 10, 3), np.float32))
    assert mask.dtype == np.float32 and mask.shape == (8, 10)
    assert (mask[:, :5] == 1).all() and (mask[:, 5:] == 0).all()
