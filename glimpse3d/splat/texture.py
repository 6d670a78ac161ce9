"""UV unwrapping (xatlas) and baking the splat renders' colour into a texture.

Baking: every texel centre of the unwrapped mesh is mapped back to its point ``p`` and normal
``n`` on the surface (:func:`glimpse3d.splat.meshraster.rasterize_uv`); its colour is the
weighted mean of the splat renders at the projections of ``p`` over the views that see it,

    c(p) = (sum_v w_v c_v(p) + W0 c_density(p)) / (sum_v w_v + W0),
    w_v  = [p not occluded in view v] * alpha_v(p) * max(0, n . d_v)^COS_POWER,

with ``d_v`` the unit direction to camera ``v``; occlusion is a depth test against the mesh
rasterized in that view. ``c_density`` (the density-weighted gaussian colour near ``p``) only
shows where no view sees the surface. Texels outside every chart take the colour of the nearest
chart texel (seam padding: bilinear filtering and mipmaps never pull in the empty background).
Colours are RGB in [0,1]; the texture is uint8 sRGB-encoded values as rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh
from numba import njit, prange

from glimpse3d.errors import UserError
from glimpse3d.splat.cameras import Camera, orbit_camera, syncdreamer_cameras
from glimpse3d.splat.mesh import SplatViews
from glimpse3d.splat.meshraster import (
    Fragments,
    interpolate,
    rasterize_camera,
    rasterize_uv,
)

COS_POWER = 4.0  # sharpness of the preference for views that face the surface
FALLBACK_WEIGHT = 1e-3  # weight of the density colour (W0 above)
CHART_PADDING_TEXELS = 4  # gap xatlas leaves between charts
MAX_CHART_AREA_FRACTION = 0.01
MIN_TEXTURE_SIZE = 64
MAX_TEXTURE_SIZE = 4096
# Views beyond the 16 of the pipeline, so that the underside gets the splats' colour too:
# (elevation, azimuth) in degrees.
EXTRA_BAKE_VIEWS = ((-30.0, 45.0), (-30.0, 165.0), (-30.0, 285.0), (-89.0, 0.0))


class TextureError(UserError):
    """Bad texture parameters."""

    http_status = 422


def bake_cameras(size: int) -> list[Camera]:
    """The 16 pipeline cameras plus :data:`EXTRA_BAKE_VIEWS`, ``size`` pixels square."""
    extra = [orbit_camera(e, a, size=size) for e, a in EXTRA_BAKE_VIEWS]
    return syncdreamer_cameras(size) + extra


@dataclass
class UVMesh:
    """A mesh with one UV per vertex (vertices on chart seams are duplicated).

    ``vertices`` (V,3) world units, ``faces`` (F,3), ``uvs`` (V,2) in [0,1] (v up),
    ``source_vertex`` (V,) index of each vertex in the mesh that was unwrapped.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    source_vertex: np.ndarray


def unwrap(mesh: trimesh.Trimesh, texture_size: int) -> UVMesh:
    """Cut ``mesh`` into charts and pack them into a square atlas with xatlas, with
    :data:`CHART_PADDING_TEXELS` texels between charts at ``texture_size``."""
    import xatlas

    _check_size(texture_size)
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32))
    charts = xatlas.ChartOptions()
    charts.max_iterations = 1  # one growing pass: ~2x faster than the default, same charts here
    # Charts of at most 1% of the surface: growing huge charts dominates xatlas' time (2.4x
    # less CPU on the sample mug and toy) for ~15% lower atlas utilisation.
    charts.max_chart_area = MAX_CHART_AREA_FRACTION * float(mesh.area)
    pack = xatlas.PackOptions()
    pack.resolution = int(texture_size)
    pack.padding = CHART_PADDING_TEXELS
    pack.bilinear = True
    pack.blockAlign = True  # packs faster, and no worse for a single atlas
    atlas.generate(charts, pack)
    if atlas.atlas_count != 1:
        raise TextureError(f"the mesh did not fit one {texture_size}px texture atlas")
    # UVs come normalised by the atlas's own size, which xatlas only roughly matches to
    # ``resolution`` (e.g. 1133x1180 for 1024): the square texture stretches them a little.
    vmapping, faces, uvs = atlas.get_mesh(0)
    uvs = np.asarray(uvs, np.float64).copy()
    uvs[:, 1] = 1.0 - uvs[:, 1]  # xatlas: v down from the top row; ours: v up
    vmapping = np.asarray(vmapping, np.int64)
    return UVMesh(np.asarray(mesh.vertices)[vmapping], np.asarray(faces, np.int64), uvs, vmapping)


def _check_size(size: int) -> None:
    if not MIN_TEXTURE_SIZE <= int(size) <= MAX_TEXTURE_SIZE:
        raise TextureError(
            f"texture size must be between {MIN_TEXTURE_SIZE} and {MAX_TEXTURE_SIZE} pixels, got {size}"
        )


@njit(parallel=True, cache=True, fastmath=True)
def _bake_kernel(points, normals, w2c, intrinsics, centres, zbufs, rgba, cos_power, acc, total):  # pragma: no cover - jitted
    """acc[m] += w c, total[m] += w over the views (weights in the module docstring)."""
    n_views, height, width = zbufs.shape[0], zbufs.shape[1], zbufs.shape[2]
    for m in prange(points.shape[0]):
        px, py, pz = points[m, 0], points[m, 1], points[m, 2]
        for v in range(n_views):
            dx, dy, dz = centres[v, 0] - px, centres[v, 1] - py, centres[v, 2] - pz
            dist = np.sqrt(dx * dx + dy * dy + dz * dz)
            facing = (normals[m, 0] * dx + normals[m, 1] * dy + normals[m, 2] * dz) / max(dist, 1e-12)
            if facing <= 0.05:
                continue
            r = w2c[v]
            cx = r[0, 0] * px + r[0, 1] * py + r[0, 2] * pz + r[0, 3]
            cy = r[1, 0] * px + r[1, 1] * py + r[1, 2] * pz + r[1, 3]
            z = r[2, 0] * px + r[2, 1] * py + r[2, 2] * pz + r[2, 3]
            if z <= 1e-6:
                continue
            fx, fy, ox, oy = intrinsics[v, 0], intrinsics[v, 1], intrinsics[v, 2], intrinsics[v, 3]
            u = fx * cx / z + ox
            w = fy * cy / z + oy
            col, row = int(np.floor(u)), int(np.floor(w))
            if col < 0 or col >= width or row < 0 or row >= height:
                continue
            # depth test with a slack of ~2 pixels' footprint along the surface slope
            slack = 0.01 + 2.0 * z / fx / max(facing, 0.2)
            if z > zbufs[v, row, col] + slack:
                continue
            # bilinear sample (pixel centres at +0.5, clamped at the border)
            sx = min(max(u - 0.5, 0.0), width - 1.0)
            sy = min(max(w - 0.5, 0.0), height - 1.0)
            x0, y0 = min(int(sx), width - 2), min(int(sy), height - 2)
            fx1, fy1 = sx - x0, sy - y0
            c = np.zeros(4)
            for k in range(4):
                top = rgba[v, y0, x0, k] * (1 - fx1) + rgba[v, y0, x0 + 1, k] * fx1
                bot = rgba[v, y0 + 1, x0, k] * (1 - fx1) + rgba[v, y0 + 1, x0 + 1, k] * fx1
                c[k] = top * (1 - fy1) + bot * fy1
            weight = c[3] * facing**cos_power
            acc[m, 0] += weight * c[0]
            acc[m, 1] += weight * c[1]
            acc[m, 2] += weight * c[2]
            total[m] += weight


class ViewBaker:
    """Colours of surface points from the splat renders (formula in the module docstring).

    ``vertices``/``faces``: the (world-space) mesh the points lie on, for the occlusion test.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, views: SplatViews) -> None:
        cams = views.cameras
        self.w2c = np.stack([c.w2c for c in cams]).astype(np.float64)
        self.intrinsics = np.array([[c.fx, c.fy, c.cx, c.cy] for c in cams], np.float64)
        self.centres = np.stack([c.center for c in cams]).astype(np.float64)
        self.zbufs = np.stack([rasterize_camera(vertices, faces, c).depth for c in cams])
        self.rgba = np.concatenate([views.rgb, views.alpha[..., None]], axis=3).astype(np.float32)

    def colors(
        self,
        points: np.ndarray,
        normals: np.ndarray,
        fallback: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """RGB (M,3) in [0,1] for ``points`` (M,3) with unit ``normals`` (M,3);
        ``fallback(points) -> RGB`` is only evaluated where the views see little."""
        from glimpse3d.splat._raster_numba import _LAUNCH_LOCK

        acc = np.zeros((len(points), 3))
        total = np.zeros(len(points))
        with _LAUNCH_LOCK:
            _bake_kernel(
                np.ascontiguousarray(points, np.float64), np.ascontiguousarray(normals, np.float64),
                self.w2c, self.intrinsics, self.centres, self.zbufs, self.rgba, COS_POWER,
                acc, total,
            )
        weak = np.nonzero(total < 100.0 * FALLBACK_WEIGHT)[0]  # elsewhere W0 changes < 1%
        if weak.size:
            acc[weak] += FALLBACK_WEIGHT * np.asarray(fallback(points[weak]), np.float64)
            total[weak] += FALLBACK_WEIGHT
        return np.clip(acc / np.maximum(total, 1e-12)[:, None], 0.0, 1.0)


def _texel_geometry(uvmesh: UVMesh, normals: np.ndarray, size: int) -> tuple[Fragments, np.ndarray, np.ndarray]:
    frags = rasterize_uv(uvmesh.uvs, uvmesh.faces, size)
    both = interpolate(frags, uvmesh.faces,
                       np.concatenate([uvmesh.vertices, normals[uvmesh.source_vertex]], axis=1))
    points, n = both[:, :3], both[:, 3:]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return frags, points, n


def pad_seams(image: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Give every texel outside ``filled`` (H,W bool) the colour of the nearest filled one."""
    from scipy.ndimage import distance_transform_edt

    if filled.all() or not filled.any():
        return image
    _, (rows, cols) = distance_transform_edt(~filled, return_indices=True)
    return image[rows, cols]


def bake_texture(
    mesh: trimesh.Trimesh,
    views: SplatViews,
    texture_size: int,
    fallback: Callable[[np.ndarray], np.ndarray],
    baker: ViewBaker | None = None,
) -> tuple[UVMesh, np.ndarray]:
    """Unwrap ``mesh`` and bake the renders into a ``texture_size``² texture.

    ``fallback(points) -> RGB`` colours surface points no view sees. Returns the UV mesh and the
    texture, (T,T,3) uint8, row 0 at the top (v = 1).
    """
    _check_size(texture_size)
    uvmesh = unwrap(mesh, texture_size)
    frags, points, normals = _texel_geometry(uvmesh, np.asarray(mesh.vertex_normals), texture_size)
    if len(points) == 0:
        raise TextureError("the texture atlas covers no texel; use a larger texture size")
    baker = baker or ViewBaker(np.asarray(mesh.vertices), np.asarray(mesh.faces), views)
    rgb = baker.colors(points, normals, fallback)
    image = np.zeros((texture_size, texture_size, 3), np.uint8)
    image[frags.mask] = (rgb * 255.0 + 0.5).astype(np.uint8)
    return uvmesh, pad_seams(image, frags.mask)
