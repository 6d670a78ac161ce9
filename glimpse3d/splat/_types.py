"""What the rasterizer backends exchange: :class:`Projected` gaussians and a :class:`RenderOutput`.

Apart from ``rasterizer.py`` so that the backends (``_raster_numba``, ``_raster_gsplat``)
need not import the module that dispatches to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RenderOutput:
    """A rendered view. All image tensors are (H,W[,C]) on the model's device and dtype.

    ``rgb``: colour composited over ``background`` (black by default => premultiplied), RGB.
    ``alpha``: accumulated opacity in [0,1].
    ``depth``: expected camera-space z, ``sum(w_i z_i) / alpha`` where alpha > 1e-6, else 0.
    ``visible``: (N,) bool, gaussian is in front of the near plane and its box touches the image.
    ``radii``: (N,) float pixel radius (3 sigma) of each projected gaussian, 0 if not visible.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    visible: torch.Tensor
    radii: torch.Tensor


@dataclass
class Projected:
    """Per-gaussian screen-space quantities (all (N,...) tensors; non-visible rows are junk).

    ``means2d`` pixels (u, v); ``conics`` inverse 2D covariance as (a, b, c) for
    [[a, b], [b, c]]; ``depths`` camera z; ``colors`` RGB; ``opacities`` in (0,1);
    ``boxes`` int64 (x0, y0, x1, y1) inclusive pixel index ranges, clipped to the image.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    radii: torch.Tensor
    visible: torch.Tensor
    boxes: torch.Tensor
