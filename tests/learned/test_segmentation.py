"""TransformersSegmenter from a tiny SegFormer and from stand-ins of the published matting
checkpoints (RMBG-1.4, RMBG-2.0, BiRefNet: their remote-code files, config.json and weight
layout, see tests/learned/remote_code); RembgSegmenter's availability messages."""

from __future__ import annotations

import importlib.util
import inspect
import json

import numpy as np
import pytest
import torch

from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.segmentation import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MATTING_EXTRA,
    RembgSegmenter,
    TransformersSegmenter,
    matting_probability,
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


def test_non_segmentation_model_is_refused(tiny_dir, make_settings, monkeypatch):
    monkeypatch.delenv("GLIMPSE3D_TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(BackendUnavailable, match="not a transformers semantic-segmentation"):
        load_backend("segment", make_settings(segment_backend="transformers",
                                              segment_model=str(tiny_dir("dinov2")), device="cpu"))


def _matting(make_settings, path, trust=True):
    return load_backend("segment", make_settings(
        segment_backend="transformers", segment_model=str(path), device="cpu",
        trust_remote_code=trust))


def _resized(rgb, size, mean, std):
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return (t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _upsampled(t, h, w):
    return torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear",
                                           align_corners=False)[0, 0].numpy()


def test_remote_code_needs_trust(tiny_dir, make_settings, monkeypatch, capsys):
    monkeypatch.delenv("GLIMPSE3D_TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(BackendUnavailable, match="GLIMPSE3D_TRUST_REMOTE_CODE=1"):
        _matting(make_settings, tiny_dir("rmbg14"), trust=False)
    assert "trust_remote_code" not in capsys.readouterr().out  # no interactive prompt


def test_rmbg14_checkpoint(tiny_dir, make_settings):
    """briaai/RMBG-1.4: BriaRMBG.forward(x), input (x/255 - 0.5)/1.0 at 1024^2, output
    ``result[0][0]`` (already a sigmoid) min-max normalised as in its model card."""
    path = tiny_dir("rmbg14")
    seg = _matting(make_settings, path)
    assert seg.mode == "matting" and type(seg.model).__name__ == "BriaRMBG"
    assert list(inspect.signature(seg.model.forward).parameters) == ["x"]
    assert json.loads((path / "config.json").read_text())["auto_map"]["AutoConfig"] == \
        "MyConfig.RMBGConfig"
    assert {"conv_in.weight", "stage1.rebnconvin.conv_s1.weight", "stage6.rebnconv4.bn_s1.weight",
            "stage1d.rebnconv1d.conv_s1.weight", "side6.bias"} <= set(seg.model.state_dict())
    rgb = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    x = seg._pixel_values(rgb)
    u8 = torch.from_numpy(rgb * 255).permute(2, 0, 1)[None]
    card = torch.nn.functional.interpolate(u8, size=(1024, 1024), mode="bilinear") / 255.0 - 0.5
    np.testing.assert_allclose(x.numpy(), card.numpy(), atol=1e-5)
    mask = seg.segment(rgb)
    assert mask.shape == (40, 50) and mask.dtype == np.float32
    with torch.no_grad():  # the model card's postprocess_image: resize, then min-max
        result = torch.nn.functional.interpolate(seg.model(x)[0][0], size=(40, 50), mode="bilinear")
    result = (result - result.min()) / (result.max() - result.min())
    np.testing.assert_allclose(mask, result[0, 0].numpy(), atol=1e-5)
    assert mask.min() == 0.0 and mask.max() == 1.0
    assert mask.max() - mask.min() > 0.1


@pytest.mark.parametrize("name", ["birefnet", "rmbg20"])
def test_birefnet_family_checkpoint(tiny_dir, make_settings, name):
    """ZhengPeng7/BiRefNet and briaai/RMBG-2.0: ImageNet-normalised 1024^2 input,
    ``model(x)[-1].sigmoid()``; the class replaces ``self.config`` and skips post_init."""
    pytest.importorskip("einops")
    pytest.importorskip("kornia")
    seg = _matting(make_settings, tiny_dir(name))
    assert type(seg.model).__name__ == "BiRefNet"
    assert list(inspect.signature(seg.model.forward).parameters) == ["x"]
    keys = set(seg.model.state_dict())
    assert any(k.startswith("bb.") for k in keys) and "decoder.conv_out1.0.weight" in keys
    assert any(k.startswith("squeeze_module.0.") for k in keys)
    rgb = np.random.default_rng(1).random((30, 36, 3)).astype(np.float32)
    x = seg._pixel_values(rgb)
    np.testing.assert_allclose(x.numpy(), _resized(rgb, 1024, IMAGENET_MEAN, IMAGENET_STD).numpy(),
                               atol=1e-5)
    mask = seg.segment(rgb)
    with torch.no_grad():
        preds = seg.model(x)
    assert isinstance(preds, list) and preds[-1].shape == (1, 1, 1024, 1024)
    np.testing.assert_allclose(mask, _upsampled(preds[-1].sigmoid(), 30, 36), atol=1e-5)
    assert 0.0 < mask.min() <= mask.max() < 1.0  # a sigmoid, not min-max normalised


@pytest.mark.skipif(all(importlib.util.find_spec(m) for m in ("timm", "torchvision")),
                    reason="timm and torchvision are installed")
def test_missing_remote_code_dependencies_name_the_extra(tiny_dir, make_settings):
    """The published birefnet.py imports timm and torchvision: one line naming the extra."""
    with pytest.raises(BackendUnavailable) as info:
        _matting(make_settings, tiny_dir("birefnet_full_imports"))
    msg = str(info.value)
    assert "\n" not in msg and f"pip install '{MATTING_EXTRA}'" in msg
    assert "timm" in msg or "torchvision" in msg


def test_matting_output_forms():
    final = torch.full((1, 1, 4, 4), 2.0)
    side = torch.zeros((1, 1, 4, 4))
    np.testing.assert_allclose(matting_probability([side, final], "last_logits", (4, 4)),
                               torch.sigmoid(final))  # BiRefNet: last is final
    prob = torch.linspace(0.2, 0.6, 16).view(1, 1, 4, 4)
    rmbg = matting_probability(([prob, side], ["features"]), "first_sigmoid", (8, 8))  # RMBG-1.4
    assert rmbg.shape == (1, 1, 8, 8)
    assert float(rmbg.min()) == 0.0 and float(rmbg.max()) == 1.0
    assert matting_probability(torch.ones(1, 4, 4), "last_logits", (2, 2)).shape == (1, 1, 2, 2)


def test_segment_missing_weights(make_settings):
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_SEGMENT_MODEL="):
        load_backend("segment", make_settings(segment_backend="transformers"))


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
