"""The mesh z-buffer rasterizer: coverage, depth and barycentrics against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.splat.cameras import Camera, orbit_camera
from glimpse3d.splat.meshraster import (
    interpolate,
    rasterize_camera,
    rasterize_uv,
    render_mesh,
    sample_texture,
)


def _front_camera(size: int = 64, focal: float = 64.0) -> Camera:
    """At the origin looking down +z (OpenCV), principal point in the centre."""
    return Camera(w2c=np.eye(4), fx=focal, fy=focal, cx=size / 2, cy=size / 2, width=size, height=size)


def test_uv_raster_covers_exactly_the_pixel_centres_inside() -> None:
    # the lower-left half of the texture (v up): texel centres with x + (1 - v) ... below the diagonal
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    frags = rasterize_uv(uvs, np.array([[0, 1, 2]]), 8)
    rows, cols = np.mgrid[0:8, 0:8]
    u, v = (cols + 0.5) / 8, 1 - (rows + 0.5) / 8
    assert np.array_equal(frags.mask, u + v <= 1.0)
    # barycentrics reproduce the texel's own uv
    got = interpolate(frags, np.array([[0, 1, 2]]), uvs)
    assert np.allclose(got, np.stack([u[frags.mask], v[frags.mask]], 1), atol=1e-6)


def test_two_triangles_tile_a_square_without_gaps_or_overlap() -> None:
    uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    frags = rasterize_uv(uvs, faces, 40)
    rows, cols = np.mgrid[0:40, 0:40]
    u, v = (cols + 0.5) / 40, 1 - (rows + 0.5) / 40
    inside = (u > 0.1) & (u < 0.9) & (v > 0.1) & (v < 0.9)
    assert np.array_equal(frags.mask, inside)


def test_depth_and_perspective_correct_barycentrics_on_a_slanted_quad() -> None:
    cam = _front_camera()
    # a plane z = 2 + x, seen from the origin
    verts = np.array([[-1.0, -1.0, 1.0], [1.0, -1.0, 3.0], [1.0, 1.0, 3.0], [-1.0, 1.0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    frags = rasterize_camera(verts, faces, cam)
    ys, xs = np.nonzero(frags.mask)
    # ray through the pixel centre: d = ((x+.5-cx)/f, (y+.5-cy)/f, 1); hits z = 2 + x at t = 2/(1-dx)
    dx = (xs + 0.5 - cam.cx) / cam.fx
    expected_z = 2.0 / (1.0 - dx)
    ok = np.abs(dx * expected_z) <= 1.0  # inside the quad's x-range
    assert np.allclose(frags.depth[ys, xs][ok], expected_z[ok], rtol=1e-6)
    # interpolated world x must equal the point on the ray (perspective-correct)
    world = interpolate(frags, faces, verts)
    assert np.allclose(world[:, 0][ok], (dx * expected_z)[ok], atol=1e-6)
    assert np.allclose(world[:, 2], 2.0 + world[:, 0], atol=1e-6)


def test_nearer_triangle_wins_and_background_is_empty() -> None:
    cam = _front_camera()
    near = np.array([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]])
    far = np.array([[-2.0, -2.0, 4.0], [2.0, -2.0, 4.0], [0.0, 2.0, 4.0]])
    verts = np.concatenate([far, near])
    frags = rasterize_camera(verts, np.array([[0, 1, 2], [3, 4, 5]]), cam)
    centre = cam.height // 2, cam.width // 2
    assert frags.face[centre] == 1 and frags.depth[centre] == pytest.approx(2.0)
    assert frags.face[63, 0] == -1 and np.isinf(frags.depth[63, 0])  # beside the far one
    assert frags.face[1, 1] == 0 and frags.depth[1, 1] == pytest.approx(4.0)


def test_textured_render_shows_the_texture() -> None:
    cam = orbit_camera(0.0, 0.0, distance=3.0, size=64)
    # a unit square facing +X (the camera), textured left half red, right half green
    verts = np.array([[0.0, -0.5, -0.5], [0.0, 0.5, -0.5], [0.0, 0.5, 0.5], [0.0, -0.5, 0.5]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    texture = np.zeros((8, 8, 3), np.float32)
    texture[:, :4, 0] = 1.0
    texture[:, 4:, 1] = 1.0
    rgb, cover = render_mesh(verts, faces, cam, uvs=uvs, texture=texture)
    # world +Y is image right for this camera: u = 0 (red) is at y = -0.5, on the left
    assert rgb[32, 26, 0] > 0.9 and rgb[32, 38, 1] > 0.9
    side = 0.5 * cam.fx / 3.0 * 2  # pixels across the square
    assert cover.sum() == pytest.approx(side**2, rel=0.05)
    assert np.allclose(sample_texture(texture, np.array([[0.25, 0.5], [0.75, 0.5]])),
                       [[1, 0, 0], [0, 1, 0]])
