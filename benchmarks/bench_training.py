"""Training, reconstruct and refinement cost/quality (a script, not a test).

    .venv/bin/python benchmarks/bench_training.py [--size 128] [--steps 600] [--object mug]
                                                  [--skip-recovery] [--skip-pipeline]

1. Recovery: a random ground-truth model (``GaussianModel.random(300, seed=1)``) is rendered
   from the 16 SyncDreamer cameras at ``--size`` px; views 2, 6, 10, 14 are held out and a
   fresh model (300 random gaussians, another seed) is trained on the other 12 with
   ``TrainConfig(steps=--steps, image_size=--size)``. Prints the held-out PSNR.
2. Pipeline stages at their defaults on a synthetic object (``glimpse3d.testing.synthetic``)
   seen in 16 views at 256 px with exact depth: ``reconstruct(max_gaussians=30000)`` (time,
   train-view PSNR, silhouette IoU), then 3 ``refine_iteration`` calls (time and metrics).

Times are wall-clock and process CPU seconds; on a shared machine the CPU figure is the
better guide to what an idle 2-core machine needs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from glimpse3d.pipeline.metrics import ClassicFeatures
from glimpse3d.pipeline.reconstruct import reconstruct
from glimpse3d.pipeline.refine import ClassicEnhancer, refine_iteration
from glimpse3d.splat.cameras import syncdreamer_cameras
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.losses import psnr
from glimpse3d.splat.rasterizer import render
from glimpse3d.splat.training import TrainConfig, train
from glimpse3d.testing import synthetic as S

HELD_OUT = (2, 6, 10, 14)


class Clock:
    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def _straight(model: GaussianModel, cam) -> torch.Tensor:  # noqa: ANN001
    with torch.no_grad():
        out = render(model, cam)
    a = out.alpha[..., None]
    rgb = torch.where(a > 1e-6, out.rgb / a.clamp_min(1e-6), torch.zeros_like(out.rgb))
    return torch.cat([rgb.clamp(0, 1), a], -1)


def recovery(size: int, steps: int) -> None:
    gt = GaussianModel.random(300, seed=1, radius=0.35, scale=0.04)
    cams = syncdreamer_cameras(size)
    targets = [(c, _straight(gt, c)) for c in cams]
    train_t = [t for i, t in enumerate(targets) if i not in HELD_OUT]
    init = GaussianModel.random(300, seed=7, radius=0.4, scale=0.02)
    cfg = TrainConfig(steps=steps, image_size=size, densify_from=100, densify_interval=100,
                      grad_threshold=1e-3, seed=0)
    with Clock() as clock:
        model, stats = train(init, train_t, cfg)
    values = []
    with torch.no_grad():
        for i in HELD_OUT:
            values.append(psnr(render(model, cams[i]).rgb, render(gt, cams[i]).rgb).item())
    print(f"[recovery] {size}px, {steps} steps, {stats['n_gaussians']} gaussians: "
          f"held-out PSNR mean {np.mean(values):.2f} dB (min {min(values):.2f}); {clock}")


def pipeline(obj_name: str, iterations: int = 3) -> None:
    obj = S.fit_view0(S.catalogue()[obj_name], size=256)
    cams = syncdreamer_cameras(256)
    views, depths = [], []
    for c in cams:
        rgba, depth = S.render_truth(obj, c)
        views.append(rgba)
        depths.append(depth)
    with Clock() as clock:
        model, stats = reconstruct(views, depths, cams, max_gaussians=30000, seed=0)
    print(f"[reconstruct] {obj_name}: {stats['n_gaussians']} gaussians, train-view PSNR "
          f"{stats['train_psnr']:.2f} dB @ {stats['image_size']}px, silhouette IoU "
          f"{stats['silhouette_iou']:.3f}; {clock}")
    enhancer, features = ClassicEnhancer(), ClassicFeatures()
    previous = None
    for it in range(iterations):
        with Clock() as clock:
            result = refine_iteration(model, views, depths, cams, enhancer=enhancer,
                                      features=features, iteration=it, previous_quality=previous)
        m = result.metrics
        print(f"[refine {it}] accepted {sum(result.accepted)}/16, PSNR {m['psnr']:.2f}, SSIM "
              f"{m['ssim']:.3f}, depth {m['depth_consistency']:.3f}, feature "
              f"{m['feature_consistency']:.3f}, quality {m['overall_quality']:.4f}, converged "
              f"{result.converged}; {clock}")
        model, previous = result.model, m["overall_quality"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--object", default="mug", choices=sorted(S.catalogue()))
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    if not args.skip_recovery:
        recovery(args.size, args.steps)
    if not args.skip_pipeline:
        pipeline(args.object)


if __name__ == "__main__":
    main()
