"""Compile the numba kernels once, at install time, into numba's on-disk cache.

The tile rasterizer (forward, backward, projection), the mesh density splatter and the
mesh-export kernels (silhouette hull, triangle rasterizer, texture bake) are
``@njit(cache=True)``: the first call in a fresh checkout compiles them (~10-15 s on 2 cores),
later processes load the cached machine code. ``make install`` runs this module so the first
``glimpse3d run`` is as fast as every other one.

    python -m glimpse3d.splat.warmup
"""

from __future__ import annotations

import contextlib
import time

import torch

from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.mesh import MeshExtractionError, extract_mesh
from glimpse3d.splat.mesh_asset import MeshOptions, build_mesh_asset
from glimpse3d.splat.rasterizer import render


def warm_up() -> float:
    """Render a small random model forward and backward with the ``fast`` backend, extract
    its mesh and make a small textured export; returns the seconds it took."""
    start = time.perf_counter()
    model = GaussianModel.random(64, seed=0, scale=0.08)
    trainable = model.detach()
    for tensor in trainable.tensors().values():
        tensor.requires_grad_(True)
    out = render(trainable, orbit_camera(30.0, 0.0, size=32), backend="fast")
    (out.rgb.sum() + out.alpha.sum() + out.depth.sum()).backward()
    # a random cloud may have no surface; the kernels are compiled either way
    with torch.no_grad(), contextlib.suppress(MeshExtractionError):
        extract_mesh(model, resolution=24)
    # a ball of gaussians always has one: the textured export runs every mesh kernel
    direction = torch.nn.functional.normalize(torch.randn(400, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    ball = GaussianModel.from_points(0.3 * direction.numpy(), torch.full((400, 3), 0.5).numpy(),
                                     scale=0.05, opacity=0.9)
    build_mesh_asset(ball, MeshOptions(faces=200, texture_size=64, resolution=24))
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"numba kernels compiled and cached in {warm_up():.1f} s")
