"""MVCRM refinement (multi-view consistent refinement), classic backend.

One iteration (:func:`refine_iteration`):

1. render the model at the 16 cameras (at ``work_size`` px, over black);
2. enhance every rendering with the enhancer backend, guided by the reference view;
3. accept a view only if the model's depth agrees with the reference depth inside the
   reference silhouette (``depth_consistency >= depth_threshold``) and the enhanced image
   still looks like the reference (``features.similarity >= feature_threshold``);
4. back-project the accepted enhanced views into the gaussians with a few optimisation
   steps (no densification) whose learning rate is ``step_scale`` (default
   ``1 / (1 + iteration)``) times the base rates;
   Every ``HOLDOUT_STRIDE``-th view (offset by the iteration) is *held out* of this update;
5. judge the update on the held-out views against their unenhanced references (PSNR over
   black and silhouette IoU): it is kept only if it generalises to views it was not fitted
   to (+``MIN_HELD_OUT_GAIN_DB``, IoU not lower), otherwise the input model is returned and
   the iteration reports ``converged`` (refinement stops: an update that only fits its own
   enhanced targets is not an improvement);
6. score the resulting model against the (unenhanced) reference views: PSNR, SSIM (over
   black, whole image), depth consistency and feature consistency (means over the views),
   the weighted ``overall_quality`` of :mod:`glimpse3d.pipeline.metrics` and ``converged``
   (the update was rejected, or the quality gained over ``previous_quality`` is below
   ``convergence_threshold``). The recorded metrics never rise unless the model changed.

Images: reference views are straight RGBA (H,W,4) float32 in [0,1]; depths (H,W) camera z,
0 = background. ``IterationResult.rendered`` holds straight RGBA renderings,
``IterationResult.enhanced`` RGB composited over black (premultiplied by the reference
alpha), both at the working size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from glimpse3d.errors import Cancelled, UserError
from glimpse3d.pipeline import metrics as M
from glimpse3d.splat.cameras import Camera
from glimpse3d.splat.device import splat_device
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.rasterizer import render
from glimpse3d.splat.training import TrainConfig, torch_threads, train

if TYPE_CHECKING:
    from glimpse3d.config import Settings

DEPTH_THRESHOLD = 0.5
FEATURE_THRESHOLD = 0.5
CONVERGENCE_THRESHOLD = 0.005
WORK_SIZE = 128
STEPS_PER_ACCEPTED_VIEW = 0.5  # optimisation steps per accepted view (4 views per step)
VIEWS_PER_STEP = 4
# Held-out judge: every HOLDOUT_STRIDE-th view (offset by the iteration) is left out of the
# update and the update is kept only if, on those views, the model moves towards the
# (unenhanced) references by at least MIN_HELD_OUT_GAIN_DB without losing silhouette IoU.
HOLDOUT_STRIDE = 4
MIN_HELD_OUT_GAIN_DB = 0.1
MAX_HELD_OUT_IOU_LOSS = 0.002


class RefinementError(UserError):
    """Refinement inputs are inconsistent (counts, shapes)."""

    http_status = 422


# --------------------------------------------------------------------------- enhancer
def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int = 4, eps: float = 1e-3) -> np.ndarray:
    """He et al. guided filter with a grey (H,W) guide; ``src`` (H,W) or (H,W,C), float32."""
    g = guide.astype(np.float32)
    p = src.astype(np.float32)
    if p.ndim == 3:
        return np.stack([guided_filter(g, p[..., c], radius, eps) for c in range(p.shape[-1])], -1)
    mean_g, mean_p = _box(g, radius), _box(p, radius)
    cov = _box(g * p, radius) - mean_g * mean_p
    var = _box(g * g, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_p - a * mean_g
    return _box(a, radius) * g + _box(b, radius)


class ClassicEnhancer:
    """Classical detail transfer guided by the reference view (no model weights).

    With ``GF(x)`` a guided filter whose guide is the reference's luminance (edge-aware
    low-pass, radius ``radius`` px), the target inside the reference silhouette is::

        target = GF(match(rendered)) + (reference - GF(reference))

    i.e. the rendering's colour-matched (per-channel mean/std inside the silhouette) base
    layer plus the reference's detail layer, both split by the same filter, so a rendering
    that already equals the reference is returned unchanged. Outside the silhouette the
    target is the black background (this removes floaters). The output is
    ``(1 - strength) * rendered + strength * target``, clipped to [0,1]; ``strength`` in
    [0,1] (0 = unchanged). Deterministic (``seed`` unused).
    """

    name = "classic"

    def __init__(self, radius: int = 2, eps: float = 1e-3, max_gain: float = 2.0) -> None:
        self.radius = int(radius)
        self.eps = float(eps)
        self.max_gain = float(max_gain)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClassicEnhancer:  # noqa: ARG003 - no knobs
        return cls()

    def enhance(
        self,
        rendered: np.ndarray,
        reference: np.ndarray,
        depth: np.ndarray,  # noqa: ARG002 - classic transfer needs no depth
        strength: float,
        seed: int = 0,  # noqa: ARG002 - deterministic
    ) -> np.ndarray:
        """rendered (H,W,3) over black, reference RGBA (H,W,4) -> enhanced (H,W,3) in [0,1]."""
        ren = np.asarray(rendered, dtype=np.float32)
        ref = np.asarray(reference, dtype=np.float32)
        if ren.ndim != 3 or ren.shape[-1] != 3:
            raise RefinementError(f"rendered must be RGB (H,W,3), got shape {ren.shape}")
        if ref.ndim != 3 or ref.shape[-1] != 4:
            raise RefinementError(f"reference must be RGBA (H,W,4), got shape {ref.shape}")
        if ref.shape[:2] != ren.shape[:2]:
            ref = cv2.resize(ref, (ren.shape[1], ren.shape[0]), interpolation=cv2.INTER_AREA)
        s = float(np.clip(strength, 0.0, 1.0))
        alpha = np.clip(ref[..., 3], 0.0, 1.0)
        ref_rgb = np.clip(ref[..., :3], 0.0, 1.0) * alpha[..., None]  # over black
        inside = alpha > 0.5

        matched = ren
        if inside.sum() > 16:
            mu_r, sd_r = ren[inside].mean(0), ren[inside].std(0) + 1e-4
            mu_f, sd_f = ref_rgb[inside].mean(0), ref_rgb[inside].std(0) + 1e-4
            gain = np.clip(sd_f / sd_r, 1.0 / self.max_gain, self.max_gain)
            matched = (ren - mu_r) * gain + mu_f
        guide = ref_rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        base = guided_filter(guide, matched, self.radius, self.eps)
        detail = ref_rgb - guided_filter(guide, ref_rgb, self.radius, self.eps)
        target = (base + detail) * alpha[..., None]
        out = (1.0 - s) * ren + s * target
        return np.clip(out, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- results
@dataclass
class IterationResult:
    """Outcome of one refinement iteration (see the module docstring for conventions)."""

    model: GaussianModel
    rendered: list[np.ndarray]
    enhanced: list[np.ndarray]
    accepted: list[bool]
    view_depth_consistency: list[float]
    view_feature_similarity: list[float]
    per_view: list[dict[str, float]]
    metrics: dict[str, float | None]
    converged: bool
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ helpers
def _to_size(img: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return np.asarray(img, dtype=np.float32)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (size, size), interpolation=interp)


def _resize_rgba(rgba: np.ndarray, size: int) -> np.ndarray:
    """Straight RGBA resized with premultiplied area filtering (no dark fringes)."""
    rgba = np.asarray(rgba, dtype=np.float32)
    if rgba.shape[0] == size and rgba.shape[1] == size:
        return rgba
    a = rgba[..., 3:4]
    pre = _to_size(np.concatenate([rgba[..., :3] * a, a], -1), size)
    a2 = pre[..., 3:4]
    rgb = np.where(a2 > 1e-6, pre[..., :3] / np.maximum(a2, 1e-6), 0.0)
    return np.concatenate([np.clip(rgb, 0, 1), a2], -1).astype(np.float32)


def _resize_depth(depth: np.ndarray, size: int) -> np.ndarray:
    """Depth resized by averaging the valid (> 0) samples (0 where none are valid)."""
    d = np.asarray(depth, dtype=np.float32)
    if d.shape == (size, size):
        return d
    valid = (d > 0).astype(np.float32)
    num = _to_size(d * valid, size)
    den = _to_size(valid, size)
    return np.where(den > 0.5, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def _render_np(model: GaussianModel, cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render on the model's device (gsplat on CUDA, numba on the CPU) -> numpy arrays."""
    with torch.no_grad():
        out = render(model, cam)
    return out.rgb.cpu().numpy(), out.alpha.cpu().numpy(), out.depth.cpu().numpy()


def _straight(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    straight = np.where(a > 1e-6, rgb / np.maximum(a, 1e-6), 0.0)
    return np.concatenate([np.clip(straight, 0, 1), np.clip(a, 0, 1)], -1).astype(np.float32)


def refine_config(n_accepted: int, step_scale: float, seed: int, size: int,
                  device: str = "auto") -> TrainConfig:
    """Optimisation used to back-project accepted views (base rates x ``step_scale``)."""
    return TrainConfig(
        device=device,
        steps=max(1, round(STEPS_PER_ACCEPTED_VIEW * n_accepted)),
        image_size=size,
        lr_means=1e-4,
        lr_means_final=5e-5,
        lr_log_scales=2e-3,
        lr_quats=1e-3,
        lr_opacity=2e-2,
        lr_sh_dc=8e-3,
        lr_scale=step_scale,
        lambda_dssim=0.2,
        lambda_alpha=0.2,
        densify=False,
        views_per_step=min(VIEWS_PER_STEP, max(1, n_accepted)),
        seed=seed,
        progress_interval=10**9,
    )


def evaluate_model(
    model: GaussianModel,
    refs: Sequence[np.ndarray],
    ref_depths: Sequence[np.ndarray],
    cams: Sequence[Camera],
    features: Any,
    device: str = "auto",
) -> tuple[list[dict[str, float]], dict[str, float | None], list[tuple[np.ndarray, np.ndarray]]]:
    """Per-view and mean metrics of ``model`` against references already at the camera size
    (rendered on :func:`~glimpse3d.splat.device.splat_device` of ``device``)."""
    model = model.detach().to(splat_device(device))
    per_view: list[dict[str, float]] = []
    renders = []
    for ref, dep, cam in zip(refs, ref_depths, cams, strict=True):
        rgb, alpha, depth = _render_np(model, cam)
        renders.append((rgb, alpha))
        ref_rgb = ref[..., :3] * ref[..., 3:4]
        mask = ref[..., 3] > 0.5
        per_view.append({
            "psnr": M.psnr(rgb, ref_rgb),
            "ssim": M.ssim(rgb, ref_rgb),
            "depth_consistency": M.depth_consistency(depth, dep, mask),
            "feature_consistency": float(features.similarity(rgb, ref_rgb)),
            "silhouette_iou": M.silhouette_iou(alpha, ref[..., 3]),
        })
    summary: dict[str, float | None] = {
        k: float(np.mean([v[k] for v in per_view]))
        for k in ("psnr", "ssim", "depth_consistency", "feature_consistency")
    }
    summary["lpips"] = None
    summary["overall_quality"] = M.overall_quality(summary)
    return per_view, summary, renders


def _held_out_change(new: list[dict[str, float]], old: list[dict[str, float]],
                     held_out: Sequence[int]) -> tuple[float, float]:
    """(mean PSNR gain in dB, mean silhouette IoU change) of ``new`` over ``old`` on the
    held-out views (all views when none is held out)."""
    idx = list(held_out) or list(range(len(new)))
    gain = float(np.mean([new[k]["psnr"] - old[k]["psnr"] for k in idx]))
    iou = float(np.mean([new[k]["silhouette_iou"] - old[k]["silhouette_iou"] for k in idx]))
    return gain, iou


# ------------------------------------------------------------------------- iteration
def refine_iteration(
    model: GaussianModel,
    reference_views: list[np.ndarray],
    reference_depths: list[np.ndarray],
    cameras: list[Camera],
    *,
    enhancer: Any,
    features: Any,
    iteration: int,
    previous_quality: float | None,
    strength: float = 0.5,
    seed: int = 0,
    step_scale: float | None = None,
    on_view: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    work_size: int = WORK_SIZE,
    depth_threshold: float = DEPTH_THRESHOLD,
    feature_threshold: float = FEATURE_THRESHOLD,
    convergence_threshold: float = CONVERGENCE_THRESHOLD,
    keep_best: bool = True,
    device: str = "auto",
) -> IterationResult:
    """Run one MVCRM iteration; ``model`` is not modified (see the module docstring).

    ``iteration`` is 1-based or 0-based as the caller likes; it only sets the default
    ``step_scale = 1 / (1 + iteration)``. ``on_view(view_index, n_views)`` is called after
    each view is enhanced and judged; ``should_stop()`` is polled between views and raises
    :class:`glimpse3d.errors.Cancelled`. With ``keep_best`` (default) the update is kept
    only if it raises the overall quality against the references; otherwise the input
    model is returned (``stats["update_kept"]`` is False), so an iteration never makes the
    model worse by this measure; it must also pass the held-out judge (module docstring, step
    5), else it is rejected and reported ``converged``.
    """
    t0 = time.perf_counter()
    n = len(cameras)
    if n == 0:
        raise RefinementError("refinement needs at least one camera")
    if len(reference_views) != n or len(reference_depths) != n:
        raise RefinementError(
            f"got {len(reference_views)} views, {len(reference_depths)} depths and {n} cameras"
        )
    for i, v in enumerate(reference_views):
        if np.asarray(v).ndim != 3 or np.asarray(v).shape[-1] != 4:
            raise RefinementError(f"reference view {i} must be RGBA (H,W,4)")
    size = int(min(work_size, min(np.asarray(v).shape[0] for v in reference_views)))
    scale = (1.0 / (1.0 + max(iteration, 0))) if step_scale is None else float(step_scale)
    cams = [c.resized(size, size) for c in cameras]
    refs = [_resize_rgba(v, size) for v in reference_views]
    ref_depths = [_resize_depth(d, size) for d in reference_depths]

    render_model = model.detach().to(splat_device(device))  # GPU with gsplat, else CPU
    with torch_threads(1):
        rendered, enhanced, accepted, dcs, fss = [], [], [], [], []
        for k in range(n):
            if should_stop is not None and should_stop():
                raise Cancelled("refinement cancelled")
            rgb, alpha, depth = _render_np(render_model, cams[k])
            rendered.append(_straight(rgb, alpha))
            enh = np.asarray(
                enhancer.enhance(rgb, refs[k], depth, strength, seed=seed * 1000 + k), dtype=np.float32
            )
            if enh.shape != rgb.shape:
                enh = _to_size(enh[..., :3], size)
            enh = np.clip(np.nan_to_num(enh, nan=0.0), 0.0, 1.0)
            enhanced.append(enh)
            ref_rgb = refs[k][..., :3] * refs[k][..., 3:4]
            mask = refs[k][..., 3] > 0.5
            dc = M.depth_consistency(depth, ref_depths[k], mask)
            fs = float(features.similarity(enh, ref_rgb))
            dcs.append(dc)
            fss.append(fs)
            accepted.append(bool(dc >= depth_threshold and fs >= feature_threshold))
            if on_view is not None:
                on_view(k, n)

        new_model = model
        train_stats: dict[str, Any] = {}
        held_out = [k for k in range(n) if n > 1 and k % HOLDOUT_STRIDE == iteration % HOLDOUT_STRIDE]
        chosen = [k for k in range(n) if accepted[k] and k not in held_out]
        if chosen and scale > 0:
            targets = []
            for k in chosen:
                a = refs[k][..., 3]
                rgba = _straight(enhanced[k], a)
                targets.append((cams[k], torch.from_numpy(rgba)))
            cfg = refine_config(len(chosen), scale, seed + 7919 * max(iteration, 0), size, device)
            new_model, train_stats = train(model, targets, cfg, should_stop=should_stop)

        per_view, summary, _ = evaluate_model(new_model, refs, ref_depths, cams, features, device)
        kept = new_model is not model
        rejected = False
        held_gain = None
        if kept and keep_best:
            old_view, old_summary, _ = evaluate_model(model, refs, ref_depths, cams, features, device)
            held_gain, held_iou = _held_out_change(per_view, old_view, held_out)
            if (held_gain < MIN_HELD_OUT_GAIN_DB or held_iou < -MAX_HELD_OUT_IOU_LOSS
                    or old_summary["overall_quality"] >= summary["overall_quality"]):  # type: ignore[operator]
                new_model, per_view, summary, kept = model.clone(), old_view, old_summary, False
                rejected = True
        if new_model is model:
            new_model = model.clone()
    quality = float(summary["overall_quality"])  # type: ignore[arg-type]
    converged = rejected or (
        previous_quality is not None and (quality - previous_quality) < convergence_threshold)
    return IterationResult(
        model=new_model,
        rendered=rendered,
        enhanced=enhanced,
        accepted=accepted,
        view_depth_consistency=dcs,
        view_feature_similarity=fss,
        per_view=per_view,
        metrics=summary,
        converged=bool(converged),
        seconds=time.perf_counter() - t0,
        stats={"step_scale": scale, "work_size": size, "accepted": len(chosen),
               "held_out": held_out, "held_out_psnr_gain": held_gain,
               "update_kept": kept, **train_stats},
    )


__all__ = [
    "CONVERGENCE_THRESHOLD",
    "DEPTH_THRESHOLD",
    "FEATURE_THRESHOLD",
    "ClassicEnhancer",
    "IterationResult",
    "RefinementError",
    "evaluate_model",
    "guided_filter",
    "refine_config",
    "refine_iteration",
]
