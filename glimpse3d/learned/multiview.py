"""Novel-view generation for the 16 SyncDreamer cameras (docs/architecture.md, "Cameras").

* :class:`Zero123Multiview` - Zero-1-to-3 built from diffusers
  and transformers components. diffusers ships no Zero123 pipeline class, so the sampler
  is implemented here on ``UNet2DConditionModel`` + ``AutoencoderKL`` + a scheduler + a
  ``CLIPVisionModelWithProjection``; the checkpoint directory layout is the one of the
  public diffusers conversions (``kxic/zero123-xl``, ``kxic/zero123-165000``, converted
  from ``cvlab/zero123-weights`` by kxhit/zero123-hf)::

      model_index.json
      unet/               UNet2DConditionModel, in_channels=8 (noisy latents + input latents)
      vae/                AutoencoderKL
      image_encoder/      CLIPVisionModelWithProjection (CLIP ViT-L/14 image tower)
      feature_extractor/  CLIPImageProcessor
      scheduler/          DDIMScheduler (any diffusers scheduler config works)
      cc_projection/      CCProjection: Linear(768 + 4 -> 768)

  Each target camera is conditioned on its pose relative to view 0 (the input photo):
  ``[radians(Δpolar), sin(Δazimuth), cos(Δazimuth), Δdistance]`` with
  ``Δpolar = -(elevation_k - elevation_0)`` (Zero123 uses the polar angle from +Z) and
  ``Δazimuth = azimuth_k - azimuth_0`` (counter-clockwise seen from above, the same sense
  as our cameras). The CLIP image embedding and that 4-vector are concatenated and
  projected by ``cc_projection`` into the UNet's cross-attention context; the input's
  VAE latents (``latent_dist.mode()``, unscaled as in the original Zero123) are
  concatenated to the noisy latents. Classifier-free guidance uses zero context and zero
  latents as the unconditional branch. View 0 is the input itself.
Zero123++ (:mod:`glimpse3d.learned.zero123plus`) and SyncDreamer
(:mod:`glimpse3d.learned.syncdreamer`) make their own fixed views.

Generated views are on a flat background; alpha is recovered from the distance to it.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glimpse3d.learned.common import (
    Placement,
    cached,
    check_image,
    composite,
    ensure_resident,
    load_failure,
    require,
    resize,
    resolve_weights,
    seeded_generator,
    transformers_kwargs,
)
from glimpse3d.pipeline.ports import BackendUnavailable
from glimpse3d.splat.cameras import Camera

if TYPE_CHECKING:
    from glimpse3d.config import Settings

EXAMPLE_MODEL = "kxic/zero123-xl"

_CC_CLASS: list[type] = []


def _cc_projection_class() -> type:
    """``CCProjection`` (a diffusers ``ModelMixin``), defined on first use so that this
    module imports without diffusers."""
    if _CC_CLASS:
        return _CC_CLASS[0]
    diffusers = require("diffusers", "the Zero123 multiview backend")
    from diffusers.configuration_utils import ConfigMixin, register_to_config

    class CCProjection(diffusers.ModelMixin, ConfigMixin):
        """Zero123's camera-conditioning projection: Linear(image_embed + 4 -> context)."""

        @register_to_config
        def __init__(self, in_channel: int = 772, out_channel: int = 768) -> None:
            super().__init__()
            self.in_channel = in_channel
            self.out_channel = out_channel
            self.projection = torch.nn.Linear(in_channel, out_channel)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.projection(x)

    CCProjection.__module__ = __name__
    _CC_CLASS.append(CCProjection)
    return CCProjection


def __getattr__(name: str) -> Any:  # lazy module attribute: ``multiview.CCProjection``
    if name == "CCProjection":
        return _cc_projection_class()
    raise AttributeError(name)


# ------------------------------------------------------------------ camera geometry

def camera_angles(camera: Camera) -> tuple[float, float, float]:
    """(elevation°, azimuth°, distance) of a camera, from its fields or its centre."""
    if all(math.isfinite(v) for v in (camera.elevation, camera.azimuth, camera.distance)):
        return float(camera.elevation), float(camera.azimuth), float(camera.distance)
    c = camera.center
    dist = float(np.linalg.norm(c))
    elev = math.degrees(math.asin(float(np.clip(c[2] / max(dist, 1e-12), -1.0, 1.0))))
    azim = math.degrees(math.atan2(float(c[1]), float(c[0]))) % 360.0
    return elev, azim, dist


def relative_pose(reference: Camera, target: Camera) -> np.ndarray:
    """Zero123 pose vector of ``target`` relative to ``reference``:
    ``[radians(Δpolar), sin Δaz, cos Δaz, Δdistance]`` (Δpolar = -Δelevation), float32."""
    e0, a0, d0 = camera_angles(reference)
    e1, a1, d1 = camera_angles(target)
    daz = math.radians(a1 - a0)
    return np.array(
        [math.radians(-(e1 - e0)), math.sin(daz), math.cos(daz), d1 - d0], dtype=np.float32
    )


def alpha_from_white(rgb: np.ndarray, low: float = 0.03, high: float = 0.10) -> np.ndarray:
    """Soft foreground (H,W) in [0,1] of an object rendered on white: 0 where every channel
    is within ``low`` of white, 1 beyond ``high``; specks removed by a 3x3 opening."""
    return alpha_from_background(rgb, np.ones(3, np.float32), low, high)


def alpha_from_background(rgb: np.ndarray, background: np.ndarray | None = None,
                          low: float = 0.03, high: float = 0.10) -> np.ndarray:
    """Soft foreground (H,W) in [0,1] of an object on a flat background colour (RGB in
    [0,1]; default: the median of the image's 2-px border): 0 where every channel is within
    ``low`` of it, 1 beyond ``high``; specks removed by a 3x3 opening."""
    import cv2

    img = np.clip(np.asarray(rgb, dtype=np.float32)[..., :3], 0, 1)
    if background is None:
        border = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3),
                                 img[:, :2].reshape(-1, 3), img[:, -2:].reshape(-1, 3)])
        background = np.median(border, axis=0)
    dist = np.max(np.abs(img - np.asarray(background, np.float32)), axis=-1)
    a = np.clip((dist - low) / (high - low), 0.0, 1.0).astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    return cv2.morphologyEx(a, cv2.MORPH_OPEN, kernel)


def _rgba(rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    a = alpha_from_white(rgb) if alpha is None else alpha
    return np.concatenate([rgb, a[..., None]], axis=-1).astype(np.float32)


def input_view(processed: np.ndarray, camera: Camera) -> np.ndarray:
    """The input photo as view 0 at the camera's size (RGBA)."""
    if processed.shape[2] == 3:
        processed = _rgba(processed)
    return np.clip(resize(processed, camera.width, camera.height), 0.0, 1.0)


# ------------------------------------------------------------------ Zero123

class Zero123Multiview:
    """Zero-1-to-3 novel views for arbitrary cameras around view 0 (the input).

    Settings: ``multiview_model`` (hub id or local diffusers-layout directory), ``device``.
    Attributes ``num_inference_steps`` (50), ``guidance_scale`` (3.0) and ``batch_size``
    (views per UNet batch, 8) may be changed after loading.
    """

    name = "diffusers"
    #: multiply the conditioning latents by the VAE scaling factor (False = original Zero123)
    scale_image_latents = False

    def __init__(self, components: dict[str, Any], placement: Placement) -> None:
        self.unet = components["unet"]
        self.vae = components["vae"]
        self.image_encoder = components["image_encoder"]
        self.feature_extractor = components["feature_extractor"]
        self.scheduler = components["scheduler"]
        self.cc_projection = components["cc_projection"]
        self.placement = placement
        self.num_inference_steps = 50
        self.guidance_scale = 3.0
        self.batch_size = 8
        self._lock = threading.Lock()  # the scheduler keeps per-call state
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @classmethod
    def from_settings(cls, settings: Settings) -> Zero123Multiview:
        ref = resolve_weights(
            settings.multiview_model, "multiview_model", EXAMPLE_MODEL, ("model_index.json",)
        )
        placement = Placement.from_settings(settings.device)
        loaded = cached(cls, ref, placement.device, lambda: cls.load(ref, placement))
        steps = getattr(settings, "multiview_steps", None)
        if steps:
            loaded.num_inference_steps = int(steps)
        return loaded

    @classmethod
    def load(cls, ref: str, placement: Placement) -> Zero123Multiview:
        diffusers = require("diffusers", "the Zero123 multiview backend")
        tf = require("transformers", "the Zero123 multiview backend")
        from glimpse3d.learned.common import diffusers_kwargs, weight_variant

        dk, tk = diffusers_kwargs(placement), transformers_kwargs(placement)

        def var(sub: str) -> dict[str, Any]:
            v = weight_variant(ref, sub, placement.dtype)
            return {"variant": v} if v else {}

        try:
            sched_cfg = diffusers.DDIMScheduler.load_config(ref, subfolder="scheduler")
            sched_cls = getattr(diffusers, sched_cfg.get("_class_name", "DDIMScheduler"),
                                diffusers.DDIMScheduler)
            comps = {
                "unet": diffusers.UNet2DConditionModel.from_pretrained(
                    ref, subfolder="unet", **dk, **var("unet")
                ),
                "vae": diffusers.AutoencoderKL.from_pretrained(
                    ref, subfolder="vae", **dk, **var("vae")
                ),
                "image_encoder": tf.CLIPVisionModelWithProjection.from_pretrained(
                    ref, subfolder="image_encoder", **tk
                ),
                "feature_extractor": tf.CLIPImageProcessor.from_pretrained(
                    ref, subfolder="feature_extractor"
                ),
                "scheduler": sched_cls.from_config(sched_cfg),
                "cc_projection": _cc_projection_class().from_pretrained(
                    ref, subfolder="cc_projection", **dk
                ),
            }
        except (OSError, ValueError) as exc:
            raise load_failure("multiview_model", ref, EXAMPLE_MODEL, exc) from exc
        if comps["unet"].config.in_channels != 2 * comps["vae"].config.latent_channels:
            raise BackendUnavailable(
                f"multiview_model {ref!r} is not a Zero123 checkpoint: its UNet takes "
                f"{comps['unet'].config.in_channels} channels, Zero123 needs noisy + image latents "
                f"({2 * comps['vae'].config.latent_channels})"
            )
        for key in ("unet", "vae", "image_encoder", "cc_projection"):
            comps[key] = comps[key].to(placement.load_device).eval()
        return cls(comps, placement)

    def modules(self) -> list[torch.nn.Module]:
        return [self.unet, self.vae, self.image_encoder, self.cc_projection]

    @property
    def native_size(self) -> int:
        """Pixel size the UNet was trained at (256 for Zero123)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @torch.inference_mode()
    def _condition(self, rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP image embedding (1,1,D) and VAE latents (1,C,h,w) of the input on white."""
        dev, dt = self.placement.device, self.placement.dtype
        u8 = (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)
        clip_px = self.feature_extractor(images=u8, return_tensors="pt")["pixel_values"]
        emb = self.image_encoder(pixel_values=clip_px.to(dev, dt)).image_embeds[:, None]
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(dev, dt) * 2.0 - 1.0
        lat = self.vae.encode(x).latent_dist.mode()
        if self.scale_image_latents:
            lat = lat * self.vae.config.scaling_factor
        return emb, lat

    @torch.inference_mode()
    def sample(self, rgb: np.ndarray, poses: np.ndarray, seed: int = 0) -> np.ndarray:
        """Views (N,S,S,3) in [0,1] of the input ``rgb`` (S,S,3, on white) for ``poses``
        (N,4) Zero123 pose vectors; ``S`` = :attr:`native_size`. The initial noise of
        pose ``i`` is seeded by ``(seed, i)``."""
        ensure_resident(self)
        with self._lock:
            return self._sample(rgb, poses, seed)

    def _sample(self, rgb: np.ndarray, poses: np.ndarray, seed: int) -> np.ndarray:
        dev, dt = self.placement.device, self.placement.dtype
        emb, img_lat = self._condition(rgb)
        generator = seeded_generator(seed, dev)  # its device is where noise is drawn
        outs: list[np.ndarray] = []
        for start in range(0, len(poses), self.batch_size):
            pose = torch.from_numpy(poses[start:start + self.batch_size]).to(dev, dt)[:, None]
            b = pose.shape[0]
            ctx = self.cc_projection(torch.cat([emb.expand(b, -1, -1), pose], dim=-1))
            lat_c = img_lat.expand(b, -1, -1, -1)
            cfg = self.guidance_scale > 1.0
            if cfg:
                ctx = torch.cat([torch.zeros_like(ctx), ctx])
                lat_c = torch.cat([torch.zeros_like(lat_c), lat_c])
            shape = (self.vae.config.latent_channels, *img_lat.shape[2:])
            noise = [  # per-view noise: view i's result does not depend on the batch
                torch.randn(shape, generator=seeded_generator(seed * 7919 + start + j, dev),
                            device=generator.device, dtype=torch.float32)
                for j in range(b)
            ]
            latents = torch.stack(noise).to(dev, dt) * self.scheduler.init_noise_sigma
            self.scheduler.set_timesteps(self.num_inference_steps, device=dev)
            for t in self.scheduler.timesteps:
                x = torch.cat([latents] * 2) if cfg else latents
                x = self.scheduler.scale_model_input(x, t)
                eps = self.unet(torch.cat([x, lat_c], dim=1), t, encoder_hidden_states=ctx).sample
                if cfg:
                    e_u, e_c = eps.chunk(2)
                    eps = e_u + self.guidance_scale * (e_c - e_u)
                # the scheduler update runs in fp32 (fp16 loses small noise residuals)
                latents = self.scheduler.step(eps.float(), t, latents.float()).prev_sample.to(dt)
            img = self.vae.decode(latents / self.vae.config.scaling_factor).sample
            img = ((img.float() + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            outs.append(img)
        return np.concatenate(outs, axis=0).astype(np.float32)

    def generate(self, processed: np.ndarray, cameras: list[Camera], seed: int = 0) -> list[np.ndarray]:
        """processed RGBA (S,S,4) -> one RGBA (H,W,4) per camera; ``cameras[0]`` is the
        input's viewpoint and gets the input itself."""
        if not cameras:
            return []
        img = check_image(processed, (3, 4), "processed image")
        size = self.native_size
        rgb = resize(composite(img, 1.0), size, size)
        poses = np.stack([relative_pose(cameras[0], cam) for cam in cameras[1:]]) \
            if len(cameras) > 1 else np.zeros((0, 4), np.float32)
        views = self.sample(rgb, poses, seed) if len(poses) else np.zeros((0, size, size, 3))
        out = [input_view(img, cameras[0])]
        for cam, view in zip(cameras[1:], views, strict=True):
            out.append(_rgba(resize(view, cam.width, cam.height)))
        return out
