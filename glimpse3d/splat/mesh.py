"""Coloured triangle mesh from a Gaussian-splat model (for ``.glb``/``.obj`` export).

The splats define an opacity-density field (world units, Z-up)

    D(x) = sum_i  o_i * exp(-0.5 (x - mu_i)^T Sigma_i^-1 (x - mu_i)),   o_i = sigmoid(logit_i)

with ``Sigma_i = R_i S_i^2 R_i^T`` (+ a small isotropic term of (voxel/2)^2 so that gaussians
thinner than a voxel are not lost between samples). ``D`` is sampled on a cubic-voxel grid
covering the gaussians; each gaussian only touches the voxels inside its axis-aligned 3-sigma
box and with Mahalanobis distance <= 3 (a compiled scatter: cost ~ sum of box volumes, never
N x voxels). Cavities enclosed by the surface are filled, the level set ``D = level`` is
extracted with marching cubes, components much smaller than the largest are dropped, and each
vertex gets the density-weighted mean of the nearby gaussians' base colours (RGB in [0,1]),
interpolated from a colour grid accumulated in the same pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from numba import njit

from glimpse3d.errors import UserError
from glimpse3d.splat.cameras import Camera
from glimpse3d.splat.gaussians import GaussianModel

MIN_RESOLUTION = 16
MAX_RESOLUTION = 512
MAHALANOBIS_CUTOFF_SQ = 9.0  # 3 sigma
AUTO_LEVEL_FRACTION = 0.5  # level = fraction * median opacity of the visible gaussians
MIN_OPACITY = 0.02  # gaussians fainter than this are ignored
FIELD_BLUR_VOXELS = 1.0  # sigma of the blur of the signed field before marching cubes
MIN_FACES = 100  # smallest face budget accepted by simplify()
SIMPLIFY_AGGRESSION = 5.0  # fast-simplification's ``agg`` (7 = its default; lower = better shapes)


class MeshExtractionError(UserError):
    """The model yields no surface (empty, all transparent, or a bad parameter)."""

    http_status = 422


@njit(cache=True, nogil=True, fastmath=True)
def _scatter(
    means: np.ndarray,  # (N,3) float64
    inv_cov: np.ndarray,  # (N,3,3) float64
    extent: np.ndarray,  # (N,3) float64, half-size of the 3-sigma box per axis
    opacity: np.ndarray,  # (N,) float64
    colors: np.ndarray,  # (N,3) float64
    origin: np.ndarray,  # (3,) world position of voxel (0,0,0)
    voxel: float,
    dims: np.ndarray,  # (3,) int64
) -> tuple[np.ndarray, np.ndarray]:
    nx, ny, nz = dims[0], dims[1], dims[2]
    density = np.zeros((nx, ny, nz), np.float32)
    color = np.zeros((nx, ny, nz, 3), np.float32)
    for i in range(means.shape[0]):
        lo = np.empty(3, np.int64)
        hi = np.empty(3, np.int64)
        for a in range(3):
            # clamp in floating point first: far-away gaussians must not overflow the int cast
            f0 = np.ceil((means[i, a] - extent[i, a] - origin[a]) / voxel)
            f1 = np.floor((means[i, a] + extent[i, a] - origin[a]) / voxel)
            lo[a] = int(min(max(f0, 0.0), dims[a]))
            hi[a] = int(min(max(f1, -1.0), dims[a] - 1.0))
        a00, a01, a02 = inv_cov[i, 0, 0], inv_cov[i, 0, 1], inv_cov[i, 0, 2]
        a11, a12, a22 = inv_cov[i, 1, 1], inv_cov[i, 1, 2], inv_cov[i, 2, 2]
        o = opacity[i]
        r, g, b = colors[i, 0], colors[i, 1], colors[i, 2]
        inv_a22 = 1.0 / a22
        for ix in range(lo[0], hi[0] + 1):
            dx = origin[0] + ix * voxel - means[i, 0]
            for iy in range(lo[1], hi[1] + 1):
                dy = origin[1] + iy * voxel - means[i, 1]
                qxy = a00 * dx * dx + 2.0 * a01 * dx * dy + a11 * dy * dy
                bz = 2.0 * (a02 * dx + a12 * dy)
                # q(dz) = a22 dz^2 + bz dz + qxy <= cutoff  <=>  dz in [t0, t1]
                disc = bz * bz - 4.0 * a22 * (qxy - MAHALANOBIS_CUTOFF_SQ)
                if disc < 0.0:
                    continue
                root = np.sqrt(disc)
                t0 = (-bz - root) * 0.5 * inv_a22 + means[i, 2] - origin[2]
                t1 = (-bz + root) * 0.5 * inv_a22 + means[i, 2] - origin[2]
                z0 = max(lo[2], int(np.ceil(t0 / voxel)))
                z1 = min(hi[2], int(np.floor(t1 / voxel)))
                for iz in range(z0, z1 + 1):
                    dz = origin[2] + iz * voxel - means[i, 2]
                    w = o * np.exp(-0.5 * (qxy + bz * dz + a22 * dz * dz))
                    density[ix, iy, iz] += w
                    color[ix, iy, iz, 0] += w * r
                    color[ix, iy, iz, 1] += w * g
                    color[ix, iy, iz, 2] += w * b
    return density, color


def _rotmats(quats: np.ndarray) -> np.ndarray:
    """(N,4) wxyz quaternions (any norm) -> (N,3,3) rotation matrices."""
    q = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def density_grid(
    model: GaussianModel, resolution: int = 96, padding_voxels: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Sample the opacity density (and density-weighted colour sums) on a cubic-voxel grid.

    Returns ``(density (X,Y,Z), color_sum (X,Y,Z,3), origin (3,), voxel)``: voxel ``(i,j,k)``
    is centred at ``origin + voxel * (i,j,k)`` (world units); the longest side of the
    gaussians' 3-sigma bounding box spans ``resolution`` voxels.
    """
    if not MIN_RESOLUTION <= int(resolution) <= MAX_RESOLUTION:
        raise MeshExtractionError(
            f"mesh resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION}, got {resolution}"
        )
    m = model.detach().to("cpu")
    opacity = m.opacities.double().numpy()
    keep = opacity >= MIN_OPACITY
    keep &= np.isfinite(m.means.double().numpy()).all(axis=1)
    keep &= np.isfinite(m.log_scales.double().numpy()).all(axis=1)
    if not keep.any():
        raise MeshExtractionError("the model has no visible gaussians to build a mesh from")
    means = m.means.double().numpy()[keep]
    scales = np.exp(np.clip(m.log_scales.double().numpy()[keep], -20.0, 5.0))
    rot = _rotmats(m.quats.double().numpy()[keep])
    colors = m.base_colors.double().numpy()[keep]
    opacity = opacity[keep]

    cov = np.einsum("nij,nj,nkj->nik", rot, scales**2, rot)
    # Bounds: the gaussians' 3-sigma boxes, ignoring the outermost 0.1% per side (far
    # floaters would otherwise shrink the object to a few voxels).
    sigma_axis = np.sqrt(np.einsum("nii->ni", cov))
    lo = np.quantile(means - 3 * sigma_axis, 0.001, axis=0)
    hi = np.quantile(means + 3 * sigma_axis, 0.999, axis=0)
    span = float(np.max(hi - lo))
    if not np.isfinite(span) or span <= 0:
        raise MeshExtractionError("the model's gaussians have no spatial extent")
    # Gaussians much larger than the whole object are background haze, and costly: skip them.
    small = np.max(scales, axis=1) <= 0.5 * span
    if not small.all():
        means, cov, opacity, colors = means[small], cov[small], opacity[small], colors[small]
    voxel = span / (int(resolution) - 1)
    cov = cov + np.eye(3) * (0.5 * voxel) ** 2
    inv_cov = np.linalg.inv(cov)
    extent = 3.0 * np.sqrt(np.einsum("nii->ni", cov))
    origin = lo - padding_voxels * voxel
    dims = (np.ceil((hi - lo) / voxel).astype(np.int64) + 1 + 2 * padding_voxels).astype(np.int64)
    density, color = _scatter(
        np.ascontiguousarray(means),
        np.ascontiguousarray(inv_cov),
        np.ascontiguousarray(extent),
        np.ascontiguousarray(opacity),
        np.ascontiguousarray(colors),
        origin.astype(np.float64),
        float(voxel),
        dims,
    )
    return density, color, origin, voxel


def _auto_level(model: GaussianModel) -> float:
    """Half the median opacity of the visible gaussians.

    A level tied to single-gaussian opacity (not to the summed density, which grows with
    the overlap count) keeps thin shells of surface gaussians closed: in gaps between
    samples the density drops well below the peaks but stays above ~opacity/2.
    """
    opacity = model.opacities.detach().cpu().double().numpy()
    visible = opacity[opacity >= MIN_OPACITY]
    return float(AUTO_LEVEL_FRACTION * np.median(visible)) if visible.size else 0.5


@dataclass
class SplatViews:
    """Renders of the splat model: ``rgb`` (V,H,W,3) straight (not premultiplied) colour in
    [0,1], ``alpha`` (V,H,W) coverage, one per camera of ``cameras`` (all the same size)."""

    cameras: list[Camera]
    rgb: np.ndarray
    alpha: np.ndarray


def render_splat_views(model: GaussianModel, cameras: list[Camera]) -> SplatViews:
    """Render ``model`` at ``cameras`` (black background, colours un-premultiplied)."""
    import torch

    from glimpse3d.splat.rasterizer import render

    model = model.detach().to("cpu")
    rgbs, alphas = [], []
    with torch.no_grad():
        for camera in cameras:
            out = render(model, camera)
            alpha = out.alpha.clamp(0.0, 1.0).float().numpy()
            rgb = out.rgb.float().numpy() / np.maximum(alpha, 1e-4)[..., None]
            rgbs.append(np.clip(rgb, 0.0, 1.0))
            alphas.append(alpha)
    return SplatViews(list(cameras), np.stack(rgbs), np.stack(alphas))


def hull_alpha(points: np.ndarray, views: SplatViews) -> np.ndarray:
    """The smallest rendered coverage over ``views`` at the projections of ``points`` (M,3):
    below 0.5 the point lies outside the model's silhouette in at least one view. Points that
    project outside an image are not constrained by it."""
    from glimpse3d.splat.meshraster import bilinear

    lowest = np.ones(len(points), np.float32)
    for camera, alpha in zip(views.cameras, views.alpha, strict=True):
        uv, z = camera.project(points)
        a = bilinear(alpha, uv[:, 0], uv[:, 1], outside=1.0)[:, 0]
        lowest = np.minimum(lowest, np.where(z > 0, a, 1.0))
    return lowest


@dataclass
class DensityField:
    """The sampled opacity density and density-weighted colour sums (see :func:`density_grid`)."""

    density: np.ndarray  # (X,Y,Z)
    color_sum: np.ndarray  # (X,Y,Z,3)
    origin: np.ndarray  # (3,) world position of voxel (0,0,0)
    voxel: float

    def colors_at(self, points: np.ndarray) -> np.ndarray:
        """Density-weighted mean base colour of the gaussians near ``points`` (M,3) -> (M,3)
        RGB in [0,1], trilinearly interpolated."""
        from scipy.ndimage import map_coordinates

        coords = ((np.asarray(points, np.float64) - self.origin) / self.voxel).T
        weight = map_coordinates(self.density, coords, order=1, mode="nearest")
        rgb = np.stack([map_coordinates(self.color_sum[..., c], coords, order=1, mode="nearest")
                        for c in range(3)], -1)
        return np.clip(rgb / np.maximum(weight, 1e-12)[:, None], 0.0, 1.0)


def extract_surface(
    model: GaussianModel,
    resolution: int = 96,
    level: float | None = None,
    min_component_fraction: float = 0.05,
    views: SplatViews | None = None,
) -> tuple[trimesh.Trimesh, DensityField]:
    """Closed outer surface of the density field (world units, outward normals), no colours.

    With ``views`` the field is also carved by the renders' silhouettes (coverage 0.5 in every
    view), so the mesh's outline follows what the splats show rather than their iso-surface.
    Returns the mesh and the sampled field (for colours).
    """
    from scipy.ndimage import binary_fill_holes, gaussian_filter
    from skimage.measure import marching_cubes

    if model.num_gaussians == 0:
        raise MeshExtractionError("the model contains no gaussians")
    density, color, origin, voxel = density_grid(model, resolution)
    iso = _auto_level(model) if level is None else float(level)
    if not np.isfinite(iso) or iso <= 0:
        raise MeshExtractionError(f"mesh level must be a positive number, got {level}")
    inside = density > iso
    if not inside.any():
        raise MeshExtractionError(
            f"no part of the model reaches density level {iso:.3g} (max {density.max():.3g})"
        )
    # Signed field, 0 on the surface: density relative to the level, cavities enclosed by
    # the surface (e.g. the hollow inside of a shell of surface gaussians) filled, so that
    # only the outer surface is extracted.
    field = np.clip(density / iso - 1.0, -1.0, 1.0).astype(np.float32)
    field[binary_fill_holes(inside) & ~inside] = 1.0
    # a light blur removes the voxel-scale bumps and pin-holes of a field made of splats (the
    # silhouette carving below stays sharp)
    field = gaussian_filter(field, FIELD_BLUR_VOXELS)
    if views is not None:
        near = np.nonzero(field > -0.5)  # only voxels at or inside the surface can change sign
        centres = origin + voxel * np.stack(near, axis=1)
        field[near] = np.minimum(field[near], 2.0 * hull_alpha(centres, views) - 1.0)
        if not (field > 0).any():
            raise MeshExtractionError("the model's renders leave no solid part to mesh")
    volume = np.pad(field, 1, constant_values=-1.0)  # closed even where it meets the grid edge
    verts, faces, _normals, _values = marching_cubes(
        volume, level=0.0, spacing=(voxel, voxel, voxel), allow_degenerate=False
    )
    verts = verts + (origin - voxel)  # -voxel: the padding
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=True)
    mesh = _largest_components(mesh, min_component_fraction)
    if mesh.volume < 0:
        mesh.invert()
    return mesh, DensityField(density, color, origin, voxel)


def extract_mesh(
    model: GaussianModel,
    resolution: int = 96,
    level: float | None = None,
    min_component_fraction: float = 0.05,
) -> trimesh.Trimesh:
    """Extract a closed, vertex-coloured triangle mesh (world units) from ``model``.

    ``resolution``: voxels along the longest side of the model's bounding box.
    ``level``: iso-value of the opacity density; default ``AUTO_LEVEL_FRACTION`` x the median
    opacity of the gaussians. ``min_component_fraction``: connected components with
    fewer faces than this fraction of the largest one are dropped (floaters).
    Vertex colours are RGBA uint8 (alpha 255); normals point outwards.
    """
    mesh, field = extract_surface(model, resolution, level, min_component_fraction)
    mesh.visual.vertex_colors = rgba8(field.colors_at(mesh.vertices))
    return mesh


def rgba8(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0,1] (M,3) -> RGBA uint8 (M,4) with alpha 255."""
    rgb8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.concatenate([rgb8, np.full((len(rgb8), 1), 255, np.uint8)], axis=1)


def _largest_components(mesh: trimesh.Trimesh, min_fraction: float) -> trimesh.Trimesh:
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return mesh
    sizes = np.array([len(p.faces) for p in parts])
    keep = [p for p, s in zip(parts, sizes, strict=True) if s >= min_fraction * sizes.max()]
    return trimesh.util.concatenate(keep) if len(keep) > 1 else keep[0]


def min_angles_deg(mesh: trimesh.Trimesh) -> np.ndarray:
    """Smallest interior angle of every face, degrees (F,)."""
    return np.degrees(mesh.face_angles.min(axis=1))


def simplify(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric-error decimation (fast-simplification) to at most ``max_faces`` faces, then
    :func:`clean`. The quadric collapses remove marching cubes' slivers as they go."""
    import fast_simplification

    if int(max_faces) < MIN_FACES:
        raise MeshExtractionError(f"face budget must be at least {MIN_FACES}, got {max_faces}")
    out = mesh
    if len(mesh.faces) > max_faces:
        # the decimator may stop a few faces over its target: aim a little lower
        target = 1.0 - 0.995 * max_faces / len(mesh.faces)
        points, faces = fast_simplification.simplify(
            np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32),
            target_reduction=target, agg=SIMPLIFY_AGGRESSION,
        )
        out = trimesh.Trimesh(vertices=points, faces=faces, process=True)
    return clean(out)


def clean(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Merged duplicate vertices, dropped degenerate (zero-area) and duplicate faces and
    unreferenced vertices; outward winding (positive volume when closed)."""
    m = mesh.copy()
    m.merge_vertices()
    m.update_faces(m.nondegenerate_faces(height=1e-10))
    m.update_faces(m.unique_faces())
    m.remove_unreferenced_vertices()
    if m.is_watertight and m.volume < 0:
        m.invert()
    return m
