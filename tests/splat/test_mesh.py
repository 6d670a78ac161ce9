"""Surface extraction from splats (density field, cleaning, decimation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.mesh import (
    MeshExtractionError,
    density_grid,
    extract_mesh,
    min_angles_deg,
    simplify,
)

RADIUS = 0.3


def _sphere_shell(n: int = 4000, seed: int = 0) -> tuple[GaussianModel, np.ndarray, np.ndarray]:
    """Gaussians sampled on a sphere of radius 0.3, coloured by direction."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    points, colors = RADIUS * d, np.clip(0.5 + 0.45 * d, 0, 1)
    return GaussianModel.from_points(points, colors, scale=0.015, opacity=0.8), points, colors


@pytest.fixture(scope="module")
def shell() -> tuple[GaussianModel, np.ndarray, np.ndarray]:
    return _sphere_shell()


def _colour_error(mesh: trimesh.Trimesh, points: np.ndarray, colors: np.ndarray) -> float:
    _, idx = cKDTree(points).query(mesh.vertices)
    got = mesh.visual.vertex_colors[:, :3].astype(np.float64) / 255
    return float(np.abs(got - colors[idx]).mean())


def test_density_of_single_gaussian_matches_formula() -> None:
    m = GaussianModel.from_points(np.zeros((1, 3)), np.full((1, 3), 0.5), scale=0.1, opacity=0.6)
    density, color, origin, voxel = density_grid(m, resolution=33)
    centre = np.round(-origin / voxel).astype(int)
    assert np.allclose(origin + centre * voxel, 0.0, atol=1e-9)
    # covariance is widened by (voxel/2)^2 against aliasing
    var = 0.1**2 + (voxel / 2) ** 2
    assert density[tuple(centre)] == pytest.approx(0.6, rel=1e-4)
    off = centre + np.array([5, 0, 0])
    expected = 0.6 * np.exp(-0.5 * (5 * voxel) ** 2 / var)
    assert density[tuple(off)] == pytest.approx(expected, rel=1e-4)
    assert np.allclose(color[tuple(centre)], 0.5 * density[tuple(centre)], rtol=1e-5)
    # nothing beyond 3 sigma
    r = np.linalg.norm((np.indices(density.shape).reshape(3, -1).T * voxel + origin), axis=1)
    assert density.reshape(-1)[r > 3.0 * np.sqrt(var) + 1e-9].max() == 0.0


def test_sphere_shell_gives_closed_sphere(shell) -> None:
    model, points, colors = shell
    mesh = extract_mesh(model, resolution=64)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert len(mesh.split(only_watertight=False)) == 1  # the inner wall of the shell is gone
    assert np.allclose(mesh.bounds, [[-RADIUS] * 3, [RADIUS] * 3], atol=0.045)
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(r.mean() - RADIUS) < 0.04 and r.std() < 0.01
    expected_volume = 4 / 3 * np.pi * r.mean() ** 3
    assert mesh.volume == pytest.approx(expected_volume, rel=0.05)
    assert _colour_error(mesh, points, colors) < 0.03


def test_floaters_are_dropped(shell) -> None:
    model, _, _ = shell
    floater = GaussianModel.from_points(np.array([[0.45, 0.0, 0.0]]), np.ones((1, 3)), scale=0.01, opacity=0.9)
    mesh = extract_mesh(GaussianModel.concat([model, floater]), resolution=64)
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.bounds[1, 0] < 0.36


def test_two_separate_objects_are_kept() -> None:
    a, _, _ = _sphere_shell(3000, seed=1)
    b, _, _ = _sphere_shell(3000, seed=2)
    b.means = b.means * 0.5 + torch.tensor([0.6, 0.0, 0.0])
    mesh = extract_mesh(GaussianModel.concat([a, b]), resolution=64)
    assert len(mesh.split(only_watertight=False)) == 2


def test_bad_inputs_raise_user_errors(shell) -> None:
    model, _, _ = shell
    with pytest.raises(MeshExtractionError, match="resolution"):
        extract_mesh(model, resolution=4)
    with pytest.raises(MeshExtractionError, match="density level"):
        extract_mesh(model, level=1e6)
    transparent = model.clone()
    transparent.opacity_logits[:] = -20.0
    with pytest.raises(MeshExtractionError, match="no visible"):
        extract_mesh(transparent)


def test_simplify_keeps_the_budget_and_a_closed_surface(shell) -> None:
    model, _, _ = shell
    mesh = extract_mesh(model, resolution=64)
    small = simplify(mesh, 2000)
    assert 1900 <= len(small.faces) <= 2000
    assert small.is_watertight and small.volume > 0
    assert small.volume == pytest.approx(mesh.volume, rel=0.02)
    assert (min_angles_deg(small) < 5.0).mean() < 0.01  # no slivers to speak of
    assert len(simplify(small, 5000).faces) == len(small.faces)  # under budget: unchanged
    with pytest.raises(MeshExtractionError, match="at least"):
        simplify(mesh, 10)
