"""Reconstruct stage: 16 RGBA views + depth maps -> an initial Gaussian-splat model (v0).

1. :func:`init_from_depth` back-projects every foreground pixel (alpha > 0.5, depth > 0) of
   every view into world space (OpenCV w2c cameras, pixel centres at integer + 0.5, depth =
   camera z), drops points that fall outside another view's (slightly dilated) silhouette
   or lie clearly in front of another view's depth surface (free space), fuses the rest on a
   voxel grid (mean position and colour per voxel, voxel size grown until at most
   ``max_points`` remain) and sizes each gaussian from the distance to its 3 nearest
   neighbours.
2. :func:`reconstruct` then optimises that model against the views with
   :func:`glimpse3d.splat.training.train` (RGBA targets, silhouette loss, densification up
   to ``max_gaussians``).

Images are float32 (H,W,4) straight RGBA in [0,1]; depths (H,W) camera z in scene units,
0 = background.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from glimpse3d.errors import UserError
from glimpse3d.splat.cameras import Camera
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.rasterizer import render
from glimpse3d.splat.training import TrainConfig, prepare_target, train

INIT_OPACITY = 0.6
NEIGHBOUR_SCALE = 0.5  # gaussian sigma as a fraction of the RMS 3-nearest-neighbour distance
SILHOUETTE_DILATE_PX = 2
MIN_SILHOUETTE_AGREEMENT = 0.85  # fraction of the views seeing a point that must agree
FREE_SPACE_TOLERANCE = 0.04  # relative depth margin before a point counts as "in front"
MAX_FREE_SPACE_VIOLATIONS = 0.2  # fraction of the views seeing a point
MAX_RAW_POINTS = 400_000
FINE_GRID = 160  # voxels across the object for the first fusion pass


class ReconstructionError(UserError):
    """The views/depths cannot be turned into a model (shapes, empty silhouettes)."""

    http_status = 422


# square training resolution (px) of the v0 fit. Thin parts are 2-3 px wide at 128 px and the
# fit let a table's legs fade. Measured on the quality benchmark (v0 mean IoU / PSNR over
# table, book, cube-45, teapot; s per object, two at a time): 128 px 0.873 / 21.05 dB, 15.9 s;
# 192 px 0.885 / 21.43, 19.5 s (table 0.756 -> 0.800); 256 px 0.889 / 21.47, 27.0 s
TRAIN_SIZE = 192


def default_train_config(max_gaussians: int, seed: int) -> TrainConfig:
    """Training settings used by :func:`reconstruct` (the reconstruct stage took 12.7-16.1 s
    in `glimpse3d run` on 2 CPU cores, measured 2026-12-07)."""
    return TrainConfig(
        steps=300,
        image_size=TRAIN_SIZE,
        lr_means=3.0e-3,
        lr_means_final=3.0e-5,
        lr_log_scales=1.0e-2,
        lr_opacity=0.1,
        lr_sh_dc=1.0e-2,
        lambda_dssim=0.2,
        lambda_alpha=0.2,
        densify_from=60,
        densify_until=220,
        densify_interval=60,
        grad_threshold=1e-3,
        max_gaussians=max_gaussians,
        seed=seed,
        progress_interval=5,
    )


# ------------------------------------------------------------------------- validation
def _check_inputs(
    views: Sequence[np.ndarray], depths: Sequence[np.ndarray], cameras: Sequence[Camera]
) -> None:
    if not views:
        raise ReconstructionError("reconstruction needs at least one view")
    if not (len(views) == len(depths) == len(cameras)):
        raise ReconstructionError(
            f"got {len(views)} views, {len(depths)} depth maps and {len(cameras)} cameras; "
            "they must match one to one"
        )
    for i, (v, d) in enumerate(zip(views, depths, strict=True)):
        v, d = np.asarray(v), np.asarray(d)
        if v.ndim != 3 or v.shape[-1] != 4:
            raise ReconstructionError(f"view {i} must be RGBA (H,W,4), got shape {v.shape}")
        if d.ndim != 2:
            raise ReconstructionError(f"depth {i} must be (H,W), got shape {d.shape}")
        if not np.isfinite(d).all():
            raise ReconstructionError(f"depth {i} contains NaN or infinite values")


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA)


def _cam_for(camera: Camera, h: int, w: int) -> Camera:
    return camera if (camera.height, camera.width) == (h, w) else camera.resized(w, h)


# --------------------------------------------------------------------------- geometry
def backproject(depth: np.ndarray, camera: Camera, mask: np.ndarray) -> np.ndarray:
    """World points (M,3) of the pixels in ``mask`` (pixel centres, depth = camera z)."""
    ys, xs = np.nonzero(mask)
    z = depth[ys, xs].astype(np.float64)
    x_cam = (xs + 0.5 - camera.cx) / camera.fx * z
    y_cam = (ys + 0.5 - camera.cy) / camera.fy * z
    p_cam = np.stack([x_cam, y_cam, z], axis=1)
    rot, trans = camera.w2c[:3, :3], camera.w2c[:3, 3]
    return (p_cam - trans) @ rot  # R^T (p - t)


def _consistency_keep(
    points: np.ndarray,
    sil: list[np.ndarray],
    depths: list[np.ndarray],
    cameras: list[Camera],
) -> np.ndarray:
    """Boolean (M,) of points consistent with the other views' silhouettes and free space."""
    m = len(points)
    pts = points.astype(np.float32)
    seen = np.zeros(m, dtype=np.int32)
    inside = np.zeros(m, dtype=np.int32)
    violations = np.zeros(m, dtype=np.int32)
    for mask, depth, cam in zip(sil, depths, cameras, strict=True):
        p_cam = pts @ cam.w2c[:3, :3].T.astype(np.float32) + cam.w2c[:3, 3].astype(np.float32)
        z = p_cam[:, 2]
        zs = np.where(z > 1e-6, z, 1.0)
        h, w = mask.shape
        col = np.floor(cam.fx * p_cam[:, 0] / zs + cam.cx).astype(np.int64)
        row = np.floor(cam.fy * p_cam[:, 1] / zs + cam.cy).astype(np.int64)
        ok = (z > 1e-6) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        idx = np.nonzero(ok)[0]
        r, c = row[idx], col[idx]
        seen[idx] += 1
        inside[idx] += mask[r, c]
        d = depth[r, c]
        in_front = (d > 0) & (z[idx] < d * (1.0 - FREE_SPACE_TOLERANCE))
        violations[idx] += in_front
    seen_f = np.maximum(seen, 1)
    return (inside / seen_f >= MIN_SILHOUETTE_AGREEMENT) & (violations / seen_f <= MAX_FREE_SPACE_VIOLATIONS)


def voxel_downsample(
    points: np.ndarray, colors: np.ndarray, voxel: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean position and colour of the points in each occupied voxel of edge ``voxel``."""
    keys = np.floor(points / voxel).astype(np.int64)
    keys -= keys.min(axis=0)
    dims = keys.max(axis=0) + 1
    flat = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    k = len(counts)
    pts = np.stack([np.bincount(inverse, points[:, i], minlength=k) for i in range(3)], 1)
    cols = np.stack([np.bincount(inverse, colors[:, i], minlength=k) for i in range(3)], 1)
    return pts / counts[:, None], cols / counts[:, None]


def _count_voxels(points: np.ndarray, voxel: float) -> int:
    keys = np.floor(points / voxel).astype(np.int64)
    keys -= keys.min(axis=0)
    dims = keys.max(axis=0) + 1
    return len(np.unique((keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]))


def init_from_depth(
    views: list[np.ndarray],
    depths: list[np.ndarray],
    cameras: list[Camera],
    max_points: int,
    seed: int,
) -> GaussianModel:
    """Fused, silhouette-consistent point cloud of the views as isotropic gaussians.

    At most ``max_points`` gaussians (degree-0 SH, opacity 0.6, sigma = 0.5 x the RMS distance
    to the 3 nearest neighbours, clamped to [0.002, 0.03] scene units). ``seed`` drives the random
    subsampling used when the views hold more than 400k foreground pixels.
    """
    _check_inputs(views, depths, cameras)
    if max_points < 1:
        raise ReconstructionError(f"max_points must be >= 1, got {max_points}")
    rng = np.random.default_rng(seed)
    sil, deps, cams, pts_all, col_all = [], [], [], [], []
    for view, depth, cam in zip(views, depths, cameras, strict=True):
        depth = np.asarray(depth, dtype=np.float32)
        h, w = depth.shape
        rgba = _fit(np.asarray(view, dtype=np.float32), h, w)
        cam = _cam_for(cam, h, w)
        fg = (rgba[..., 3] > 0.5) & (depth > 0)
        dil = cv2.dilate((rgba[..., 3] > 0.5).astype(np.uint8),
                         np.ones((2 * SILHOUETTE_DILATE_PX + 1,) * 2, np.uint8))
        sil.append(dil.astype(np.int32))
        deps.append(depth)
        cams.append(cam)
        if fg.any():
            pts_all.append(backproject(depth, cam, fg))
            col_all.append(np.clip(rgba[..., :3][fg], 0.0, 1.0).astype(np.float64))
    if not pts_all:
        raise ReconstructionError("no view has foreground pixels with depth; nothing to reconstruct")
    points = np.concatenate(pts_all)
    colors = np.concatenate(col_all)
    if len(points) > MAX_RAW_POINTS:
        pick = np.sort(rng.choice(len(points), MAX_RAW_POINTS, replace=False))
        points, colors = points[pick], colors[pick]

    # Fine fusion first (cheap consistency checks), then the budgeted grid.
    extent = float(np.ptp(points, axis=0).max()) or 1e-3
    points, colors = voxel_downsample(points, colors, extent / FINE_GRID)
    if len(cams) > 1:
        keep = _consistency_keep(points, sil, deps, cams)
        if keep.sum() >= max(10, 0.05 * len(keep)):  # never wipe the cloud out entirely
            points, colors = points[keep], colors[keep]
    voxel = extent / FINE_GRID
    if len(points) > max_points:
        lo, hi = voxel, voxel
        while _count_voxels(points, hi) > max_points:
            lo, hi = hi, hi * 1.6
        for _ in range(12):  # bisection on the voxel size
            mid = 0.5 * (lo + hi)
            if _count_voxels(points, mid) > max_points:
                lo = mid
            else:
                hi = mid
        voxel = hi
        points, colors = voxel_downsample(points, colors, voxel)
    if len(points) > max_points:  # bisection tolerance: trim deterministically
        pick = np.sort(rng.choice(len(points), max_points, replace=False))
        points, colors = points[pick], colors[pick]

    if len(points) >= 2:
        k = min(4, len(points))
        dist, _ = cKDTree(points).query(points, k=k)
        scale = np.sqrt(np.mean(dist[:, 1:] ** 2, axis=1))
    else:
        scale = np.full(len(points), voxel)
    scale = np.clip(NEIGHBOUR_SCALE * scale, 0.002, 0.03)
    return GaussianModel.from_points(
        points.astype(np.float32), colors.astype(np.float32), scale=scale.astype(np.float32),
        opacity=INIT_OPACITY,
    )


# ------------------------------------------------------------------------- reconstruct
def reconstruct(
    views: list[np.ndarray],
    depths: list[np.ndarray],
    cameras: list[Camera],
    *,
    max_gaussians: int,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    config: TrainConfig | None = None,
    init_fraction: float = 0.5,
) -> tuple[GaussianModel, dict]:
    """Initialise from depth and train on the views; returns (model v0, stats).

    Training runs at ``config.image_size`` (``TRAIN_SIZE`` px by default), or at the views' size when
    they are smaller. ``init_fraction`` of ``max_gaussians`` seeds the model, densification may grow it up to
    ``max_gaussians``. ``config`` overrides :func:`default_train_config` (its
    ``max_gaussians``/``seed`` are replaced by the arguments). ``on_step(step, total)``
    reports training progress; ``should_stop()`` raises ``Cancelled`` inside training.
    ``stats`` = the training stats plus ``init_gaussians``, ``init_seconds``,
    ``train_psnr`` (mean PSNR in dB of the model over black vs the views at the training
    size, all views) and ``silhouette_iou`` (mean over views).
    """
    from glimpse3d.pipeline.metrics import psnr as np_psnr
    from glimpse3d.pipeline.metrics import silhouette_iou

    _check_inputs(views, depths, cameras)
    if max_gaussians < 1:
        raise ReconstructionError(f"max_gaussians must be >= 1, got {max_gaussians}")
    t0 = time.perf_counter()
    init_points = max(1, int(math.floor(init_fraction * max_gaussians)))
    model = init_from_depth(views, depths, cameras, init_points, seed)
    t_init = time.perf_counter() - t0

    cfg = config or default_train_config(max_gaussians, seed)
    cfg = replace(cfg, max_gaussians=max_gaussians, seed=seed)
    smallest = min(min(np.asarray(v).shape[:2]) for v in views)
    if cfg.image_size is not None and cfg.image_size > smallest:
        cfg = replace(cfg, image_size=int(smallest))  # never upsample the views
    targets = []
    for view, cam in zip(views, cameras, strict=True):
        img = np.asarray(view, dtype=np.float32)
        h, w = img.shape[:2]
        targets.append((_cam_for(cam, h, w), torch.from_numpy(np.ascontiguousarray(img))))
    model, stats = train(model, targets, cfg, on_step=on_step, should_stop=should_stop)

    # Fit on the training views, at the training size.
    psnrs, ious = [], []
    with torch.no_grad():
        for cam, img in targets:
            cam_s, premul = prepare_target(img, cam, cfg.image_size)
            out = render(model, cam_s, backend=cfg.backend)
            psnrs.append(np_psnr(out.rgb.numpy(), premul[..., :3].numpy()))
            ious.append(silhouette_iou(out.alpha.numpy(), premul[..., 3].numpy()))
    stats.update(
        init_gaussians=int(stats["initial_gaussians"]),
        init_seconds=t_init,
        train_psnr=float(np.mean(psnrs)),
        silhouette_iou=float(np.mean(ious)),
        seconds=time.perf_counter() - t0,
    )
    return model, stats


__all__ = [
    "ReconstructionError",
    "backproject",
    "default_train_config",
    "init_from_depth",
    "reconstruct",
    "voxel_downsample",
]
