"""View enhancement with SDXL img2img (``diffusers``), optionally depth-ControlNet guided.

* ``enhance_model`` - an SDXL checkpoint (hub id or local diffusers directory), e.g.
  ``stabilityai/stable-diffusion-xl-base-1.0``. Any img2img-capable checkpoint that
  ``AutoPipelineForImage2Image`` loads also works without a ControlNet.
* ``enhance_controlnet_model`` - a depth ControlNet for SDXL, e.g.
  ``diffusers/controlnet-depth-sdxl-1.0``; with it the pipeline is
  ``StableDiffusionXLControlNetImg2ImgPipeline`` and the view's depth map (as normalised
  disparity, near = bright, background = black) is the control image.
* SDXL-Lightning (``ByteDance/SDXL-Lightning``, which publishes UNet files only): set
  ``enhance_lightning_unet`` (env ``GLIMPSE3D_ENHANCE_LIGHTNING_UNET``) to the
  ``sdxl_lightning_4step_unet.safetensors`` file, loaded into the base model's UNet (or
  ``GLIMPSE3D_ENHANCE_LIGHTNING=1`` for a checkpoint with a Lightning UNet baked in, also
  recognised by "lightning" in its id/path). Lightning uses ``EulerDiscreteScheduler``
  with ``timestep_spacing="trailing"``, 4 steps and guidance 0.
* SDXL-Turbo (``stabilityai/sdxl-turbo``, recognised by "turbo" in its id/path or
  ``GLIMPSE3D_ENHANCE_TURBO=1``): its own scheduler, 2 steps, guidance 0, 512 px native.

Weights load in fp16 with the ``fp16`` variant files when the repository has them and
the model runs on a GPU (:func:`~glimpse3d.learned.common.weight_variant`).

The render's background (where depth is 0) is kept; inside the object the diffusion
output is used, then its colour statistics are pulled towards the reference photo's
foreground (``color_match`` weight).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glimpse3d.errors import UserError
from glimpse3d.learned.common import (
    MissingWeightsError,
    Placement,
    cached,
    check_image,
    diffusers_kwargs,
    ensure_resident,
    extra_setting,
    kwargs_dtype,
    load_failure,
    pipeline_modules,
    place_pipeline,
    require,
    resize,
    resolve_weights,
    seeded_generator,
    to_pil,
    weight_variant,
)
from glimpse3d.pipeline.ports import resolve_strength

if TYPE_CHECKING:
    from glimpse3d.config import Settings

EXAMPLE_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
EXAMPLE_CONTROLNET = "diffusers/controlnet-depth-sdxl-1.0"

#: Named img2img strengths: the fraction of the diffusion trajectory that is re-run.

_PIPE_LOCKS: dict[int, threading.Lock] = {}

DEFAULT_PROMPT = (
    "a sharp, detailed, high quality photo of a single object, studio lighting, plain background"
)
DEFAULT_NEGATIVE = "blurry, low quality, distorted, deformed, noisy, artifacts, text, watermark"


@dataclass(frozen=True)
class EnhanceOptions:
    """Sampling options. ``steps``/``guidance_scale`` of None pick the model's defaults
    (30 / 5.0; Lightning: 4 / 0.0; Turbo: 2 / 0.0). ``resolution`` None = the UNet's native
    size (1024 for SDXL, 512 for SDXL-Turbo)."""

    lightning: bool = False
    turbo: bool = False
    lightning_unet: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    controlnet_scale: float = 0.5
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE
    resolution: int | None = None
    color_match: float = 0.5

    @property
    def distilled(self) -> bool:
        """Few-step distilled models (Lightning, Turbo) run without classifier-free guidance."""
        return self.lightning or self.turbo

    @property
    def num_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return 4 if self.lightning else 2 if self.turbo else 30

    @property
    def guidance(self) -> float:
        if self.guidance_scale is not None:
            return self.guidance_scale
        return 0.0 if self.distilled else 5.0


class SDXLEnhancer:
    """Enhance a rendered view with SDXL img2img (+ depth ControlNet when configured).

    Settings: ``enhance_model``, ``enhance_controlnet_model``, ``device``; optional
    ``enhance_lightning``, ``enhance_lightning_unet``, ``enhance_steps``,
    ``enhance_prompt`` (attributes or ``GLIMPSE3D_*`` env variables).
    """

    name = "diffusers"

    def __init__(self, pipe: Any, placement: Placement, options: EnhanceOptions,
                 controlnet: bool, managed_offload: bool = False) -> None:
        self.pipe = pipe
        self.placement = placement
        self.options = options
        self.controlnet = controlnet
        self.managed_offload = managed_offload  # accelerate's model CPU offload
        # one call at a time per loaded pipeline (schedulers keep per-call state)
        self._lock = _PIPE_LOCKS.setdefault(id(pipe), threading.Lock())

    # ---------------------------------------------------------------- loading

    @classmethod
    def from_settings(cls, settings: Settings) -> SDXLEnhancer:
        ref = resolve_weights(
            settings.enhance_model, "enhance_model", EXAMPLE_MODEL, ("model_index.json",)
        )
        cn_value = settings.enhance_controlnet_model
        cn_ref = (
            resolve_weights(cn_value, "enhance_controlnet_model", EXAMPLE_CONTROLNET)
            if cn_value else None
        )
        lightning_unet = extra_setting(settings, "enhance_lightning_unet", "") or None
        if lightning_unet and not Path(lightning_unet).expanduser().is_file():
            raise MissingWeightsError(
                f"enhance_lightning_unet file {lightning_unet!r} not found: set "
                "GLIMPSE3D_ENHANCE_LIGHTNING_UNET to a local sdxl_lightning_4step_unet.safetensors "
                "(on a machine with internet: hf download ByteDance/SDXL-Lightning "
                "sdxl_lightning_4step_unet.safetensors --local-dir ./weights/sdxl-lightning)"
            )
        lightning = bool(
            extra_setting(settings, "enhance_lightning", False)
            or lightning_unet
            or "lightning" in ref.lower()
        )
        turbo = not lightning and bool(
            extra_setting(settings, "enhance_turbo", False) or "turbo" in ref.lower()
        )
        steps = extra_setting(settings, "enhance_steps", 0) or None
        options = EnhanceOptions(
            lightning=lightning,
            turbo=turbo,
            lightning_unet=str(Path(lightning_unet).expanduser().resolve()) if lightning_unet else None,
            steps=int(steps) if steps else None,
            prompt=extra_setting(settings, "enhance_prompt", "") or DEFAULT_PROMPT,
        )
        placement = Placement.from_settings(settings.device)
        key = (cn_ref, options.lightning, options.lightning_unet)
        enhancer = cached(
            cls, ref, placement.device, lambda: cls.load(ref, placement, cn_ref, options), key
        )
        if enhancer.options != options:  # same weights, other sampling options
            enhancer = cls(enhancer.pipe, placement, options, enhancer.controlnet,
                           enhancer.managed_offload)
        return enhancer

    @classmethod
    def load(cls, ref: str, placement: Placement, controlnet_ref: str | None = None,
             options: EnhanceOptions | None = None) -> SDXLEnhancer:
        """Build the diffusers pipeline from a checkpoint (+ optional ControlNet)."""
        options = options or EnhanceOptions()
        diffusers = require("diffusers", "the diffusers enhance backend")
        kwargs = diffusers_kwargs(placement)
        dtype = kwargs_dtype(kwargs)
        extra: dict[str, Any] = {}
        try:
            variant = weight_variant(ref, "unet", dtype)
            if variant:
                extra["variant"] = variant
            if options.lightning_unet:
                extra["unet"] = _lightning_unet(diffusers, ref, options.lightning_unet, kwargs)
            if controlnet_ref:
                cn_kwargs = dict(kwargs)
                if weight_variant(controlnet_ref, "", dtype):
                    cn_kwargs["variant"] = "fp16"
                try:
                    cn = diffusers.ControlNetModel.from_pretrained(controlnet_ref, **cn_kwargs)
                except (OSError, ValueError) as exc:
                    raise load_failure(
                        "enhance_controlnet_model", controlnet_ref, EXAMPLE_CONTROLNET, exc
                    ) from exc
                pipe = diffusers.StableDiffusionXLControlNetImg2ImgPipeline.from_pretrained(
                    ref, controlnet=cn, **extra, **kwargs
                )
            else:
                pipe = diffusers.AutoPipelineForImage2Image.from_pretrained(ref, **extra, **kwargs)
        except MissingWeightsError:
            raise
        except (OSError, ValueError) as exc:
            raise load_failure("enhance_model", ref, EXAMPLE_MODEL, exc) from exc
        if options.lightning:
            pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(
                pipe.scheduler.config, timestep_spacing="trailing"
            )
        managed = place_pipeline(pipe, placement)
        return cls(pipe, placement, options, controlnet=controlnet_ref is not None,
                   managed_offload=managed)

    def modules(self) -> list[torch.nn.Module]:
        return pipeline_modules(self.pipe)

    def with_options(self, **changes: Any) -> SDXLEnhancer:
        """The same loaded pipeline with other sampling options (no reload)."""
        return SDXLEnhancer(self.pipe, self.placement, replace(self.options, **changes),
                            self.controlnet, self.managed_offload)

    # ---------------------------------------------------------------- running

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) the pipeline runs at: longer side = native resolution, multiples of the
        UNet's total downsampling factor."""
        unet = self.pipe.unet
        vae_factor = int(getattr(self.pipe, "vae_scale_factor", 8))
        multiple = vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)
        native = self.options.resolution or int(unet.config.sample_size) * vae_factor
        s = native / max(width, height)
        w = max(multiple, int(round(width * s / multiple)) * multiple)
        h = max(multiple, int(round(height * s / multiple)) * multiple)
        return w, h

    def enhance(
        self,
        rendered: np.ndarray,
        reference: np.ndarray,
        depth: np.ndarray,
        strength: float | str,
        seed: int = 0,
    ) -> np.ndarray:
        """Enhance ``rendered`` (H,W,3) [0,1] guided by ``reference`` RGBA (h,w,4) and the
        view's ``depth`` (H,W, z, 0 = background) -> (H,W,3) float32 in [0,1].

        ``strength`` is a float in (0,1] or a preset name (see ``glimpse3d.pipeline.backends.STRENGTH_PRESETS``);
        ``seed`` seeds a ``torch.Generator`` so equal inputs give equal outputs.
        """
        img = check_image(rendered, (3, 4), "rendered view")[..., :3]
        ref = check_image(reference, (3, 4), "reference view")
        s = resolve_strength(strength)
        h, w = img.shape[:2]
        dep = np.asarray(depth, dtype=np.float32)
        if dep.shape != (h, w):
            raise UserError(f"depth shape {dep.shape} does not match the view {(h, w)}")
        fg = np.isfinite(dep) & (dep > 0)
        mask = fg.astype(np.float32) if fg.any() else np.ones((h, w), np.float32)

        ww, wh = self.working_size(w, h)
        steps = max(self.options.num_steps, math.ceil(1.0 / s))
        call: dict[str, Any] = {
            "prompt": self.options.prompt,
            "image": to_pil(resize(img, ww, wh)),
            "strength": s,
            "num_inference_steps": steps,
            "guidance_scale": self.options.guidance,
            "generator": seeded_generator(seed, self.placement.device),
            "output_type": "np",
            "height": wh,
            "width": ww,
        }
        if self.options.guidance > 1.0:
            call["negative_prompt"] = self.options.negative_prompt
        if self.controlnet:
            call["control_image"] = to_pil(resize(depth_control_image(dep), ww, wh))
            call["controlnet_conditioning_scale"] = self.options.controlnet_scale
        else:
            call.pop("height")
            call.pop("width")
        ensure_resident(self)
        with self._lock, torch.inference_mode():
            out = self.pipe(**call).images[0]
        out = resize(np.asarray(out, dtype=np.float32), w, h)
        if self.options.color_match > 0:
            out = match_colors(out, mask, ref, self.options.color_match)
        feather = _feather(mask)[..., None]
        result = feather * out + (1.0 - feather) * img
        return np.clip(result, 0.0, 1.0).astype(np.float32)


def _lightning_unet(diffusers: Any, ref: str, unet_file: str, kwargs: dict[str, Any]) -> Any:
    """The base model's UNet with the SDXL-Lightning weights loaded from ``unet_file``."""
    from safetensors.torch import load_file

    variant = weight_variant(ref, "unet", kwargs_dtype(kwargs))
    unet = diffusers.UNet2DConditionModel.from_pretrained(
        ref, subfolder="unet", **kwargs, **({"variant": variant} if variant else {})
    )
    state = load_file(unet_file, device="cpu")
    missing, unexpected = unet.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MissingWeightsError(
            f"enhance_lightning_unet {unet_file!r} does not fit the UNet of {ref!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors); use the "
            "SDXL-Lightning UNet file that matches an SDXL base checkpoint"
        )
    return unet.to(kwargs_dtype(kwargs))


def depth_control_image(depth: np.ndarray) -> np.ndarray:
    """Depth z (H,W, 0 = background) -> control image (H,W,3) in [0,1]: normalised
    disparity over the object (nearest = 1, farthest = 0.1), background 0 - the
    MiDaS-style convention depth ControlNets are trained on."""
    dep = np.asarray(depth, dtype=np.float32)
    fg = np.isfinite(dep) & (dep > 0)
    out = np.zeros(dep.shape, np.float32)
    if fg.any():
        inv = 1.0 / dep[fg]
        lo, hi = float(inv.min()), float(inv.max())
        out[fg] = 0.1 + 0.9 * ((inv - lo) / (hi - lo) if hi > lo else 1.0)
    return np.repeat(out[..., None], 3, axis=2)


def match_colors(img: np.ndarray, mask: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """Move the per-channel mean/std of ``img`` inside ``mask`` towards those of the
    reference's foreground (alpha > 0.5, or all of it without alpha) by ``weight``."""
    ref_rgb = reference[..., :3]
    ref_fg = reference[..., 3] > 0.5 if reference.shape[2] == 4 else np.ones(reference.shape[:2], bool)
    sel = mask > 0.5
    if sel.sum() < 16 or ref_fg.sum() < 16:
        return img
    src = img[sel]
    mu_s, sd_s = src.mean(0), src.std(0) + 1e-4
    tgt = ref_rgb[ref_fg]
    mu_t, sd_t = tgt.mean(0), tgt.std(0) + 1e-4
    matched = (img - mu_s) / sd_s * sd_t + mu_t
    w = float(np.clip(weight, 0.0, 1.0))
    out = img.copy()
    out[sel] = (1 - w) * img[sel] + w * matched[sel]
    return np.clip(out, 0.0, 1.0)


def _feather(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Soften a binary mask's edge by a small box blur (keeps 1 inside, 0 far outside)."""
    import cv2

    if mask.min() == mask.max():
        return mask.astype(np.float32)
    k = 2 * radius + 1
    return np.clip(cv2.blur(mask.astype(np.float32), (k, k)), 0.0, 1.0)
