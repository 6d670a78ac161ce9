"""The Gaussian-splat model (docs/architecture.md, "Gaussian model and files").

All arrays are float32 torch tensors:

- ``means`` (N,3): centres in world units (Z-up).
- ``log_scales`` (N,3): natural log of the per-axis standard deviations.
- ``quats`` (N,4): rotations as quaternions, **wxyz**, not necessarily normalised.
- ``opacity_logits`` (N,): opacity = sigmoid(logit).
- ``sh`` (N,K,3): spherical-harmonic colour coefficients, K = (degree+1)^2, DC first.
  RGB in [0,1] relates to the DC term by ``f_dc = (rgb - 0.5) / SH_C0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

SH_C0 = 0.28209479177387814


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0,1] -> degree-0 SH coefficient."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: torch.Tensor) -> torch.Tensor:
    """Degree-0 SH coefficient -> RGB (not clamped)."""
    return dc * SH_C0 + 0.5


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    degree = int(round(math.sqrt(num_coeffs))) - 1
    if (degree + 1) ** 2 != num_coeffs:
        raise ValueError(f"{num_coeffs} SH coefficients is not (degree+1)^2")
    return degree


@dataclass
class GaussianModel:
    """A set of 3D Gaussians; see the module docstring for units and conventions."""

    means: torch.Tensor
    log_scales: torch.Tensor
    quats: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "log_scales": (n, 3),
            "quats": (n, 4),
            "opacity_logits": (n,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name} has shape {got}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"sh has shape {tuple(self.sh.shape)}, expected (N,K,3)")
        sh_degree_from_coeffs(self.sh.shape[1])

    # ----------------------------------------------------------------- basics
    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    def __len__(self) -> int:
        return self.num_gaussians

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn) -> GaussianModel:  # noqa: ANN001 - tensor -> tensor callable
        return GaussianModel(**{k: fn(v) for k, v in self.tensors().items()})

    def detach(self) -> GaussianModel:
        return self.map(lambda t: t.detach())

    def clone(self) -> GaussianModel:
        return self.map(lambda t: t.detach().clone())

    def to(self, device: str | torch.device) -> GaussianModel:
        return self.map(lambda t: t.to(device))

    def select(self, index: torch.Tensor) -> GaussianModel:
        """Subset by boolean mask or integer index."""
        return self.map(lambda t: t[index])

    @staticmethod
    def concat(models: list[GaussianModel]) -> GaussianModel:
        keys = models[0].tensors().keys()
        return GaussianModel(**{k: torch.cat([m.tensors()[k] for m in models]) for k in keys})

    # ------------------------------------------------------- derived values
    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def normalized_quats(self) -> torch.Tensor:
        return self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @property
    def base_colors(self) -> torch.Tensor:
        """View-independent RGB in [0,1] from the DC term, shape (N,3)."""
        return sh_dc_to_rgb(self.sh[:, 0, :]).clamp(0.0, 1.0)

    # ---------------------------------------------------------- constructors
    @staticmethod
    def from_points(
        points: np.ndarray | torch.Tensor,
        colors: np.ndarray | torch.Tensor,
        scale: float | np.ndarray | torch.Tensor = 0.01,
        opacity: float = 0.5,
        sh_degree: int = 0,
    ) -> GaussianModel:
        """Isotropic gaussians at ``points`` (N,3) with RGB ``colors`` (N,3) in [0,1]."""
        pts = torch.as_tensor(np.asarray(points), dtype=torch.float32)
        rgb = torch.as_tensor(np.asarray(colors), dtype=torch.float32)
        n = pts.shape[0]
        scale_t = torch.as_tensor(np.asarray(scale), dtype=torch.float32)
        scale_t = scale_t.reshape(-1, 1).expand(n, 3) if scale_t.ndim <= 1 else scale_t
        sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)
        sh[:, 0, :] = rgb_to_sh_dc(rgb)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        opacity = min(max(opacity, 1e-4), 1 - 1e-4)
        return GaussianModel(
            means=pts.clone(),
            log_scales=torch.log(scale_t.clamp_min(1e-8)).clone(),
            quats=quats,
            opacity_logits=torch.full((n,), math.log(opacity / (1 - opacity))),
            sh=sh,
        )

    @staticmethod
    def random(
        n: int, seed: int = 0, radius: float = 0.4, sh_degree: int = 0, scale: float = 0.03
    ) -> GaussianModel:
        """A reproducible random model inside a ball of ``radius`` (for tests/benchmarks)."""
        gen = torch.Generator().manual_seed(seed)
        direction = torch.randn(n, 3, generator=gen)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-9)
        r = radius * torch.rand(n, 1, generator=gen) ** (1 / 3)
        means = direction * r
        log_scales = math.log(scale) + 0.4 * torch.randn(n, 3, generator=gen)
        quats = torch.randn(n, 4, generator=gen)
        quats = quats / quats.norm(dim=1, keepdim=True)
        opacity_logits = torch.randn(n, generator=gen) + 1.0
        sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)
        sh[:, 0, :] = rgb_to_sh_dc(torch.rand(n, 3, generator=gen))
        if sh_degree > 0:
            sh[:, 1:, :] = 0.1 * torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=gen)
        return GaussianModel(means, log_scales, quats, opacity_logits, sh)
