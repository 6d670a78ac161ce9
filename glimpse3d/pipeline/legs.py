"""Legs: thin parts of the silhouette that stand on the ground, read as vertical columns.

Units and conventions: pixels of the view-0 image (pixel centres at +0.5), world Z-up,
scene units, cameras as in :mod:`glimpse3d.splat.cameras` (``w2c`` world-to-camera).

A leg (of a table, a chair, an animal) is a thin, upright part of the silhouette whose
lower end is free (background below it). Along view 0's rays any reading can only guess
how deep such a part is, and the readings that extrude along the rays turn a leg into a
wall. But a leg stands on the ground: its foot's pixel, back-projected onto the ground
plane, is where the leg is in 3D. Each leg becomes a vertical column there, as thick as
the leg is wide in the photo; the view-0 silhouette cone trims it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from glimpse3d.pipeline.footprint import height_to_row, on_plane, rays
from glimpse3d.splat.cameras import Camera

LEG_WIDTH = 0.1  # parts narrower than this fraction of the silhouette's larger side are thin
LEG_MIN_ASPECT = 2.0  # a leg is at least this many times taller than wide
LEG_MIN_LENGTH = 0.08  # and at least this fraction of the silhouette's height long
LEG_MAX_LEAN = 0.35  # px across per px down along its length (about 19° from upright)
LEG_GROUND_BAND = 0.3  # its foot within this fraction of the height of the lowest pixel
# a body read without a footprint (inflated) stands over its legs: it is kept inside the
# vertical prism over the feet's convex hull grown by this fraction of the hull's larger
# side (a table top's overhang is ~7 %). Measured on the benchmark's chair (proxy IoU / PSNR):
# 0.537 / 13.14 without, 0.564 / 13.64 at 0.05, 0.559 / 13.51 at 0.1, 0.542 / 13.21 at 0.2
LEG_BODY_MARGIN = 0.1


@dataclass(frozen=True)
class Leg:
    """A leg found in the silhouette: its foot (u, v) in pixels (the bottom edge's middle)
    and its half-width ``radius_px`` (pixels); the k-th leg is label k + 1 in
    :func:`find_legs`' label image."""

    foot_u: float
    foot_v: float
    radius_px: float
    top_v: float  # the row where it meets the rest of the silhouette (px)


def find_legs(mask: np.ndarray) -> tuple[np.ndarray, list[Leg]]:
    """Legs of a boolean silhouette (H,W): a label image (0 = not a leg) and the legs.

    Thin parts are what an opening with a disc of ``LEG_WIDTH`` of the silhouette's larger
    side removes; a leg is such a part that is upright (``LEG_MIN_ASPECT``,
    ``LEG_MAX_LEAN``), long (``LEG_MIN_LENGTH``), under the rest of the silhouette (some of it
    above the part's top row), free at its lowest row (no silhouette right below it) and
    standing near the bottom (``LEG_GROUND_BAND``); and there are at least two of them.
    """
    ys, xs = np.nonzero(mask)
    labels = np.zeros(mask.shape, np.int32)
    if len(ys) == 0:
        return labels, []
    height = ys.max() - ys.min() + 1
    side = max(height, xs.max() - xs.min() + 1)
    radius = max(1, int(round(LEG_WIDTH * side / 2)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    body = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disc).astype(bool)
    thin = mask & ~ndimage.binary_dilation(body, iterations=1)
    thin = ndimage.binary_opening(thin, iterations=1)  # specks along the body's outline
    parts, _ = ndimage.label(thin)
    legs: list[Leg] = []
    edt = ndimage.distance_transform_edt(mask)
    for label, sl in enumerate(ndimage.find_objects(parts), start=1):
        if sl is None:
            continue
        part = parts[sl] == label
        h = part.shape[0]
        rows = np.nonzero(part.any(axis=1))[0]
        bottom = rows.max()
        cols = np.nonzero(part[bottom])[0]
        v_bottom = sl[0].start + bottom
        u_cols = sl[1].start + cols
        below_free = v_bottom + 1 >= mask.shape[0] or not mask[v_bottom + 1, u_cols].any()
        counts = part.sum(axis=1)[rows]  # the part's width per row
        width = float(np.median(counts))
        top = sl[0].start + rows.min()
        hangs = body[:top, sl[1]][:, part[rows.min()]].any()  # under a body, as legs are
        grounded = v_bottom >= ys.max() - LEG_GROUND_BAND * height
        centres = (part[rows] * np.arange(part.shape[1])).sum(axis=1) / counts  # per row
        lean = abs(np.polyfit(rows.astype(np.float64), centres, 1)[0]) if len(rows) > 1 else 0.0
        if not (below_free and hangs and grounded) or lean > LEG_MAX_LEAN \
                or h < LEG_MIN_ASPECT * width or h < LEG_MIN_LENGTH * height:
            continue
        labels[sl][part] = len(legs) + 1
        radius_px = float(np.median(edt[sl][part & (edt[sl] >= np.percentile(edt[sl][part], 75))]))
        legs.append(Leg(float(u_cols.mean() + 0.5), float(v_bottom + 1.0), radius_px, float(top)))
    if len(legs) < 2:  # one thin part at the bottom (a stem, a strap, a handle) is no stand
        return np.zeros(mask.shape, np.int32), []
    return labels, legs


def ground_points(camera: Camera, legs: list[Leg], z_ground: float) -> np.ndarray:
    """Ground positions (N,2) of the legs' feet on the plane at height ``z_ground``."""
    if not legs:
        return np.zeros((0, 2))
    u = np.array([leg.foot_u for leg in legs])
    v = np.array([leg.foot_v for leg in legs])
    return on_plane(camera, u, v, z_ground)


def centred_ground(camera: Camera, legs: list[Leg]) -> float:
    """The ground height (scene units) at which the feet's mean lies on the vertical plane
    through the origin across view 0 (the depth the photo's centre is read at)."""
    rot = camera.w2c[:3, :3]
    forward = rot[2].copy()
    forward[2] = 0.0
    forward /= np.linalg.norm(forward)
    c = camera.center
    u = np.array([leg.foot_u for leg in legs])
    v = np.array([leg.foot_v for leg in legs])
    d = rays(camera, u, v)
    slope = np.mean((d @ forward) / d[:, 2])
    return float(c[2] - (c @ forward) / slope)


@dataclass(frozen=True)
class Stand:
    """Legs placed in 3D: feet (L,2) on the ground at ``z_ground``, column radii (L,) and the
    height ``z_under`` (all scene units) below which only the legs stand."""

    feet: np.ndarray
    radius: np.ndarray
    z_ground: float
    z_under: float


def place_legs(legs: list[Leg], camera: Camera, z_ground: float,
               centre: np.ndarray | None = None) -> Stand:
    """The legs' feet on the ground plane at ``z_ground`` seen by ``camera``; each column as
    thick as its leg is wide; the body ends at the median height of the legs' tops. With a
    ``centre`` (2,) on the ground, hidden legs are added by point symmetry about it (a
    table's or a chair's legs at the corners of a rectangle): each leg's mirror image that
    does not stand on a leg already seen."""
    feet = ground_points(camera, legs, z_ground)
    feet3 = np.concatenate([feet, np.full((len(feet), 1), z_ground)], axis=1)
    depth = feet3 @ camera.w2c[2, :3] + camera.w2c[2, 3]
    radius = np.array([leg.radius_px for leg in legs]) * depth / camera.fx
    # the lowest pixel is the front of the leg's round foot: its axis is a radius further
    away = feet - camera.center[None, :2]
    feet = feet + radius[:, None] * away / np.linalg.norm(away, axis=1, keepdims=True)
    tops = np.array([leg.top_v for leg in legs])
    z_under = float(np.median(height_to_row(camera, feet, tops)))
    if centre is not None:
        mirrored = 2 * np.asarray(centre)[None] - feet
        gap = np.linalg.norm(mirrored[:, None] - feet[None], axis=2) - 2 * radius[None]
        new = (gap > 0).all(axis=1)
        feet = np.concatenate([feet, mirrored[new]])
        radius = np.concatenate([radius, radius[new]])
    return Stand(feet, radius, float(z_ground), z_under)


def under_field(stand: Stand, pts: np.ndarray) -> np.ndarray:
    """Signed field (N,) (scene units, positive inside) at points ``pts`` (N,3) of what stands
    below the body: the union of the legs' vertical columns above the ground; ``+inf`` above
    ``stand.z_under`` (no constraint there)."""
    out = np.full(len(pts), np.inf, np.float32)
    below = np.nonzero(pts[:, 2] < stand.z_under)[0]
    dist = np.linalg.norm(pts[below, None, :2] - stand.feet[None], axis=2)  # (M, L)
    columns = (stand.radius[None] - dist).max(axis=1)
    out[below] = np.minimum(columns, pts[below, 2] - stand.z_ground)
    return out


def column_tops(stand: Stand, occupied: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Where each leg's column meets the body above it (L,) (scene units): the lowest
    occupied voxel above ``stand.z_under`` within the column (``occupied`` (G,G,G) bool on
    the grid ``axis``³, indexing x, y, z), one voxel into it; ``z_under`` where no body is
    above the leg. A reading that puts the body's underside above the legs' tops (an
    inflated chair's seat is read around the photo's centre depth) would leave the legs
    floating, and the mesh keeps only its largest piece."""
    voxel = float(axis[1] - axis[0])
    above = axis > stand.z_under
    tops = np.full(len(stand.feet), stand.z_under)
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    for k, ((fx, fy), r) in enumerate(zip(stand.feet, stand.radius, strict=True)):
        inside = np.hypot(gx - fx, gy - fy) <= max(r, voxel)
        levels = np.nonzero(occupied[inside][:, above].any(axis=0))[0]
        if len(levels):
            tops[k] = axis[above][levels[0]] + voxel
    return tops


def column_field(stand: Stand, pts: np.ndarray, tops: np.ndarray) -> np.ndarray:
    """Signed field (N,) (scene units, positive inside) of the legs' columns between
    ``stand.z_under`` and each leg's top ``tops`` (L,); ``-inf`` elsewhere."""
    out = np.full(len(pts), -np.inf, np.float32)
    band = np.nonzero((pts[:, 2] >= stand.z_under) & (pts[:, 2] < tops.max()))[0]
    if len(band) == 0:
        return out
    dist = np.linalg.norm(pts[band, None, :2] - stand.feet[None], axis=2)  # (M, L)
    col = np.where(pts[band, 2:3] < tops[None], stand.radius[None] - dist, -np.inf)
    out[band] = col.max(axis=1)
    return out


def over_feet(stand: Stand, pts: np.ndarray, margin: float = LEG_BODY_MARGIN) -> np.ndarray:
    """Signed field (N,) (scene units, positive inside) at points ``pts`` (N,2 or more: only
    x, y are read) of the vertical prism over the feet's convex hull grown by ``margin`` of
    its larger side; ``+inf`` everywhere where the feet span no area (fewer than three, or in
    a line). The prism does not change with height: give each column of a grid once."""
    free = np.full(len(pts), np.inf, np.float32)
    if len(stand.feet) < 3:
        return free
    hull = cv2.convexHull(stand.feet.astype(np.float32).reshape(-1, 1, 2)).reshape(-1, 2)
    if len(hull) < 3 or cv2.contourArea(hull) < 1e-4:
        return free
    a, b = hull.astype(np.float64), np.roll(hull, -1, axis=0).astype(np.float64)
    edge = b - a
    inward = np.stack([-edge[:, 1], edge[:, 0]], 1) / np.linalg.norm(edge, axis=1, keepdims=True)
    if ((hull.mean(axis=0) - a) * inward).sum(axis=1).mean() < 0:  # cv2's orientation
        inward = -inward
    q = pts[:, None, :2] - a[None]  # (N, E, 2)
    plane = (q * inward[None]).sum(axis=2)  # signed distances to the edges' lines
    t = np.clip((q * edge[None]).sum(axis=2) / (edge * edge).sum(axis=1)[None], 0.0, 1.0)
    outside = np.linalg.norm(q - t[..., None] * edge[None], axis=2).min(axis=1)
    inside = plane.min(axis=1)
    signed = np.where(inside >= 0, inside, -outside)
    return (signed + margin * float(np.ptp(hull, axis=0).max())).astype(np.float32)
