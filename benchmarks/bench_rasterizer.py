"""Forward+backward time of the rasterizer backends (a script, not a test).

    .venv/bin/python benchmarks/bench_rasterizer.py [--repeats 5] [--no-compile]

For 5k and 20k random gaussians (``GaussianModel.random``) at 128^2 and 256^2 it times
``render(...)`` + ``backward()`` of a loss touching rgb, alpha and depth for:

- ``fast``: the numba tile kernel (``backend="fast"``),
- ``torch``: the pure-PyTorch pair-list reference (``backend="torch"``),
- ``dense``: a straightforward pure-PyTorch version that evaluates every gaussian at every pixel
  (skipped with "OOM-skipped" where its autograd buffers would exceed ~4 GB).

Each figure is the minimum over ``--repeats`` runs after one warm-up (the machine is shared;
the minimum is the least noisy estimate). It also measures the numba compile time cold (fresh
cache directory, in a subprocess) and warm (loading the on-disk cache).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.rasterizer import (
    ALPHA_MAX,
    ALPHA_MIN,
    TRANSMITTANCE_MIN,
    _finish,
    project,
    render,
)

DENSE_LIMIT_BYTES = 4 * 1024**3
DENSE_BYTES_PER_PAIR = 4 * 12  # ~12 float32 (N, P) buffers kept alive by autograd


def render_dense(model: GaussianModel, camera, background=None):  # noqa: ANN001, ANN201
    """Straightforward dense rasterizer: every gaussian against every pixel, (N, P) tensors."""
    proj = project(model, camera)
    width, height = camera.width, camera.height
    vis = torch.nonzero(proj.visible).squeeze(1)
    vis = vis[torch.argsort(proj.depths[vis].detach())]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px, py = xs.reshape(-1), ys.reshape(-1)
    m, con, box = proj.means2d[vis], proj.conics[vis], proj.boxes[vis]
    dx = px[None, :] + 0.5 - m[:, :1]
    dy = py[None, :] + 0.5 - m[:, 1:]
    power = -0.5 * (con[:, :1] * dx * dx + con[:, 2:] * dy * dy) - con[:, 1:2] * dx * dy
    alpha = (proj.opacities[vis, None] * torch.exp(power)).clamp_max(ALPHA_MAX)
    inside = (px[None] >= box[:, :1]) & (px[None] <= box[:, 2:3]) & (py[None] >= box[:, 1:2]) & (py[None] <= box[:, 3:4])
    alpha = torch.where(inside & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    log_t = torch.cumsum(torch.log1p(-alpha), 0) - torch.log1p(-alpha)  # exclusive, per pixel
    keep = (log_t + torch.log1p(-alpha)).detach() >= math.log(TRANSMITTANCE_MIN)
    weight = torch.where(keep, alpha * torch.exp(log_t), torch.zeros_like(alpha))
    feats = torch.cat([proj.colors[vis], proj.depths[vis, None], torch.ones_like(proj.depths[vis, None])], 1)
    out = (weight.T @ feats).reshape(height, width, 5)
    bg = torch.zeros(3) if background is None else background
    return _finish(out[..., :3], out[..., 4], out[..., 3], bg)


def _time_once(fn, model, cam) -> tuple[float, float]:  # noqa: ANN001
    """(wall seconds, process CPU seconds over all threads) of one forward+backward."""
    for t in model.tensors().values():
        t.grad = None
    start, cpu = time.perf_counter(), time.process_time()
    rgb, alpha, depth = fn(model, cam)
    (rgb.sum() + alpha.sum() + 0.1 * depth.sum()).backward()
    return time.perf_counter() - start, time.process_time() - cpu


def _backend(name: str):  # noqa: ANN202
    def fn(model, cam):  # noqa: ANN001, ANN202
        out = render(model, cam, backend=name)
        return out.rgb, out.alpha, out.depth

    return fn


def _best(fn, model, cam, repeats: int, warmup: bool = True) -> tuple[float, float]:  # noqa: ANN001
    """Minimum wall and minimum CPU time over ``repeats`` runs."""
    if warmup:
        _time_once(fn, model, cam)  # JIT cache load, allocator
    runs = [_time_once(fn, model, cam) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def compile_times() -> tuple[float, float]:
    """Seconds for the first fast render+backward: cold numba cache, then warm cache."""
    code = (
        "import time; t=time.perf_counter();"
        "from glimpse3d.splat.gaussians import GaussianModel;"
        "from glimpse3d.splat.cameras import orbit_camera;"
        "from glimpse3d.splat.rasterizer import render;"
        "m=GaussianModel.random(50);[x.requires_grad_(True) for x in m.tensors().values()];"
        "t=time.perf_counter(); o=render(m, orbit_camera(30,0,size=32), backend='fast');"
        "o.rgb.sum().backward(); print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = [
            float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
            for _ in range(2)
        ]
    return runs[0], runs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the JIT compile-time measurement")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus")
    if not args.no_compile:
        cold, warm = compile_times()
        print(f"numba first render+backward: cold cache {cold:.2f} s, warm cache {warm:.2f} s")
    header = (
        f"{'gaussians':>9} {'size':>5} | {'fast ms':>8} {'(cpu ms)':>9} {'torch ms':>9} {'dense ms':>12} | "
        f"{'torch/fast':>10} {'dense/fast':>10}"
    )
    print(header)
    print("-" * len(header))
    for n in (5000, 20000):
        model = GaussianModel.random(n, seed=0)
        for t in model.tensors().values():
            t.requires_grad_(True)
        for size in (128, 256):
            cam = orbit_camera(30.0, 0.0, size=size)
            fast, fast_cpu = _best(_backend("fast"), model, cam, args.repeats)
            ref, _ = _best(_backend("torch"), model, cam, max(2, args.repeats // 2), warmup=False)
            if n * size * size * DENSE_BYTES_PER_PAIR > DENSE_LIMIT_BYTES:
                dense_txt, ratio_txt = "OOM-skipped", "-"
            else:
                dense, _ = _best(render_dense, model, cam, 2, warmup=False)
                dense_txt, ratio_txt = f"{dense * 1e3:.0f}", f"{dense / fast:.1f}x"
            print(
                f"{n:>9} {size:>4}² | {fast * 1e3:>8.1f} {fast_cpu * 1e3:>9.1f} {ref * 1e3:>9.0f} {dense_txt:>12} | "
                f"{ref / fast:>9.1f}x {ratio_txt:>10}",
                flush=True,
            )


if __name__ == "__main__":
    main()
