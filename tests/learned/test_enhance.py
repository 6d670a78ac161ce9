"""SDXLEnhancer from tiny SDXL (+ depth ControlNet) checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glimpse3d.errors import UserError
from glimpse3d.learned.common import MissingWeightsError
from glimpse3d.learned.enhance import (
    SDXLEnhancer,
    depth_control_image,
    match_colors,
)
from glimpse3d.pipeline.backends import STRENGTH_PRESETS, load_backend, resolve_strength


@pytest.fixture
def view():
    """A 48x48 render (noise), its reference RGBA and a depth map with a square object."""
    rng = np.random.default_rng(0)
    rendered = rng.random((48, 48, 3)).astype(np.float32)
    reference = np.concatenate([np.full((48, 48, 3), 0.7), np.ones((48, 48, 1))], -1)
    depth = np.zeros((48, 48), np.float32)
    depth[12:36, 12:36] = np.linspace(1.0, 1.4, 24, dtype=np.float32)[None, :]
    return rendered, reference.astype(np.float32), depth


def _settings(make_settings, tiny_dir, controlnet=True):
    kw = {"enhance_backend": "diffusers", "enhance_model": str(tiny_dir("sdxl")), "device": "cpu"}
    if controlnet:
        kw["enhance_controlnet_model"] = str(tiny_dir("controlnet"))
    return make_settings(**kw)


def _record_pipe_calls(monkeypatch, pipe) -> list[dict]:
    """Keyword arguments of every call of ``pipe``'s class, in order (the call still runs)."""
    seen: list[dict] = []
    orig = pipe.__class__.__call__

    def spy(self, *a, **kw):
        seen.append(kw)
        return orig(self, *a, **kw)

    monkeypatch.setattr(pipe.__class__, "__call__", spy)
    return seen


def test_controlnet_img2img(make_settings, tiny_dir, view):
    enh = load_backend("enhance", _settings(make_settings, tiny_dir))
    assert isinstance(enh, SDXLEnhancer) and enh.name == "diffusers" and enh.controlnet
    assert type(enh.pipe).__name__ == "StableDiffusionXLControlNetImg2ImgPipeline"
    assert enh.working_size(48, 48) == (64, 64) and enh.working_size(96, 48) == (64, 32)
    enh = enh.with_options(steps=4)
    rendered, reference, depth = view
    out = enh.enhance(rendered, reference, depth, 0.5, seed=1)
    assert out.shape == (48, 48, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    bg = depth == 0
    bg[8:40, 8:40] = False  # away from the feathered edge
    np.testing.assert_array_equal(out[bg], rendered[bg])  # background kept
    assert np.abs(out[16:32, 16:32] - rendered[16:32, 16:32]).max() > 1e-3  # object changed
    np.testing.assert_array_equal(out, enh.enhance(rendered, reference, depth, 0.5, seed=1))
    assert np.abs(out - enh.enhance(rendered, reference, depth, 0.5, seed=2)).max() > 1e-3
    # presets by name
    assert enh.enhance(rendered, reference, depth, "low", seed=1).shape == (48, 48, 3)


def test_plain_img2img_without_controlnet(make_settings, tiny_dir, view, monkeypatch):
    monkeypatch.delenv("GLIMPSE3D_ENHANCE_LIGHTNING", raising=False)
    enh = load_backend("enhance", _settings(make_settings, tiny_dir, controlnet=False))
    assert type(enh.pipe).__name__ == "StableDiffusionXLImg2ImgPipeline" and not enh.controlnet
    assert enh.options.num_steps == 30 and enh.options.guidance == 5.0
    rendered, reference, depth = view
    out = enh.with_options(steps=2).enhance(rendered, reference, depth, 0.75, seed=0)
    assert out.shape == (48, 48, 3) and out.dtype == np.float32


def test_lightning_scheduler(make_settings, tiny_dir, view, monkeypatch):
    monkeypatch.setenv("GLIMPSE3D_ENHANCE_LIGHTNING", "1")
    enh = load_backend("enhance", _settings(make_settings, tiny_dir))
    sched = enh.pipe.scheduler
    assert type(sched).__name__ == "EulerDiscreteScheduler"
    assert sched.config.timestep_spacing == "trailing"
    assert enh.options.num_steps == 4 and enh.options.guidance == 0.0
    rendered, reference, depth = view
    seen = _record_pipe_calls(monkeypatch, enh.pipe)
    out = enh.enhance(rendered, reference, depth, 0.5, seed=0)
    assert out.shape == (48, 48, 3)
    assert seen[0]["num_inference_steps"] == 4 and seen[0]["guidance_scale"] == 0.0
    assert "negative_prompt" not in seen[0]
    # trailing spacing, 4 steps: 999, 749, 499, 249 -> strength 0.5 runs the last two
    sched.set_timesteps(4)
    assert [int(t) for t in sched.timesteps] == [999, 749, 499, 249]


def test_lightning_unet_file(make_settings, tiny_dir, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from tests.learned.tiny import _tiny_sdxl_unet

    torch.manual_seed(123)
    unet = _tiny_sdxl_unet(64)
    path = tmp_path / "sdxl_lightning_4step_unet.safetensors"
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(path))
    monkeypatch.setenv("GLIMPSE3D_ENHANCE_LIGHTNING_UNET", str(path))
    enh = load_backend("enhance", _settings(make_settings, tiny_dir, controlnet=False))
    assert enh.options.lightning
    for name, tensor in unet.state_dict().items():
        torch.testing.assert_close(enh.pipe.unet.state_dict()[name], tensor)
    monkeypatch.setenv("GLIMPSE3D_ENHANCE_LIGHTNING_UNET", str(tmp_path / "missing.safetensors"))
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_ENHANCE_LIGHTNING_UNET"):
        load_backend("enhance", _settings(make_settings, tiny_dir, controlnet=False))


def test_strength_presets():
    assert STRENGTH_PRESETS == {"low": 0.25, "medium": 0.5, "high": 0.75}
    assert resolve_strength("medium") == 0.5 and resolve_strength(0.75) == 0.75
    assert resolve_strength("0.3") == 0.3
    for bad in (0, -0.1, 1.5, float("nan"), "max"):
        with pytest.raises(UserError):
            resolve_strength(bad)


def test_depth_control_image_and_color_match():
    depth = np.array([[0.0, 1.0], [2.0, 0.0]], np.float32)
    ctl = depth_control_image(depth)
    assert ctl.shape == (2, 2, 3)
    np.testing.assert_allclose(ctl[..., 0], [[0.0, 1.0], [0.1, 0.0]])
    img = np.full((8, 8, 3), 0.2, np.float32)
    img[:4] = 0.4
    ref = np.concatenate([np.full((8, 8, 3), 0.6), np.ones((8, 8, 1))], -1).astype(np.float32)
    ref[:4, :, :3] = 0.8
    full = match_colors(img, np.ones((8, 8)), ref, 1.0)
    np.testing.assert_allclose(full, ref[..., :3], atol=1e-3)
    half = match_colors(img, np.ones((8, 8)), ref, 0.5)
    np.testing.assert_allclose(half, (img + ref[..., :3]) / 2, atol=1e-3)


def test_missing_weights(make_settings, tiny_dir, tmp_path):
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_ENHANCE_MODEL="):
        load_backend("enhance", make_settings(enhance_backend="diffusers"))
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_ENHANCE_CONTROLNET_MODEL"):
        load_backend("enhance", make_settings(
            enhance_backend="diffusers", enhance_model=str(tiny_dir("sdxl")),
            enhance_controlnet_model=str(tmp_path / "no-controlnet")))


def test_project_override(make_settings, tiny_dir):
    enh = load_backend("enhance", make_settings(device="cpu"), overrides={
        "enhance_backend": "diffusers", "enhance_model": str(tiny_dir("sdxl"))})
    assert isinstance(enh, SDXLEnhancer)


def test_fp16_variant_directory(make_settings, tiny_dir, view):
    """A directory with only *.fp16.safetensors (hf download --include "*fp16*") loads."""
    from glimpse3d.learned.common import local_variant

    path = tiny_dir("sdxl_fp16")
    assert local_variant(str(path), "unet") == "fp16"
    assert local_variant(str(tiny_dir("sdxl")), "unet") is None
    enh = load_backend("enhance", make_settings(enhance_backend="diffusers",
                                                enhance_model=str(path), device="cpu"))
    rendered, reference, depth = view
    out = enh.with_options(steps=2).enhance(rendered, reference, depth, 0.5)
    assert out.shape == (48, 48, 3)


def test_sdxl_turbo_runs_without_guidance_in_few_steps(make_settings, tiny_dir, view, monkeypatch):
    monkeypatch.delenv("GLIMPSE3D_ENHANCE_LIGHTNING", raising=False)
    path = tiny_dir("sdxl_turbo")  # "turbo" in the path, as stabilityai/sdxl-turbo
    enh = load_backend("enhance", make_settings(enhance_backend="diffusers",
                                                enhance_model=str(path), device="cpu"))
    assert enh.options.turbo and not enh.options.lightning
    assert enh.options.num_steps == 2 and enh.options.guidance == 0.0
    assert type(enh.pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"  # its own
    seen = _record_pipe_calls(monkeypatch, enh.pipe)
    rendered, reference, depth = view
    enh.enhance(rendered, reference, depth, 0.5, seed=0)
    assert seen[0]["num_inference_steps"] == 2 and seen[0]["guidance_scale"] == 0.0
    assert "negative_prompt" not in seen[0]


def test_fp16_variant_is_chosen_for_fp16_placement(tiny_dir):
    """With fp32 and fp16 files side by side (SDXL base), a GPU placement (fp16) loads the
    fp16 files and the CPU (fp32) the plain ones; the two sets differ on purpose."""
    from safetensors.torch import load_file

    from glimpse3d.learned.common import Placement

    path = tiny_dir("sdxl_both_variants")
    name = "conv_in.weight"
    plain = load_file(str(path / "unet" / "diffusion_pytorch_model.safetensors"))[name]
    half = load_file(str(path / "unet" / "diffusion_pytorch_model.fp16.safetensors"))[name]
    assert not torch.equal(plain, half)
    cpu = SDXLEnhancer.load(str(path), Placement(torch.device("cpu"), torch.float32))
    torch.testing.assert_close(cpu.pipe.unet.state_dict()[name], plain)
    gpu_like = SDXLEnhancer.load(str(path), Placement(torch.device("cpu"), torch.float16))
    assert gpu_like.pipe.unet.dtype == torch.float16
    torch.testing.assert_close(gpu_like.pipe.unet.state_dict()[name], half.half())
