"""The SH basis uses the standard 3DGS constants: it is orthonormal on the sphere and matches
known closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from glimpse3d.splat.sh import SH_C0, SH_C1, eval_sh, num_sh_coeffs, sh_to_rgb


def _fibonacci_sphere(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=1)


def _basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """(M, K) values of each basis function, from one call with one-hot coefficient vectors."""
    k, m = num_sh_coeffs(degree), dirs.shape[0]
    sh = torch.zeros(k, m, k, 3, dtype=dirs.dtype)
    sh[torch.arange(k), :, torch.arange(k), 0] = 1.0
    values = eval_sh(degree, sh.reshape(k * m, k, 3), dirs.repeat(k, 1))[:, 0]
    return values.reshape(k, m).T


def test_basis_is_orthonormal_up_to_degree_3():
    dirs = _fibonacci_sphere(4000)
    y = _basis(3, dirs)
    gram = y.T @ y * (4 * math.pi / dirs.shape[0])
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=2e-3, rtol=0)


def test_known_values_and_signs():
    up = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    y = _basis(3, up)[0]
    assert y[0].item() == pytest.approx(SH_C0)
    assert y[2].item() == pytest.approx(SH_C1)  # +C1 * z
    assert y[1].item() == pytest.approx(0.0) and y[3].item() == pytest.approx(0.0)
    assert y[6].item() == pytest.approx(2 * 0.31539156525252005)  # C2[2] * (2zz - xx - yy)
    assert y[12].item() == pytest.approx(2 * 0.3731763325901154)  # C3[3] * z (2zz - 3xx - 3yy)
    x_axis = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    assert _basis(1, x_axis)[0, 3].item() == pytest.approx(-SH_C1)  # -C1 * x


def test_sh_to_rgb_offsets_and_clamps():
    sh = torch.zeros(2, 4, 3)
    sh[0, 0] = torch.tensor([0.0, 1.0, -5.0])
    sh[1, 2] = torch.tensor([1.0, 0.0, 0.0])
    means = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    rgb = sh_to_rgb(1, sh, means, torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(rgb[0], torch.tensor([0.5, 0.5 + SH_C0, 0.0]))  # clamped at 0 only
    torch.testing.assert_close(rgb[1], torch.tensor([0.5 + SH_C1, 0.5, 0.5]))  # direction +z


def test_bad_degree_rejected():
    with pytest.raises(ValueError):
        eval_sh(4, torch.zeros(1, 25, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError):
        eval_sh(2, torch.zeros(1, 4, 3), torch.zeros(1, 3))
