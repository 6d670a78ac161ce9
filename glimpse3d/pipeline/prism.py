"""Prism (extrusion) reading of a silhouette: the shape prior for boxes, cans, blocks.

The classic proxy's default prior is rotational similarity (the object looks alike from every
azimuth), right for spheres, bottles and cups but wrong for anything with corners: a box
becomes a cylinder. This module tests the other common prior for a single photo taken from
above (elevation 30°): the object is a vertical **prism**, a cross-section ``C`` in the ground
plane extruded between heights ``z_bottom`` and ``z_top`` (world Z-up, scene units).

For a prism, the cap at ``z_bottom`` and the cap at ``z_top`` both project inside the
silhouette, so ``C`` is contained in the back-projection of the silhouette onto each of the
two planes; their intersection is exact for convex prisms (the near bottom edge comes from
the silhouette's lower outline, the far top edge from its upper outline). Any pair of heights
keeps the caps inside the silhouette; the right pair is one whose prism also *covers* it.
Among those, the one with a cross-section as deep as it is wide and centred on the turntable
axis is chosen (the same prior the rotational hull makes implicitly).

Vertical lines of the world meet at the vanishing point below the image (the camera looks
down), so coverage is measured in polar coordinates around it: every vertical segment of the
prism is a radial segment there.

``PrismFit.plausible`` is the decision rule: the silhouette must have straight sides along
vertical lines on both the left and the right (``side_run``), and the prism must fit the
prior (``cost``). Both thresholds were chosen by measuring held-out silhouette IoU on
synthetic spheres, cylinders, cones, capsules, blobs, ellipsoids and boxes at several
yaws (``benchmarks/bench_proxy.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from glimpse3d.splat.cameras import Camera

WORK_SIZE = 128  # px, resolution of the search
SECTION_EXTENT = 0.9  # half-side (scene units) of the ground-plane grid searched for C
SECTION_GRID = 120  # cells per side of that grid
Z_LIMIT = 0.62  # default heights searched: +-this (multiview passes its voxel cube's half-side)
Z_COARSE = 0.04  # height step of the coarse search (scene units)
Z_FINE = 0.01  # height step of the refinement around the coarse optimum
MAX_UNCOVERED = 0.005  # fraction of the (1 px eroded) silhouette a prism may leave uncovered
MIN_SIDE_RUN = 0.4  # straight vertical sides: at least this fraction of the radial extent
MAX_COST = 0.75  # prior misfit |depth - width| / width + |centre_x| / width
SLACK_WORK_PX = 0.5  # a cap point may project this far (px at WORK_SIZE) outside the silhouette
RECT_WEIGHT = 1.5  # weight of (1 - rectangularity) in the choice of heights (boxes: exact)


@dataclass(frozen=True)
class PrismFit:
    """The best prism reading of a silhouette seen from camera 0.

    ``z_bottom``/``z_top``: world heights of the caps. ``depth``/``width``: extents of the
    cross-section along world X (towards camera 0) and Y; ``centre_x``: its X mid-point.
    ``cost``: misfit to the prior (0 = as deep as wide, centred). ``side_run``: the shorter of
    the silhouette's straight left/right sides along vertical lines, as a fraction of its
    radial extent around the vertical vanishing point (0 for a sphere, ~0.5-0.8 for boxes).
    """

    z_bottom: float
    z_top: float
    depth: float
    width: float
    centre_x: float
    cost: float
    side_run: float

    @property
    def plausible(self) -> bool:
        return self.side_run >= MIN_SIDE_RUN and self.cost <= MAX_COST


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return (inside - outside).astype(np.float32)


def sample_image(img: np.ndarray, u: np.ndarray, v: np.ndarray, outside: float) -> np.ndarray:
    """Bilinear samples of a float32 (H,W) image at pixel coords u,v (pixel centres at +0.5);
    ``outside`` beyond the image. Uses ``cv2.remap`` (fast, vectorised)."""
    n = len(u)
    cols = 1024
    rows = -(-n // cols)
    mx = np.full(rows * cols, -10.0, dtype=np.float32)
    my = np.full(rows * cols, -10.0, dtype=np.float32)
    mx[:n] = u - 0.5
    my[:n] = v - 0.5
    out = cv2.remap(img.astype(np.float32, copy=False), mx.reshape(rows, cols),
                    my.reshape(rows, cols), cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=float(outside))
    return out.ravel()[:n]


def project_plane(camera: Camera, xy: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) of the ground-plane points ``xy`` (N,2) lifted to height z."""
    r = camera.w2c[:3].astype(np.float64)
    p = np.concatenate([xy.astype(np.float64), np.full((len(xy), 1), z)], axis=1)
    cam = p @ r[:, :3].T + r[:, 3]
    zc = np.maximum(cam[:, 2], 1e-6)
    return ((camera.fx * cam[:, 0] / zc + camera.cx).astype(np.float32),
            (camera.fy * cam[:, 1] / zc + camera.cy).astype(np.float32))


def vertical_vanishing_point(camera: Camera) -> tuple[float, float]:
    """Image point (u, v) where world-vertical lines meet (below the image for a camera
    looking down). Raises ``ValueError`` for a level camera (no finite vanishing point)."""
    d = camera.w2c[:3, :3] @ np.array([0.0, 0.0, -1.0])
    if abs(d[2]) < 1e-6:
        raise ValueError("the camera is level: vertical lines are parallel in the image")
    return float(camera.fx * d[0] / d[2] + camera.cx), float(camera.fy * d[1] / d[2] + camera.cy)


def working_mask(alpha: np.ndarray, camera: Camera, size: int) -> tuple[Camera, np.ndarray]:
    """``camera`` and the silhouette ``alpha`` (S,S) in [0,1] at ``size`` px (area-averaged,
    then alpha > 0.5): the resolution the silhouette readings search at."""
    a = cv2.resize(np.asarray(alpha, dtype=np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return camera.resized(size), a > 0.5


def fit_prism(alpha: np.ndarray, camera: Camera, z_limit: float = Z_LIMIT) -> PrismFit | None:
    """Fit a vertical prism to the silhouette ``alpha`` (S,S) in [0,1] seen by ``camera``
    (camera 0 at size S), its caps within heights +-``z_limit``. ``None`` when no prism
    covers the silhouette."""
    work, mask = working_mask(alpha, camera, WORK_SIZE)
    if mask.sum() < 16:
        return None
    sd = _signed_distance(mask)
    core = ndimage.binary_erosion(mask, iterations=1)
    if not core.any():
        return None
    vpu, vpv = vertical_vanishing_point(work)
    rows, cols = np.nonzero(core)
    # polar coordinates around the vanishing point (angle 0 = straight up from it)
    theta_px = np.arctan2(cols + 0.5 - vpu, vpv - rows - 0.5)
    radius_px = np.hypot(cols + 0.5 - vpu, rows + 0.5 - vpv)
    th_lo, th_hi = float(theta_px.min()) - 0.02, float(theta_px.max()) + 0.02
    n_bins = max(8, int((th_hi - th_lo) * float(radius_px.mean())))  # ~1 px per bin

    def to_bin(theta: np.ndarray) -> np.ndarray:
        return np.clip(((theta - th_lo) / (th_hi - th_lo) * n_bins).astype(np.int64), 0, n_bins - 1)

    bin_px = to_bin(theta_px)
    axis = np.linspace(-SECTION_EXTENT, SECTION_EXTENT, SECTION_GRID, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    planes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def plane(zi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The grid lifted to height zi * Z_FINE: signed distance of each cell's projection,
        and, sorted by angle bin, the cells' order, their radii and the bins' first indices
        (for per-bin minima/maxima with ``reduceat``, much faster than ``ufunc.at``)."""
        if zi not in planes:
            u, v = project_plane(work, xy, zi * Z_FINE)
            bins = to_bin(np.arctan2(u - vpu, vpv - v))
            order = np.argsort(bins, kind="stable")
            sorted_bins = bins[order]
            starts = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
            planes[zi] = (sample_image(sd, u, v, -50.0), order,
                          np.hypot(u - vpu, v - vpv)[order], np.stack([starts, sorted_bins[starts]]))
        return planes[zi]

    cell = float(axis[1] - axis[0])

    def evaluate(zb: int, zt: int) -> tuple[float, float, float, float, float] | None:
        """(uncovered fraction, centre_x, depth, width, rectangularity) of the prism between
        two heights; rectangularity = area / area of the smallest enclosing rectangle."""
        s0, *polar0 = plane(zb)
        s1, *polar1 = plane(zt)
        inside = np.minimum(s0, s1) > -SLACK_WORK_PX
        if inside.sum() < 4:
            return None
        lo = np.full(n_bins, np.inf)
        hi = np.full(n_bins, -np.inf)
        for order, radius, (starts, bins) in (polar0, polar1):
            ins = inside[order]
            lo[bins] = np.minimum(lo[bins], np.minimum.reduceat(np.where(ins, radius, np.inf), starts))
            hi[bins] = np.maximum(hi[bins], np.maximum.reduceat(np.where(ins, radius, -np.inf), starts))
        lo = ndimage.minimum_filter1d(lo, 3)
        hi = ndimage.maximum_filter1d(hi, 3)
        covered = (radius_px >= lo[bin_px] - 1.0) & (radius_px <= hi[bin_px] + 1.0)
        uncovered = float(1.0 - covered.mean())
        if uncovered > MAX_UNCOVERED:
            return uncovered, 0.0, 0.0, 0.0, 0.0
        xs, ys = xy[inside, 0], xy[inside, 1]
        (_, _), (rw, rh), _ = cv2.minAreaRect(xy[inside].astype(np.float32))
        rect = float(inside.sum()) * cell**2 / ((rw + cell) * (rh + cell))
        return (uncovered, float(xs.min() + xs.max()) / 2,
                float(xs.max() - xs.min()), float(ys.max() - ys.min()), rect)

    def search(pairs: list[tuple[int, int]]) -> tuple[float, int, int, tuple] | None:
        best = None
        for zb, zt in pairs:
            r = evaluate(zb, zt)
            if r is None or r[0] > MAX_UNCOVERED:
                continue
            cost = _prior_cost(r[1], r[2], r[3]) + RECT_WEIGHT * (1.0 - r[4])
            if best is None or cost < best[0]:
                best = (cost, zb, zt, r)
        return best

    limit = int(round(z_limit / Z_FINE))
    step = int(round(Z_COARSE / Z_FINE))
    coarse = list(range(-limit, limit + 1, step))
    best = search([(b, t) for i, b in enumerate(coarse) for t in coarse[i + 1:]])
    if best is None:
        return None
    _, zb0, zt0 = best[:3]
    fine = [(b, t) for b in range(zb0 - step, zb0 + step + 1) for t in range(zt0 - step, zt0 + step + 1)
            if t > b]
    best = search(fine) or best
    _, zb, zt, (_, centre_x, depth, width, _) = best
    # straight sides: radial extent of the silhouette pixels at the extreme angles
    span = float(radius_px.max() - radius_px.min())
    tol = 1.25 / float(radius_px.mean())  # angle of ~1 px

    def run(sel: np.ndarray) -> float:
        return float(radius_px[sel].max() - radius_px[sel].min()) / max(span, 1e-9)

    side_run = min(run(theta_px <= theta_px.min() + tol), run(theta_px >= theta_px.max() - tol))
    return PrismFit(z_bottom=zb * Z_FINE, z_top=zt * Z_FINE, depth=depth, width=width,
                    centre_x=centre_x, cost=_prior_cost(centre_x, depth, width), side_run=side_run)


def _prior_cost(centre_x: float, depth: float, width: float) -> float:
    """Misfit to the prior: as deep as wide, centred on the turntable axis."""
    return abs(depth - width) / width + abs(centre_x) / width


def prism_field(sd: np.ndarray, camera: Camera, fit: PrismFit, axis: np.ndarray) -> np.ndarray:
    """Signed field (scene units, positive inside) of the fitted prism on the voxel grid
    ``axis``³ (indexing x, y, z). ``sd``: the silhouette's signed distance in pixels for
    ``camera`` (positive inside)."""
    px_to_world = camera.distance / camera.fx
    slack_px = SLACK_WORK_PX * camera.width / WORK_SIZE  # the search's tolerance, see fit_prism
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    u0, v0 = project_plane(camera, xy, fit.z_bottom)
    u1, v1 = project_plane(camera, xy, fit.z_top)
    section = (np.minimum(sample_image(sd, u0, v0, -1e3), sample_image(sd, u1, v1, -1e3)) + slack_px) * px_to_world
    caps = np.minimum(axis - fit.z_bottom, fit.z_top - axis)
    return np.minimum(section.reshape(len(axis), len(axis), 1), caps[None, None, :]).astype(np.float32)
