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
from numba import njit, prange

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

    from glimpse3d.splat._threads import one_torch_thread
    from glimpse3d.splat.rasterizer import render

    model = model.detach().to("cpu")
    rgbs, alphas = [], []
    with one_torch_thread(), torch.no_grad():
        for camera in cameras:
            out = render(model, camera, backend="fast")
            alpha = out.alpha.clamp(0.0, 1.0).float().numpy()
            rgb = out.rgb.float().numpy() / np.maximum(alpha, 1e-4)[..., None]
            rgbs.append(np.clip(rgb, 0.0, 1.0))
            alphas.append(alpha)
    return SplatViews(list(cameras), np.stack(rgbs), np.stack(alphas))


@njit(parallel=True, cache=True, fastmath=True)
def _hull_kernel(points, w2c, intrinsics, alphas, out):  # pragma: no cover - jitted
    """out[m] = min over views of the bilinear coverage at the projection of points[m]."""
    n_views, height, width = alphas.shape[0], alphas.shape[1], alphas.shape[2]
    for m in prange(points.shape[0]):
        px, py, pz = points[m, 0], points[m, 1], points[m, 2]
        lowest = 1.0
        for v in range(n_views):
            r = w2c[v]
            z = r[2, 0] * px + r[2, 1] * py + r[2, 2] * pz + r[2, 3]
            if z <= 1e-6:
                continue
            u = intrinsics[v, 0] * (r[0, 0] * px + r[0, 1] * py + r[0, 2] * pz + r[0, 3]) / z
            w = intrinsics[v, 1] * (r[1, 0] * px + r[1, 1] * py + r[1, 2] * pz + r[1, 3]) / z
            sx = u + intrinsics[v, 2] - 0.5
            sy = w + intrinsics[v, 3] - 0.5
            if sx < 0.0 or sy < 0.0 or sx > width - 1.0 or sy > height - 1.0:
                continue  # outside this image: not constrained by it
            x0, y0 = min(int(sx), width - 2), min(int(sy), height - 2)
            fx, fy = sx - x0, sy - y0
            a = ((alphas[v, y0, x0] * (1 - fx) + alphas[v, y0, x0 + 1] * fx) * (1 - fy)
                 + (alphas[v, y0 + 1, x0] * (1 - fx) + alphas[v, y0 + 1, x0 + 1] * fx) * fy)
            lowest = min(lowest, a)
        out[m] = lowest


def hull_alpha(points: np.ndarray, views: SplatViews) -> np.ndarray:
    """The smallest rendered coverage over ``views`` at the projections of ``points`` (M,3):
    below 0.5 the point lies outside the model's silhouette in at least one view. Points that
    project outside an image are not constrained by it."""
    from glimpse3d.splat._raster_numba import _LAUNCH_LOCK

    cams = views.cameras
    out = np.empty(len(points))
    with _LAUNCH_LOCK:
        _hull_kernel(
            np.ascontiguousarray(points, np.float64),
            np.stack([c.w2c for c in cams]).astype(np.float64),
            np.array([[c.fx, c.fy, c.cx, c.cy] for c in cams], np.float64),
            np.ascontiguousarray(views.alpha, np.float32),
            out,
        )
    return out


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
    from scipy.ndimage import binary_fill_holes, gaussian_filter, grey_closing
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
    # a light blur removes the voxel-scale bumps and pin-holes of a field made of splats, and a
    # grey closing the tunnels up to ~2 voxels wide through its walls (on the sample mug: genus
    # 19 -> 10, same PSNR/IoU); the silhouette carving below stays sharp
    field = grey_closing(gaussian_filter(field, FIELD_BLUR_VOXELS), size=(3, 3, 3))
    if views is not None:
        near = np.nonzero(field > -0.5)  # only voxels at or inside the surface can change sign
        centres = origin + voxel * np.stack(near, axis=1)
        field[near] = np.minimum(field[near], 2.0 * hull_alpha(centres, views) - 1.0)
        if not (field > 0).any():
            raise MeshExtractionError("the model's renders leave no solid part to mesh")
    _drop_small_components(field, min_component_fraction)
    volume = np.pad(field, 1, constant_values=-1.0)  # closed even where it meets the grid edge
    verts, faces, _normals, _values = marching_cubes(
        volume, level=0.0, spacing=(voxel, voxel, voxel), allow_degenerate=False
    )
    verts = verts + (origin - voxel)  # -voxel: the padding
    if signed_volume(verts, faces) < 0:  # outward normals
        faces = faces[:, ::-1]
    mesh = trimesh.Trimesh(vertices=verts, faces=np.ascontiguousarray(faces), process=False)
    return mesh, DensityField(density, color, origin, voxel)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed triangle mesh, positive when its normals point outwards."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)


def _drop_small_components(field: np.ndarray, min_fraction: float) -> None:
    """Empty (in place) the solid parts (field > 0, 26-connected) with fewer voxels than
    ``min_fraction`` x the largest: floaters."""
    from scipy.ndimage import generate_binary_structure, label

    labels, count = label(field > 0, structure=generate_binary_structure(3, 3))
    if count <= 1:
        return
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    small = sizes < min_fraction * sizes.max()
    small[0] = False
    if small.any():
        field[small[labels]] = -1.0


def extract_mesh(
    model: GaussianModel,
    resolution: int = 96,
    level: float | None = None,
    min_component_fraction: float = 0.05,
) -> trimesh.Trimesh:
    """Extract a closed, vertex-coloured triangle mesh (world units) from ``model``.

    ``resolution``: voxels along the longest side of the model's bounding box.
    ``level``: iso-value of the opacity density; default ``AUTO_LEVEL_FRACTION`` x the median
    opacity of the gaussians. ``min_component_fraction``: solid parts with fewer voxels
    than this fraction of the largest one are dropped (floaters).
    Vertex colours are RGBA uint8 (alpha 255); normals point outwards.
    """
    mesh, field = extract_surface(model, resolution, level, min_component_fraction)
    mesh.visual.vertex_colors = rgba8(field.colors_at(mesh.vertices))
    return mesh


def rgba8(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0,1] (M,3) -> RGBA uint8 (M,4) with alpha 255."""
    rgb8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.concatenate([rgb8, np.full((len(rgb8), 1), 255, np.uint8)], axis=1)


def min_angles_deg(mesh: trimesh.Trimesh) -> np.ndarray:
    """Smallest interior angle of every face, degrees (F,)."""
    return np.degrees(mesh.face_angles.min(axis=1))


def simplify(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric-error decimation (fast-simplification) to at most ``max_faces`` faces, then
    :func:`clean`. The quadric collapses remove marching cubes' slivers as they go; the few
    places where they pinch two sheets together are cut out and closed again, so a closed
    surface stays closed (watertight)."""
    import fast_simplification

    if int(max_faces) < MIN_FACES:
        raise MeshExtractionError(f"face budget must be at least {MIN_FACES}, got {max_faces}")
    max_faces = int(max_faces)
    out = clean(mesh) if len(mesh.faces) <= max_faces else mesh
    # the decimator may stop a few faces over its target, and closing pinches adds some:
    # aim lower, and lower again if needed
    target = 0.99 * max_faces
    for _ in range(4):
        if len(out.faces) <= max_faces:
            break
        points, faces = fast_simplification.simplify(
            np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32),
            target_reduction=max(0.0, 1.0 - target / len(mesh.faces)), agg=SIMPLIFY_AGGRESSION,
        )
        out = clean(trimesh.Trimesh(vertices=points, faces=faces, process=False))
        target *= 0.98 * max_faces / max(len(out.faces), 1)
    if len(out.faces) > max_faces:
        raise MeshExtractionError(f"could not reduce the mesh to {max_faces} faces (got {len(out.faces)})")
    return out


def edge_use_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each face corner's edge (F,3): how many faces use that (undirected) edge, and the
    unique edge index. 2 everywhere <=> closed 2-manifold."""
    edges = np.sort(np.stack([faces, np.roll(faces, -1, axis=1)], axis=2), axis=2).reshape(-1, 2)
    _, index, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    index = index.reshape(faces.shape)
    return counts[index], index


def is_closed_manifold(faces: np.ndarray) -> bool:
    """Every edge is shared by exactly two faces (watertight, no fins)."""
    return bool(len(faces)) and bool((edge_use_counts(faces)[0] == 2).all())


def _close_holes(vertices: np.ndarray, faces: np.ndarray, max_loop: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Close each loop of boundary edges (edges of one face) up to ``max_loop`` long with a fan
    around a new vertex at the loop's centroid, wound so the edges pair up with their
    neighbours' (a new centre never collides with existing edges, which a fan between loop
    vertices can at a pinch). Holes here are the few left by removing pinched faces."""
    uses, _ = edge_use_counts(faces)
    corner = np.nonzero(uses == 1)
    following: dict[int, list[int]] = {}
    for a, b in zip(faces[corner].tolist(), faces[corner[0], (corner[1] + 1) % 3].tolist(),
                    strict=True):  # a few dozen edges
        following.setdefault(a, []).append(b)
    new_vertices, new_faces = [], []

    def close(loop: list[int]) -> None:
        if 3 <= len(loop) <= max_loop:
            centre = len(vertices) + len(new_vertices)
            new_vertices.append(vertices[loop].mean(axis=0))
            new_faces.extend((centre, loop[(i + 1) % len(loop)], loop[i]) for i in range(len(loop)))

    while following:
        loop = [next(iter(following))]
        position = {loop[0]: 0}
        while loop[-1] in following:
            here = loop[-1]
            nxt = following[here].pop()
            if not following[here]:
                del following[here]
            if nxt in position:  # a loop closed (at a pinch vertex, one of several)
                k = position[nxt]
                close(loop[k:])
                for v in loop[k + 1:]:
                    del position[v]
                loop = loop[: k + 1]
            else:
                position[nxt] = len(loop)
                loop.append(nxt)
    if not new_faces:
        return vertices, faces
    return (np.concatenate([vertices, np.array(new_vertices)]),
            np.concatenate([faces, np.array(new_faces, np.int64)]))


def clean(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Dropped degenerate (zero-area) and duplicate faces and unreferenced vertices; where the
    decimation pinched two sheets together (edges of 3+ faces), those faces are removed and the
    small holes left are filled; outward winding (positive signed volume)."""
    vertices = np.asarray(mesh.vertices, np.float64)
    faces = np.asarray(mesh.faces, np.int64)
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    area2 = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    faces = faces[area2 > 1e-12 * max(float(area2.max(initial=0.0)), 1e-30)]
    faces = faces[np.unique(np.sort(faces, axis=1), axis=0, return_index=True)[1]]
    uses, _ = edge_use_counts(faces)
    if (uses > 2).any():
        vertices, faces = _close_holes(vertices, faces[~(uses > 2).any(axis=1)])
    m = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    m.remove_unreferenced_vertices()
    if signed_volume(np.asarray(m.vertices), np.asarray(m.faces)) < 0:
        m.invert()
    return m
