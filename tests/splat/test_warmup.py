"""The install-time warm-up compiles every cached numba kernel the pipeline uses."""

from __future__ import annotations

from glimpse3d.splat import _raster_numba as raster
from glimpse3d.splat import mesh
from glimpse3d.splat.warmup import warm_up


def test_warm_up_compiles_the_kernels() -> None:
    seconds = warm_up()
    assert 0 < seconds < 120
    kernels = [raster._forward_kernel, raster._backward_kernel, raster._project_fwd_kernel,
               raster._project_bwd_kernel, raster._bin_kernel, mesh._scatter]
    for kernel in kernels:
        assert kernel.signatures, f"{kernel.__name__} was not compiled"
