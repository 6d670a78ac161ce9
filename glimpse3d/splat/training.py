"""Fit a Gaussian-splat model to posed RGBA images (3DGS-style optimisation, CPU friendly).

Targets are ``(Camera, image)`` pairs where ``image`` is a float tensor (H,W,4), straight
(non-premultiplied) RGBA in [0,1]. Each step renders one view (``views_per_step`` > 1
averages several) over a background colour ``bg`` (random per step by default, so the model
cannot paint the background into the object) and compares it with the target composited
over the same ``bg``::

    loss = (1 - lambda_dssim) * L1(rgb) + lambda_dssim * (1 - SSIM(rgb)) + lambda_alpha * L1(alpha)

The alpha term keeps the silhouette. Adam runs with one learning rate per parameter group
(means decay exponentially from ``lr_means`` to ``lr_means_final``, like 3DGS; positional
learning rates are multiplied by the scene extent). Adaptive density control follows 3DGS:
every ``densify_interval`` steps in [``densify_from``, ``densify_until``) gaussians whose
average screen-space positional gradient exceeds ``grad_threshold`` are cloned (if small,
max scale <= ``percent_dense`` x extent) or split into two samples drawn from the gaussian
with scales divided by 1.6 (if large); then gaussians with opacity < ``prune_opacity`` or a
world size > ``prune_max_size`` x extent are removed. The count never exceeds
``max_gaussians``: when there is not enough room, the candidates with the largest gradients
win.

Screen-space gradients: the renderer does not expose the projected means, so the 3D
gradient is rotated into the camera and its x,y part is scaled by ``z / f`` (the inverse of
the projection Jacobian), then by ``width / 2`` as in 3DGS's NDC units, so
``grad_threshold`` is comparable with 3DGS's 0.0002.

Device: ``config.device`` (``auto`` | ``cpu`` | ``cuda[:N]``, see
:func:`glimpse3d.splat.device.splat_device`): with a CUDA GPU and gsplat, ``auto`` trains on
the GPU through ``gsplat.rasterization``; otherwise on the CPU with the numba kernel. The
returned model is always on the CPU.

Determinism: all randomness comes from one CPU ``torch.Generator`` seeded with
``config.seed`` (after ``torch.manual_seed``), so the same inputs and seed give identical
tensors on the same machine and thread count (on a GPU, up to the order of gsplat's atomic
gradient sums).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias

from glimpse3d.errors import Cancelled, UserError
from glimpse3d.splat.cameras import Camera
from glimpse3d.splat.device import splat_device
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.losses import l1, photometric_loss
from glimpse3d.splat.rasterizer import quat_to_rotmat, render

PARAM_NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh")


class TrainingInputError(UserError):
    """Training inputs are unusable (no targets, wrong image shape, bad config)."""

    http_status = 422


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`. Learning rates are Adam step sizes.

    Positional values (``lr_means*``, ``percent_dense``, ``prune_max_size``) are relative
    to the scene extent (1.1 x the radius of the camera centres around their centroid, or
    ``scene_extent`` when given). ``image_size`` is the square training resolution in pixels
    (None = the targets' own size); targets and cameras are resized to it.
    """

    steps: int = 600
    image_size: int | None = 128
    lr_means: float = 1.6e-3
    lr_means_final: float = 1.6e-5
    lr_log_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 5e-2
    lr_sh_dc: float = 5e-3
    lr_sh_rest: float = 2.5e-4
    lr_scale: float = 1.0  # multiplies every learning rate (refinement uses < 1)
    lambda_dssim: float = 0.2
    lambda_alpha: float = 0.1
    background: str = "random"  # "random" (per step) | "black" | "white"
    views_per_step: int = 1
    densify: bool = True
    densify_from: int = 100
    densify_until: int | None = None  # default: 70 % of the steps
    densify_interval: int = 100
    grad_threshold: float = 2e-4  # NDC-scaled mean screen-space gradient (3DGS units)
    percent_dense: float = 0.01
    split_scale_divisor: float = 1.6
    prune_opacity: float = 0.005
    prune_max_size: float = 0.1
    opacity_reset_interval: int = 0  # 0 = never reset opacities
    max_gaussians: int = 30000
    seed: int = 0
    scene_extent: float | None = None
    backend: str = "auto"
    device: str = "auto"  # auto | cpu | cuda[:N] (glimpse3d.splat.device.splat_device)
    progress_interval: int = 10  # on_step is called every this many steps and at the end
    torch_threads: int | None = 1  # intra-op threads while training (None = leave as is)

    def validate(self) -> None:
        if self.steps < 0:
            raise TrainingInputError(f"steps must be >= 0, got {self.steps}")
        if self.image_size is not None and self.image_size < 8:
            raise TrainingInputError(f"image_size must be >= 8 px, got {self.image_size}")
        if self.max_gaussians < 1:
            raise TrainingInputError(f"max_gaussians must be >= 1, got {self.max_gaussians}")
        if self.background not in ("random", "black", "white"):
            raise TrainingInputError(
                f"background must be 'random', 'black' or 'white', got {self.background!r}"
            )
        if self.views_per_step < 1:
            raise TrainingInputError("views_per_step must be >= 1")
        if self.densify_interval < 1:
            raise TrainingInputError("densify_interval must be >= 1")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ----------------------------------------------------------------------------- helpers
@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (process-wide); ``None`` = unchanged.

    The tensors here are small (<= 256 px images, <= 1e5 gaussians): on a shared 2-core
    machine one torch thread is up to 10x faster than two that spin against other work.
    The compiled rasterizer keeps its own (numba) threads.
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def scene_extent(cameras: Sequence[Camera]) -> float:
    """3DGS scene extent: 1.1 x the largest distance of a camera centre from their centroid."""
    centers = torch.from_numpy(np.stack([c.center for c in cameras])).double()
    radius = float((centers - centers.mean(0)).norm(dim=1).max()) if len(cameras) > 1 else 0.0
    return 1.1 * radius if radius > 1e-6 else 1.0


def prepare_target(image: torch.Tensor, camera: Camera, size: int | None) -> tuple[Camera, torch.Tensor]:
    """Resize a straight RGBA target (H,W,4) and its camera to ``size`` (area filtering).

    Returns the camera and a **premultiplied** RGBA (h,w,4) float32 tensor.
    """
    img = torch.as_tensor(image, dtype=torch.float32)
    if img.ndim != 3 or img.shape[-1] != 4:
        raise TrainingInputError(f"targets must be RGBA (H,W,4), got shape {tuple(img.shape)}")
    if (img.shape[0], img.shape[1]) != (camera.height, camera.width):
        raise TrainingInputError(
            f"target is {img.shape[1]}x{img.shape[0]} but its camera is {camera.width}x{camera.height}"
        )
    img = img.clamp(0.0, 1.0)
    premul = torch.cat([img[..., :3] * img[..., 3:], img[..., 3:]], dim=-1)
    if size is None or (size == camera.width and size == camera.height):
        return camera, premul.contiguous()
    out = F.interpolate(premul.permute(2, 0, 1)[None], size=(size, size), mode="area")
    return camera.resized(size, size), out[0].permute(1, 2, 0).contiguous()


class _Adam:
    """Minimal Adam over named tensors with per-name learning rates (rows can be edited)."""

    def __init__(self, params: dict[str, torch.Tensor], lrs: dict[str, float | torch.Tensor],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-15) -> None:
        self.params = params
        self.lrs = dict(lrs)
        self.b1, self.b2 = betas
        self.eps = eps
        self.t = 0
        # Moments in float64 on the CPU: tiny float32 gradients squared become denormals,
        # which are extremely slow there (GPUs flush them; float64 is slow on most GPUs).
        on_cpu = next(iter(params.values())).device.type == "cpu"
        self.moment_dtype = torch.float64 if on_cpu else torch.float32
        self.m = {k: torch.zeros_like(v, dtype=self.moment_dtype) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v, dtype=self.moment_dtype) for k, v in params.items()}

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        for k, p in self.params.items():
            lr = self.lrs[k]
            if p.grad is None or (isinstance(lr, float) and lr == 0.0):
                continue
            g = p.grad.to(self.moment_dtype)
            self.m[k].mul_(self.b1).add_(g, alpha=1.0 - self.b1)
            self.v[k].mul_(self.b2).addcmul_(g, g, value=1.0 - self.b2)
            update = self.m[k] / (self.v[k] / c2).sqrt_().add_(self.eps)
            p.sub_((update * (lr / c1)).to(p.dtype))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def replace(self, params: dict[str, torch.Tensor], keep: torch.Tensor, n_new: int) -> None:
        """Swap in new leaf tensors: rows ``keep`` of the old state followed by ``n_new`` zeros."""
        for k in params:
            for state in (self.m, self.v):
                old = state[k][keep]
                state[k] = torch.cat([old, old.new_zeros((n_new, *old.shape[1:]))], 0)
        self.params = params


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().contiguous().requires_grad_(True)


def _model_of(params: dict[str, torch.Tensor]) -> GaussianModel:
    return GaussianModel(**{k: params[k] for k in PARAM_NAMES})


def _check_targets(targets: Sequence[tuple[Camera, torch.Tensor]]) -> None:
    if not targets:
        raise TrainingInputError("training needs at least one (camera, RGBA image) target")
    for i, pair in enumerate(targets):
        if len(pair) != 2 or not isinstance(pair[0], Camera):
            raise TrainingInputError(f"target {i} must be a (Camera, RGBA tensor) pair")


# ---------------------------------------------------------------------------- training
def train(
    model: GaussianModel,
    targets: list[tuple[Camera, torch.Tensor]],
    config: TrainConfig | None = None,
    on_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[GaussianModel, dict]:
    """Optimise ``model`` (not modified) to reproduce ``targets``; returns (new model, stats).

    ``stats``: ``final_loss`` (mean loss over the last 10 % of steps), ``steps``,
    ``n_gaussians``, ``seconds``, ``initial_gaussians``, ``densified`` (gaussians added),
    ``pruned``, ``image_size``. ``on_step(step, total)`` reports progress (1-based step);
    ``should_stop()`` is polled every step and raises :class:`glimpse3d.errors.Cancelled`.
    """
    cfg = config or TrainConfig()
    cfg.validate()
    _check_targets(targets)
    with torch_threads(cfg.torch_threads):
        return _train(model, targets, cfg, on_step, should_stop)


def _train(
    model: GaussianModel,
    targets: list[tuple[Camera, torch.Tensor]],
    cfg: TrainConfig,
    on_step: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[GaussianModel, dict]:
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    device = splat_device(cfg.device)
    prepared = [prepare_target(img, cam, cfg.image_size) for cam, img in targets]
    cams = [c for c, _ in prepared]
    images = [img.to(device) for _, img in prepared]
    extent = float(cfg.scene_extent) if cfg.scene_extent else scene_extent([c for c, _ in targets])

    base = model.detach().to(device).map(lambda t: t.to(torch.float32))
    if base.num_gaussians > cfg.max_gaussians:  # enforce the budget from the start
        keep = torch.argsort(base.opacity_logits, descending=True, stable=True)[: cfg.max_gaussians]
        base = base.select(torch.sort(keep).values)
    initial = model.num_gaussians
    params = {k: _leaf(v) for k, v in base.tensors().items()}
    sh_rest_lr = cfg.lr_sh_rest if params["sh"].shape[1] > 1 else 0.0
    lrs = {
        "means": cfg.lr_means * extent,
        "log_scales": cfg.lr_log_scales,
        "quats": cfg.lr_quats,
        "opacity_logits": cfg.lr_opacity,
        "sh": cfg.lr_sh_dc,
    }
    lrs = {k: v * cfg.lr_scale for k, v in lrs.items()}
    opt_lrs: dict[str, float | torch.Tensor] = dict(lrs)
    if params["sh"].shape[1] > 1:  # rest coefficients get their own (smaller) rate
        sh_lr = torch.full((1, params["sh"].shape[1], 1), sh_rest_lr * cfg.lr_scale, device=device)
        sh_lr[:, 0] = lrs["sh"]
        opt_lrs["sh"] = sh_lr
    opt = _Adam(params, opt_lrs)

    n = base.num_gaussians
    grad_accum = torch.zeros(n, device=device)
    grad_count = torch.zeros(n, device=device)
    densify_until = cfg.densify_until if cfg.densify_until is not None else int(0.7 * cfg.steps)
    fixed_bg = {"black": torch.zeros(3, device=device),
                "white": torch.ones(3, device=device)}.get(cfg.background)
    order: list[int] = []
    losses: list[float] = []
    added = pruned = 0
    lr_means0 = lrs["means"]
    lr_means1 = cfg.lr_means_final * extent * cfg.lr_scale

    for step in range(1, cfg.steps + 1):
        if should_stop is not None and should_stop():
            raise Cancelled("training cancelled")
        frac = (step - 1) / max(cfg.steps - 1, 1)
        if lr_means0 > 0 and lr_means1 > 0:
            opt.lrs["means"] = math.exp((1 - frac) * math.log(lr_means0) + frac * math.log(lr_means1))
        model_t = _model_of(params)
        total_loss = torch.zeros((), device=device)
        seen = torch.zeros(params["means"].shape[0], dtype=torch.bool, device=device)
        view_ids = []
        for _ in range(cfg.views_per_step):
            if not order:
                order = torch.randperm(len(cams), generator=gen).tolist()
            view_ids.append(order.pop())
        for vid in view_ids:
            cam, target = cams[vid], images[vid]
            bg = torch.rand(3, generator=gen).to(device) if fixed_bg is None else fixed_bg
            out = render(model_t, cam, background=bg, backend=cfg.backend)
            alpha_t = target[..., 3]
            target_rgb = target[..., :3] + (1.0 - alpha_t)[..., None] * bg
            loss = photometric_loss(out.rgb, target_rgb, cfg.lambda_dssim)
            if cfg.lambda_alpha > 0:
                loss = loss + cfg.lambda_alpha * l1(out.alpha, alpha_t)
            total_loss = total_loss + loss / len(view_ids)
            seen |= out.visible
        opt.zero_grad()
        total_loss.backward()
        losses.append(float(total_loss.detach()))

        do_densify = cfg.densify and cfg.densify_from <= step < densify_until
        if do_densify and params["means"].grad is not None:
            with torch.no_grad():
                cam = cams[view_ids[-1]]
                rot = torch.as_tensor(cam.w2c[:3, :3], dtype=torch.float32, device=device)
                shift = torch.as_tensor(cam.w2c[:3, 3], dtype=torch.float32, device=device)
                g_cam = params["means"].grad @ rot.T
                z = (params["means"].detach() @ rot.T + shift)[:, 2]
                z = z.clamp_min(1e-3)
                g_u = g_cam[:, 0] * z / cam.fx * (0.5 * cam.width)
                g_v = g_cam[:, 1] * z / cam.fy * (0.5 * cam.height)
                g2d = torch.sqrt(g_u * g_u + g_v * g_v) * len(view_ids)
                grad_accum += torch.where(seen, g2d, torch.zeros_like(g2d))
                grad_count += seen.float()

        opt.step()

        if do_densify and step % cfg.densify_interval == 0:
            a, p = _densify_and_prune(params, opt, grad_accum, grad_count, cfg, extent, gen)
            added += a
            pruned += p
            n = params["means"].shape[0]
            grad_accum = torch.zeros(n, device=device)
            grad_count = torch.zeros(n, device=device)
        if cfg.opacity_reset_interval and step % cfg.opacity_reset_interval == 0 and step < densify_until:
            with torch.no_grad():
                cap = math.log(0.01 / 0.99)
                params["opacity_logits"].clamp_(max=cap)
                opt.m["opacity_logits"].zero_()
                opt.v["opacity_logits"].zero_()
        if on_step is not None and (step % max(cfg.progress_interval, 1) == 0 or step == cfg.steps):
            on_step(step, cfg.steps)

    result = _model_of({k: v.detach().to("cpu", copy=True) for k, v in params.items()})
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    stats = {
        "final_loss": float(sum(tail) / len(tail)) if tail else float("nan"),
        "steps": cfg.steps,
        "n_gaussians": result.num_gaussians,
        "initial_gaussians": initial,
        "densified": added,
        "pruned": pruned,
        "image_size": cfg.image_size,
        "device": str(device),
        "seconds": time.perf_counter() - t_start,
    }
    return result, stats


@torch.no_grad()
def _densify_and_prune(
    params: dict[str, torch.Tensor],
    opt: _Adam,
    grad_accum: torch.Tensor,
    grad_count: torch.Tensor,
    cfg: TrainConfig,
    extent: float,
    gen: torch.Generator,
) -> tuple[int, int]:
    """Clone / split / prune in place of ``params`` and ``opt``; returns (added, pruned)."""
    n = params["means"].shape[0]
    avg = grad_accum / grad_count.clamp_min(1.0)
    max_scale = torch.exp(params["log_scales"]).max(dim=1).values
    cand = avg >= cfg.grad_threshold

    # Prune first (frees budget for densification).
    opac = torch.sigmoid(params["opacity_logits"])
    prune = (opac < cfg.prune_opacity) | (max_scale > cfg.prune_max_size * extent)
    if bool(prune.all()):  # never remove everything
        prune[torch.argmax(opac)] = False
    cand &= ~prune
    room = cfg.max_gaussians - int((~prune).sum())
    idx = torch.nonzero(cand).squeeze(1)
    if idx.numel() > room:
        top = torch.argsort(avg[idx], descending=True, stable=True)[: max(room, 0)]
        idx = torch.sort(idx[top]).values
    chosen = torch.zeros(n, dtype=torch.bool, device=avg.device)
    chosen[idx] = True
    small = max_scale <= cfg.percent_dense * extent
    clone = chosen & small
    split = chosen & ~small

    keep = ~prune & ~split
    new_parts: dict[str, list[torch.Tensor]] = {k: [] for k in PARAM_NAMES}
    if bool(clone.any()):
        for k in PARAM_NAMES:
            new_parts[k].append(params[k].detach()[clone])
    if bool(split.any()):
        ns = int(split.sum())
        scales = torch.exp(params["log_scales"].detach()[split])
        rot = quat_to_rotmat(params["quats"].detach()[split])
        samples = torch.randn(2, ns, 3, generator=gen).to(scales.device) * scales[None]
        offsets = torch.einsum("nij,knj->kni", rot, samples).reshape(2 * ns, 3)
        means = params["means"].detach()[split].repeat(2, 1) + offsets
        new_parts["means"].append(means)
        new_parts["log_scales"].append(
            (params["log_scales"].detach()[split] - math.log(cfg.split_scale_divisor)).repeat(2, 1)
        )
        for k in ("quats", "opacity_logits", "sh"):
            t = params[k].detach()[split]
            new_parts[k].append(t.repeat(2, *([1] * (t.ndim - 1))))
    n_new = sum(t.shape[0] for t in new_parts["means"])
    new_params = {
        k: _leaf(torch.cat([params[k].detach()[keep], *new_parts[k]], 0)) for k in PARAM_NAMES
    }
    opt.replace(new_params, keep, n_new)
    params.clear()
    params.update(new_params)
    return n_new - int(split.sum()), int(prune.sum())


__all__ = [
    "TrainConfig",
    "TrainingInputError",
    "prepare_target",
    "scene_extent",
    "torch_threads",
    "train",
]
