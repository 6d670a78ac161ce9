"""A small z-buffer triangle rasterizer (numba) for meshes: depth, face ids and barycentrics.

Used to bake textures (which mesh point each texel is, and which texels a camera sees) and to
render an exported textured mesh for comparison with the splat renders.

Conventions: pixel ``(i, j)`` (column ``i``, row ``j``) has its centre at ``(i + 0.5, j + 0.5)``,
as in :mod:`glimpse3d.splat.rasterizer`; a pixel is covered when its centre lies inside the
triangle or on its edge (both windings are drawn, no back-face culling). ``depth`` is camera
z (scene units), interpolated perspective-correctly; barycentrics are perspective-correct too.
UVs follow the OpenGL/trimesh convention: ``v`` grows upwards, texel row ``r`` holds
``v = 1 - (r + 0.5) / height``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from glimpse3d.splat.cameras import Camera

NEAR = 1e-3  # triangles with a vertex closer than this to the camera plane are skipped
EDGE_EPS = 1e-7  # relative slack on the edge test, so shared edges leave no gaps


@njit(cache=True, nogil=True)
def _rasterize(
    xy: np.ndarray,  # (F,3,2) float64 pixel coordinates of the corners
    inv_z: np.ndarray,  # (F,3) float64, 1/z per corner (all ones for flat rasterization)
    width: int,
    height: int,
    face_id: np.ndarray,  # (H,W) int32, filled with -1
    bary: np.ndarray,  # (H,W,3) float32
    zbuf: np.ndarray,  # (H,W) float64, filled with +inf
) -> None:  # pragma: no cover - jitted
    for f in range(xy.shape[0]):
        x0, y0 = xy[f, 0, 0], xy[f, 0, 1]
        x1, y1 = xy[f, 1, 0], xy[f, 1, 1]
        x2, y2 = xy[f, 2, 0], xy[f, 2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or not np.isfinite(area):
            continue
        inv_area = 1.0 / area
        eps = EDGE_EPS * abs(area) + 1e-12
        lo_x = max(int(np.ceil(min(x0, x1, x2) - 0.5)), 0)
        hi_x = min(int(np.floor(max(x0, x1, x2) - 0.5)), width - 1)
        lo_y = max(int(np.ceil(min(y0, y1, y2) - 0.5)), 0)
        hi_y = min(int(np.floor(max(y0, y1, y2) - 0.5)), height - 1)
        iz0, iz1, iz2 = inv_z[f, 0], inv_z[f, 1], inv_z[f, 2]
        for py in range(lo_y, hi_y + 1):
            cy = py + 0.5
            for px in range(lo_x, hi_x + 1):
                cx = px + 0.5
                w0 = (x1 - cx) * (y2 - cy) - (x2 - cx) * (y1 - cy)
                w1 = (x2 - cx) * (y0 - cy) - (x0 - cx) * (y2 - cy)
                w2 = area - w0 - w1
                if area > 0.0:
                    if w0 < -eps or w1 < -eps or w2 < -eps:
                        continue
                elif w0 > eps or w1 > eps or w2 > eps:
                    continue
                b0, b1, b2 = w0 * inv_area, w1 * inv_area, w2 * inv_area
                q = b0 * iz0 + b1 * iz1 + b2 * iz2  # 1/z, linear in screen space
                if q <= 0.0:
                    continue
                z = 1.0 / q
                if z >= zbuf[py, px]:
                    continue
                zbuf[py, px] = z
                face_id[py, px] = f
                bary[py, px, 0] = b0 * iz0 * z
                bary[py, px, 1] = b1 * iz1 * z
                bary[py, px, 2] = b2 * iz2 * z


@dataclass
class Fragments:
    """Per-pixel result of rasterizing a mesh: ``face`` (H,W) int32 (-1 where empty),
    ``bary`` (H,W,3) float32 perspective-correct barycentrics, ``depth`` (H,W) float64 camera z
    (+inf where empty)."""

    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def _run(xy: np.ndarray, inv_z: np.ndarray, width: int, height: int) -> Fragments:
    face = np.full((height, width), -1, np.int32)
    bary = np.zeros((height, width, 3), np.float32)
    depth = np.full((height, width), np.inf)
    _rasterize(
        np.ascontiguousarray(xy, np.float64), np.ascontiguousarray(inv_z, np.float64),
        int(width), int(height), face, bary, depth,
    )
    return Fragments(face, bary, depth)


def rasterize_camera(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> Fragments:
    """Rasterize a world-space mesh (V,3), (F,3) into ``camera`` (OpenCV pinhole)."""
    uv, z = camera.project(vertices)
    tri_z = z[faces]
    ok = (tri_z > NEAR).all(axis=1)
    inv_z = np.where(ok[:, None], 1.0 / np.where(tri_z > NEAR, tri_z, 1.0), 0.0)
    xy = np.where(ok[:, None, None], uv[faces], np.nan)  # NaN corners: skipped (area is NaN)
    return _run(xy, inv_z, camera.width, camera.height)


def rasterize_uv(uvs: np.ndarray, faces: np.ndarray, size: int) -> Fragments:
    """Rasterize a mesh's texture charts into a ``size`` x ``size`` texture: which face (and
    where in it) each texel centre lies on. ``uvs`` (V,2) in [0,1], v up."""
    xy = np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size], axis=1)[faces]
    return _run(xy, np.ones(faces.shape, np.float64), size, size)


def interpolate(frags: Fragments, faces: np.ndarray, attribute: np.ndarray) -> np.ndarray:
    """Per-vertex ``attribute`` (V,C) interpolated at the covered pixels -> (M,C), in the
    order of ``np.nonzero(frags.mask)``."""
    ys, xs = np.nonzero(frags.mask)
    tri = faces[frags.face[ys, xs]]  # (M,3)
    b = frags.bary[ys, xs].astype(np.float64)
    return np.einsum("mk,mkc->mc", b, attribute[tri])


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray, outside: float | None = None) -> np.ndarray:
    """Bilinear samples of ``image`` (H,W[,C]) at pixel coordinates ``x``, ``y`` (M,) (pixel
    centres at +0.5) -> (M,C) float32; ``outside``: value beyond the border (None: clamp)."""
    import cv2

    src = np.ascontiguousarray(image, np.float32)
    m = len(x)
    cols = 4096  # OpenCV's remap wants maps narrower than 32767
    rows = max(1, -(-m // cols))
    map_x = np.full(rows * cols, -1e6, np.float32)
    map_y = np.full(rows * cols, -1e6, np.float32)
    map_x[:m] = np.asarray(x, np.float64) - 0.5
    map_y[:m] = np.asarray(y, np.float64) - 0.5
    if outside is None:
        border, value = cv2.BORDER_REPLICATE, 0.0
    else:
        border, value = cv2.BORDER_CONSTANT, float(outside)
    out = cv2.remap(src, map_x.reshape(rows, cols), map_y.reshape(rows, cols), cv2.INTER_LINEAR,
                    borderMode=border, borderValue=(value,) * 4)
    return out.reshape(rows * cols, -1)[:m]


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``texture`` (H,W,C) at ``uv`` (M,2) (v up, clamped edges) -> (M,C)."""
    h, w = texture.shape[:2]
    return bilinear(texture, uv[:, 0] * w, (1.0 - uv[:, 1]) * h)


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    uvs: np.ndarray | None = None,
    texture: np.ndarray | None = None,
    vertex_colors: np.ndarray | None = None,
    ssaa: int = 2,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Unlit render of a mesh coloured by ``texture`` (T,T,3) at ``uvs`` (V,2, v up) or by
    ``vertex_colors`` (V,3), RGB in [0,1]: returns RGB (H,W,3) over ``background`` and coverage
    (H,W), float32, anti-aliased by ``ssaa`` x ``ssaa`` supersampling."""
    cam = camera.resized(camera.width * ssaa, camera.height * ssaa)
    frags = rasterize_camera(vertices, faces, cam)
    rgb = np.zeros((cam.height, cam.width, 3), np.float32)
    rgb[:] = np.asarray(background, np.float32)
    if texture is not None and uvs is not None:
        color = sample_texture(np.asarray(texture, np.float32), interpolate(frags, faces, uvs))
    elif vertex_colors is not None:
        color = interpolate(frags, faces, np.asarray(vertex_colors, np.float64))
    else:
        raise ValueError("render_mesh needs uvs + texture or vertex_colors")
    rgb[frags.mask] = color
    cover = frags.mask.astype(np.float32)
    h, w = camera.height, camera.width
    rgb = rgb.reshape(h, ssaa, w, ssaa, 3).mean(axis=(1, 3))
    cover = cover.reshape(h, ssaa, w, ssaa).mean(axis=(1, 3))
    return rgb, cover
