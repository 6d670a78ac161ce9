"""Footprint reading of a silhouette: an upright object standing on a ground plane.

A photo taken from above (camera 0, elevation 30°) shows where an object meets the ground:
the lower outline of the silhouette's convex hull is the image of the near side of the
object's *footprint* (its outline on the ground, world Z-up). Back-projected onto the ground
plane ``z = z_ground`` it gives that near side in 3D — real depth that the rotational hull
ignores. The far side is read by one of two rules:

* **point symmetry** (boxes at any yaw, books, shoes, vehicles, furniture, animals): the far
  side is the near side turned by 180° about the midpoint of its two ends (a parallelogram
  from the two visible bottom edges of a turned box — exact for boxes);
* **flat top** (when the near side is straight, e.g. a box seen face-on, where symmetry
  gives no depth or a depth resting on the near side's ends alone, and the flat top is the
  shallower reading): the tops of the outermost vertical slices give the object's height,
  and the far side is where the silhouette's upper outline meets a plane at that height.

Every line through the vertical vanishing point is the image of a vertical plane through
the camera (a *slice*); within a slice the object is the footprint's chord extruded up to a
flat top at the height where the silhouette's upper outline crosses the chord's far end —
exact for prisms, and the view-0 silhouette cone trims the rest.

The ground height is not known from one photo; it is chosen so that the object's bounding
box is centred on the origin along view 0's axis (the convention the processed photo is
made with: object centred, the orbit around its middle).

The processed photo is the original re-centred and re-scaled (85 % fill), which moves its
vertical vanishing point and principal point away from the working camera's. The reading is
therefore made with its own camera (:func:`fit_footprint`): the principal point moved onto
the reading's bounding-box centre, and the perspective set by the vanishing point of the
silhouette's straight sides (:func:`side_vanishing_point`) or, without them, by the 16
views' convention (camera 3 bounding radii away).

Units: scene units, world Z-up; angles in radians inside, pixels with centres at +0.5;
cameras are OpenCV ``w2c`` (see :mod:`glimpse3d.splat.cameras`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy import ndimage

from glimpse3d.pipeline.prism import vertical_vanishing_point, working_mask
from glimpse3d.splat.cameras import Camera

WORK_SIZE = 256  # px, resolution the outlines are read at
GROUND_EXTENT = 1.0  # half-side (scene units) of the ground grid the footprint is drawn on
GROUND_CELLS = 200  # cells per side of that grid
Z_GROUND_RANGE = (-0.62, -0.02)  # ground heights searched (scene units)
Z_GROUND_STEPS = 61
FRAME_ROUNDS = 6  # fits, each in the frame the last one implies (perspective, centre)
MAX_SHIFT = 0.15  # largest principal-point shift, a fraction of the image side
PERSPECTIVE_RATIO = 3.0  # camera distance / bounding radius of the 16 views (1.5 / 0.5)
EDGE_SLICES = 3  # outermost slices averaged for the flat-top height
MAX_NEAR_BOW = 0.01  # a near side this straight (see _bow, in the image) is seen face-on
MIN_SIDE_RUN = 0.3  # straight sides this long (fraction of the height) locate the vanishing point
MIN_SYMMETRIC_DEPTH = 0.35  # point symmetry gives depth/width below this: use the flat top
# the cap's height per slice is the median over this many neighbouring slices (~1 px each at
# WORK_SIZE): a slice whose far end the raster cut short reads too high, in runs of several.
# Measured on the proxy of the 7 benchmark objects read so (sum of IoU): 5 slices 6.447,
# 9 6.475, 11 6.486, 15 6.491, 21 6.468, 31 6.477 (crate face-on 0.940 / 0.958 / 0.969 / 0.969
# / 0.947 / 0.950, shoe 0.844 -> 0.850, book 0.963 -> 0.966, toaster 0.906 throughout)
CAP_MEDIAN_SLICES = 15
END_TRIM = 0.25  # fraction of each straight edge's points dropped at each end for its line
MIN_EDGE_SHARE = 0.1  # an edge with fewer of the side's points keeps its end as read
MAX_END_MOVE = 0.15  # an end moves at most this fraction of the side's chord onto its edge


@dataclass(frozen=True)
class FootprintFit:
    """The footprint reading: ``footprint`` (G,G) bool on the ground grid ``ground_axis``
    (indexing x, y), ``cap`` (G,G) top height per cell (scene units, ``-inf`` outside),
    the ground height ``z_ground``, the rule used (``"symmetric"``, ``"flat-top"`` or
    ``"top"``) and the footprint's ``depth``/``width`` (scene units, along and across
    view 0's horizontal direction)."""

    footprint: np.ndarray
    cap: np.ndarray
    ground_axis: np.ndarray
    z_ground: float
    rule: str
    depth: float
    width: float
    zoom: float = 1.0  # the fit's camera: this much further away, this much longer focal length
    shift: tuple[float, float] = (0.0, 0.0)  # its principal point's offset (px at the input size)


def rays(camera: Camera, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """World directions (N,3) of the rays through pixels (u, v)."""
    rot = camera.w2c[:3, :3]
    cam = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], 1)
    return cam @ rot  # R^T d for each row


def on_plane(camera: Camera, u: np.ndarray, v: np.ndarray, z: float | np.ndarray) -> np.ndarray:
    """Ground-plane points (N,2) where the rays through (u, v) meet the plane(s) at height z."""
    c = camera.center
    d = rays(camera, u, v)
    dz = np.where(np.abs(d[:, 2]) < 1e-9, -1e-9, d[:, 2])
    t = (np.asarray(z, dtype=np.float64) - c[2]) / dz
    t = np.where(t > 0, t, np.nan)  # a ray that never reaches the plane
    return c[None, :2] + t[:, None] * d[:, :2]


def height_to_row(camera: Camera, xy: np.ndarray, v_top: np.ndarray) -> np.ndarray:
    """Height z at which the vertical line above each ground point ``xy`` (N,2) projects to
    image row ``v_top`` (N,) (closed form: v(z) is a ratio of linear functions of z)."""
    p = camera.K @ camera.w2c[:3]  # 3x4
    x0 = xy @ p[:, :2].T + p[:, 3]  # (N,3) homogeneous image point at z = 0
    x1 = p[:, 2]  # its change per unit of z
    den = x1[1] - v_top * x1[2]
    return (v_top * x0[:, 2] - x0[:, 1]) / np.where(np.abs(den) < 1e-12, 1e-12, den)


def _outlines(mask: np.ndarray, camera: Camera, convex: bool = True) -> dict[str, np.ndarray]:
    """Per slice (angle bin around the vertical vanishing point): the image points of the
    convex hull's lower outline (the silhouette's own with ``convex=False``) and of the
    silhouette's upper outline."""
    vpu, vpv = vertical_vanishing_point(camera)
    hull = mask
    if convex:
        pts = cv2.findNonZero(mask.astype(np.uint8))
        filled = np.zeros(mask.shape, np.uint8)
        cv2.fillPoly(filled, [cv2.convexHull(pts)], 1)
        hull = filled.astype(bool) | mask

    def polar(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = np.nonzero(m)
        du, dv = cols + 0.5 - vpu, vpv - rows - 0.5
        return np.arctan2(du, dv), np.hypot(du, dv)

    th_h, r_h = polar(hull)
    th_m, r_m = polar(mask)
    lo, hi = float(th_h.min()), float(th_h.max())
    n_bins = max(8, int((hi - lo) * float(r_h.mean())))  # ~1 px per slice
    edges = np.linspace(lo, hi + 1e-9, n_bins + 1)
    b_h = np.clip(np.searchsorted(edges, th_h, side="right") - 1, 0, n_bins - 1)
    b_m = np.clip(np.searchsorted(edges, th_m, side="right") - 1, 0, n_bins - 1)
    r_low = np.full(n_bins, np.inf)
    np.minimum.at(r_low, b_h, r_h)
    r_top = np.full(n_bins, -np.inf)
    np.maximum.at(r_top, b_m, r_m)
    ok = np.isfinite(r_low) & np.isfinite(r_top)
    theta = 0.5 * (edges[:-1] + edges[1:])[ok]
    r_low, r_top = r_low[ok], r_top[ok]
    s, c = np.sin(theta), np.cos(theta)
    return {"theta": theta, "low_u": vpu + r_low * s, "low_v": vpv - r_low * c,
            "top_u": vpu + r_top * s, "top_v": vpv - r_top * c, "vp": np.array([vpu, vpv]),
            "edges": edges}


def _raster(poly_xy: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Polygon (N,2) in ground coordinates -> (G,G) bool grid (indexing x, y)."""
    g = len(axis)
    cell = float(axis[1] - axis[0])
    ij = (poly_xy - axis[0]) / cell  # fractional cell index along x (i) and y (j)
    pts = np.round(ij[:, ::-1] * 16).astype(np.int32)  # cv2 wants (col=j, row=i), 4 bits of sub-cell
    img = np.zeros((g, g), np.uint8)
    if len(pts) >= 3 and np.isfinite(ij).all():
        cv2.fillPoly(img, [pts.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=4)
    return img.astype(bool)


def _bow(points: np.ndarray) -> float:
    """How far (90th percentile, a fraction of the extent) the middle 80 % of a curve of
    points (N,2) strays from its best straight line (0 = straight)."""
    n = len(points)
    k = n // 10
    mid = points[k:n - k] if n - 2 * k >= 3 else points
    centred = mid - mid.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    along, across = centred @ vt[0], centred @ vt[1]
    return float(np.percentile(np.abs(across), 90) / max(np.ptp(along), 1e-9))


Reading = tuple[np.ndarray, np.ndarray, float, float, float]  # footprint, cap, depth, width, z_ground


def _reading(o: dict[str, np.ndarray], camera: Camera, z_ground: float, axis: np.ndarray,
             grid_xy: np.ndarray, cell_theta: np.ndarray, rule: str) -> Reading | None:
    """Footprint grid, cap grid, depth, width and ground height for one ground height (for
    ``rule="top"``: one top height, ``-z_ground``) and far-side rule. ``grid_xy`` (G,G,2):
    the ground grid's cell centres."""
    if rule == "top":
        return _top_reading(o, camera, -z_ground, axis, grid_xy)
    near = on_plane(camera, o["low_u"], o["low_v"], z_ground)
    if not np.isfinite(near).all():
        return None
    if rule == "symmetric":
        centre = 0.5 * (near[0] + near[-1])
        far = 2 * centre - near  # the near side turned by 180° about its ends' midpoint
    else:
        # the height of each end: the tallest of its outermost slices (the outermost ones
        # can hold only part of a vertical edge)
        k = min(EDGE_SLICES, len(near) // 2)
        sides = [np.arange(k), np.arange(len(near) - k, len(near))]
        h = [np.max(height_to_row(camera, near[i], o["top_v"][i])) for i in sides]
        z_top = max(float(np.mean(h)), z_ground + 1e-3)
        far = on_plane(camera, o["top_u"], o["top_v"], z_top)[::-1]
        if not np.isfinite(far).all():
            return None
    footprint = _raster(np.concatenate([near, far]), axis)
    if footprint.sum() < 4:
        return None
    xy = grid_xy[footprint]
    depth, width = _extents(xy, camera)
    # cap: per slice, the height at which the upper outline crosses the footprint's far end
    # (the lowest of the cone's limits over the slice's cells)
    bins = np.clip(np.searchsorted(o["edges"], cell_theta[footprint], side="right") - 1, 0,
                   len(o["edges"]) - 2)
    slot = np.searchsorted(0.5 * (o["edges"][:-1] + o["edges"][1:]), o["theta"])
    top_of_bin = np.full(len(o["edges"]) - 1, np.nan)
    top_of_bin[slot] = o["top_v"]
    top_of_bin = _fill_nan(top_of_bin)
    v_top = top_of_bin[bins]
    h_cell = height_to_row(camera, xy, v_top)
    cap_bin = np.full(len(top_of_bin), np.inf)
    np.minimum.at(cap_bin, bins, h_cell)
    # a slice whose far end the raster cut short reads too high: median of its neighbours
    have = np.isfinite(cap_bin)
    cap_bin[have] = ndimage.median_filter(cap_bin[have], size=CAP_MEDIAN_SLICES, mode="nearest")
    cap = np.full(footprint.shape, -np.inf)
    cap[footprint] = np.maximum(cap_bin[bins], z_ground + 1e-3)
    return footprint, cap, depth, width, z_ground


def _extents(xy: np.ndarray, camera: Camera) -> tuple[float, float]:
    """Depth and width (scene units) of a footprint's cells ``xy`` (N,2) along and across
    view 0's horizontal direction."""
    fwd = -camera.center[:2] / np.linalg.norm(camera.center[:2])
    side = np.array([-fwd[1], fwd[0]])
    return float(np.ptp(xy @ fwd)), float(np.ptp(xy @ side))


def _top_reading(o: dict[str, np.ndarray], camera: Camera, z_top: float, axis: np.ndarray,
                 grid_xy: np.ndarray) -> Reading | None:
    """The reading from the top down, for objects on legs, feet or wheels (whose lowest
    outline is not the footprint's near side): the upper outline at height ``z_top`` is the
    far side of a flat top, its point reflection the near side; the ground is where the
    lowest outline's rays meet the verticals under that near side; one block from the
    ground to the top, which the view-0 silhouette cone trims (gaps between legs)."""
    far = on_plane(camera, o["top_u"], o["top_v"], z_top)
    if not np.isfinite(far).all():
        return None
    far = straight_ends(far, camera.center[:2])
    near = 0.5 * (far[0] + far[-1]) * 2 - far
    footprint = _raster(np.concatenate([far, near]), axis)
    if footprint.sum() < 4:
        return None
    # each near-side point's slice, and the height the lowest outline reaches under it
    p = np.c_[near, np.full(len(near), z_top)]
    (uv), _ = camera.project(p)
    theta = np.arctan2(uv[:, 0] - o["vp"][0], o["vp"][1] - uv[:, 1])
    low_v = np.interp(theta, o["theta"], o["low_v"])
    z_ground = float(np.percentile(height_to_row(camera, near, low_v), 10))
    if not z_ground < z_top - 1e-3:
        return None
    cap = np.where(footprint, z_top, -np.inf)
    depth, width = _extents(grid_xy[footprint], camera)
    return footprint, cap, depth, width, z_ground


def straight_ends(side: np.ndarray, eye: np.ndarray, trim: float = END_TRIM) -> np.ndarray:
    """A footprint side (N,2) read as two straight edges (a box's far or near side: the
    outline's ends and its point farthest from the chord between them) with each end moved
    along its slice (the line from the camera's ground point ``eye`` (2,) through it) onto its
    edge's line, fitted on the edge's middle (``trim`` of it dropped at each end). Rounded
    corners and edges bend a real object's outline away from its edges towards the ends (a
    bus's roof: its ends read 12 px low at 256 px, 0.04 scene units nearer the camera), and
    the point reflection doubles that into the depth."""
    n = len(side)
    if n < 10:
        return side
    chord = side[-1] - side[0]
    across = np.array([-chord[1], chord[0]]) / max(float(np.linalg.norm(chord)), 1e-9)
    corner = int(np.argmax(np.abs((side - side[0]) @ across)))
    out = side.copy()
    for part, end in ((np.arange(0, corner + 1), 0), (np.arange(corner, n), n - 1)):
        m = len(part)
        keep = part[int(trim * m):m - int(trim * m)]
        if m < MIN_EDGE_SHARE * n or len(keep) < 4:  # too short an edge for a sound line
            return side
        mid = side[keep].mean(axis=0)
        direction = np.linalg.svd(side[keep] - mid, full_matrices=False)[2][0]
        ray = side[end] - eye
        system = np.stack([direction, -ray], axis=1)  # mid + s * direction = eye + t * ray
        if abs(np.linalg.det(system)) < 1e-9:
            return side
        _, t = np.linalg.solve(system, eye - mid)
        out[end] = eye + t * ray
        if t <= 0 or np.linalg.norm(out[end] - side[end]) > MAX_END_MOVE * np.linalg.norm(chord):
            return side  # both ends or neither: one end moved alone shifts the centre
    return out


def _fill_nan(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a)
    if ok.all() or not ok.any():
        return a
    idx = np.arange(len(a))
    return np.interp(idx, idx[ok], a[ok])


def fit_footprint(alpha: np.ndarray, camera: Camera, rule: str = "auto") -> FootprintFit | None:
    """The footprint reading of the silhouette ``alpha`` (S,S) in [0,1] seen by ``camera``
    (camera 0 at size S). ``rule``: ``"symmetric"``, ``"flat-top"`` or ``"auto"`` (see
    :func:`_fit_at`). ``None`` when the silhouette gives no footprint inside the search
    ranges.

    The processed photo is the original re-scaled about the object (85 % fill), which moves
    its perspective and principal point away from the working camera's. The reading is made
    with a camera ``zoom`` times further away and ``zoom`` times longer in focal length (the
    same image of the object at the same size, with the photo's perspective) whose principal
    point is ``shift`` from the image centre, over ``FRAME_ROUNDS`` rounds: the shift moves
    onto the reading's bounding-box centre; the zoom comes from the vanishing point of the
    silhouette's straight sides where it has them, else from the reading's size (an object
    of bounding radius R seen from 3 R, the convention of the 16 views).
    """
    work, mask = working_mask(alpha, camera, WORK_SIZE)
    if mask.sum() < 16:
        return None
    fit, zoom, shift = None, 1.0, np.zeros(2)
    # straight vertical sides give the photo's vertical vanishing point, which fixes the
    # perspective and the horizontal principal point directly; else the 3-radii convention
    vp = side_vanishing_point(mask, work)
    vp_drop = (vertical_vanishing_point(work)[1] - work.cy) / work.fy  # cot(elevation)
    for round_ in range(FRAME_ROUNDS):
        if vp is not None:
            shift[0] = vp[0] - work.cx
            zoom = float(np.clip((vp[1] - work.cy - shift[1]) / (work.fy * vp_drop), 0.7, 2.5))
        cam = _fit_camera(work, zoom, shift)
        got = _fit_at(mask, cam, rule)
        if got is None:
            break
        if _sane(got):  # the result is the last reading inside its search ranges
            fit = replace(got, zoom=zoom, shift=tuple(shift * camera.width / WORK_SIZE))
        # the reading's bounding-box centre should be where the camera looks (the origin):
        # move the principal point onto it; every other round, once the centre has settled,
        # set the perspective from the reading's size (camera 3x its bounding radius away)
        centre, radius = _box(got)
        (uv,), _ = cam.project(centre[None])
        shift = np.clip(shift + uv - [cam.cx, cam.cy], -MAX_SHIFT * WORK_SIZE, MAX_SHIFT * WORK_SIZE)
        if round_ % 2 == 1 and vp is None:
            zoom = float(np.clip(PERSPECTIVE_RATIO * radius / work.distance, 1.0, 2.0))
    return fit


def _sane(fit: FootprintFit) -> bool:
    """A reading inside its search ranges: the ground height not at an end of its range,
    the footprint clear of the ground grid's border."""
    fp = fit.footprint
    z_lo, z_hi = Z_GROUND_RANGE
    step = (z_hi - z_lo) / (Z_GROUND_STEPS - 1)
    border = fp[0].any() or fp[-1].any() or fp[:, 0].any() or fp[:, -1].any()
    return not border and z_lo + step / 2 < fit.z_ground < z_hi - step / 2


def side_vanishing_point(mask: np.ndarray, camera: Camera) -> tuple[float, float] | None:
    """Where the silhouette's straight left and right sides meet (pixels of ``mask``,
    (S,S) bool): the vertical vanishing point of a photo of an object with vertical edges at
    its sides (a box's corners, a cabinet's, a sofa's arms), or ``None`` where a side has no
    straight run towards a common point below the image of at least ``MIN_SIDE_RUN`` of the
    object's height. ``camera`` (camera 0 at size S) sets the search around its own
    vanishing point (a coarse then a fine grid of candidate points)."""
    rows = np.nonzero(mask.any(axis=1))[0]
    if len(rows) < 8:
        return None
    size = mask.shape[1]
    y = rows.astype(np.float64) + 0.5
    sides = [np.argmax(mask[rows], axis=1) + 0.0,
             size - np.argmax(mask[rows, ::-1], axis=1) + 0.0]

    def run(vp_u: np.ndarray, vp_v: np.ndarray) -> np.ndarray:
        """Shorter side's longest run of boundary rows on one line through each candidate
        point: the lines' crossings of the row y = 0, counted in 1 px bins."""
        out = np.full(vp_u.shape, np.inf)
        for x in sides:
            foot = x[None, :] + (vp_u[:, None] - x[None, :]) * (-y[None, :]) / (vp_v[:, None] - y[None, :])
            idx = np.clip(np.floor(foot + size).astype(np.int64), 0, 3 * size - 1)
            counts = np.zeros((len(vp_u), 3 * size), np.int32)
            np.add.at(counts, (np.arange(len(vp_u))[:, None], idx), 1)
            out = np.minimum(out, counts.max(axis=1))
        return out

    vpu, vpv = vertical_vanishing_point(camera)
    su, sv = 0.5 * size, 0.6 * (vpv - camera.cy)
    for _ in range(2):  # coarse grid, then a fine one around its best point
        gu, gv = np.meshgrid(np.linspace(vpu - su, vpu + su, 21), np.linspace(vpv - sv, vpv + sv, 21))
        score = run(gu.ravel(), gv.ravel())
        k = int(np.argmax(score))
        vpu, vpv = float(gu.ravel()[k]), float(gv.ravel()[k])
        su, sv = su / 10.0, sv / 10.0
    if score[k] < MIN_SIDE_RUN * (rows[-1] - rows[0] + 1) or vpv <= mask.shape[0]:
        return None
    return vpu, vpv


def _fit_camera(camera: Camera, zoom: float, shift: np.ndarray) -> Camera:
    """The camera ``zoom`` times further from the origin with a ``zoom`` times longer focal
    length (the same image of things near the origin, weaker perspective), whose principal
    point (the image of the origin) is ``shift`` (px) from the image centre."""
    w2c = camera.w2c.copy()
    w2c[:3, 3] *= zoom
    return replace(camera, w2c=w2c, fx=camera.fx * zoom, fy=camera.fy * zoom,
                   cx=camera.cx + float(shift[0]), cy=camera.cy + float(shift[1]),
                   distance=camera.distance * zoom)


def _box(fit: FootprintFit) -> tuple[np.ndarray, float]:
    """Bounding-box centre (3,) and bounding radius about the origin of a reading."""
    gx, gy = np.meshgrid(fit.ground_axis, fit.ground_axis, indexing="ij")
    xs, ys = gx[fit.footprint], gy[fit.footprint]
    z_top = float(np.percentile(fit.cap[fit.footprint], 90))
    centre = np.array([0.5 * (xs.min() + xs.max()), 0.5 * (ys.min() + ys.max()),
                       0.5 * (fit.z_ground + z_top)])
    z = max(abs(fit.z_ground), abs(z_top))
    return centre, float(np.sqrt((xs**2 + ys**2).max() + z * z))


def _fit_at(mask: np.ndarray, work: Camera, rule: str) -> FootprintFit | None:
    """The reading in one camera frame: for each far-side rule, the ground height whose
    reading is centred on view 0's axis; ``auto`` takes point symmetry unless its footprint
    is shallower than ``MIN_SYMMETRIC_DEPTH`` of its width (a straight near side)."""
    o = _outlines(mask, work)
    if len(o["theta"]) < 4:
        return None
    axis = np.linspace(-GROUND_EXTENT, GROUND_EXTENT, GROUND_CELLS)
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    grid_xy = np.stack([gx, gy], axis=-1)
    view = -work.center / np.linalg.norm(work.center)  # view 0's axis through the origin
    rules = ["symmetric", "flat-top"] if rule == "auto" else [rule]
    best: dict[str, tuple[float, FootprintFit]] = {}
    signed: dict[str, list[tuple[float, float]]] = {r: [] for r in rules}  # (z, offset)

    def read(z_ground: float, r: str) -> None:
        # every vertical line's image passes through the vanishing point: the angle of a
        # ground cell's projection is its slice, at any height
        u, v = _project_ground(work, gx.ravel(), gy.ravel(), z_ground)
        cell_theta = np.arctan2(u - o["vp"][0], o["vp"][1] - v).reshape(gx.shape)
        got = _reading(o, work, float(z_ground), axis, grid_xy, cell_theta, r)
        if got is None:
            return
        footprint, cap, depth, width, z_found = got
        fit = FootprintFit(footprint, cap, axis, float(z_found), r, depth, width)
        off = float(_box(fit)[0] @ view)
        signed[r].append((float(z_ground), off))
        if r not in best or abs(off) < best[r][0]:
            best[r] = (abs(off), fit)

    for z_ground in np.linspace(*Z_GROUND_RANGE, Z_GROUND_STEPS):
        for r in rules:
            read(float(z_ground), r)
    # the grid's step moves a reading by about a tenth of its size along view 0's axis: the
    # offset's zero between the two heights around the best one, by linear interpolation
    for r in rules:
        if len(signed[r]) < 2:
            continue
        zs, offs = np.array(signed[r]).T
        k = int(np.argmin(np.abs(offs)))
        for j in (k - 1, k + 1):
            if 0 <= j < len(zs) and offs[j] * offs[k] < 0:
                read(float(zs[k] - offs[k] * (zs[j] - zs[k]) / (offs[j] - offs[k])), r)
                break
    if rule != "auto":
        return best[rule][1] if rule in best else None
    sym, flat = best.get("symmetric"), best.get("flat-top")
    if (flat is not None and sym is not None
            and _bow(np.stack([o["low_u"], o["low_v"]], 1)) <= MAX_NEAR_BOW
            and flat[1].depth <= sym[1].depth):
        # a straight near side (seen face-on): point symmetry's depth then comes from the
        # near side's ends alone; the flat top's, from the whole upper outline, is the
        # sounder one where it is the shallower (a deeper one means a top that is not flat)
        return flat[1]
    if sym is not None and sym[1].depth >= MIN_SYMMETRIC_DEPTH * sym[1].width:
        return sym[1]
    return None if flat is None else flat[1]


def _project_ground(camera: Camera, x: np.ndarray, y: np.ndarray, z: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    p = np.stack([x, y, np.full_like(x, z)], 1)
    uv, _ = camera.project(p)
    return uv[:, 0], uv[:, 1]


def fit_offset(fit: FootprintFit, camera: Camera) -> np.ndarray:
    """Where the fit's origin is in ``camera``'s world (3,): moved perpendicular to view 0 to
    where ``camera`` (camera 0 at the input size) sees the fit's principal point."""
    rot = camera.w2c[:3, :3]
    return (fit.shift[0] * rot[0] + fit.shift[1] * rot[1]) * camera.distance / camera.fx


def fit_camera(fit: FootprintFit, camera: Camera) -> Camera:
    """The camera the reading was made with, at ``camera``'s (camera 0's) image size."""
    return _fit_camera(camera, fit.zoom, np.asarray(fit.shift, dtype=np.float64))


def footprint_centre(fit: FootprintFit) -> np.ndarray:
    """The footprint's bounding-box centre on the ground (2,), in the fit's frame."""
    return _box(fit)[0][:2]


def footprint_field(fit: FootprintFit, axis: np.ndarray, camera: Camera) -> np.ndarray:
    """Signed field (scene units, positive inside) of the footprint reading on the voxel grid
    ``axis``³ (indexing x, y, z) of ``camera`` (camera 0 at the input size): inside the
    footprint, above the ground, below the cap. The fit's frame is moved so its origin lies
    where ``camera`` sees the fit's principal point (a shift perpendicular to view 0)."""
    offset = fit_offset(fit, camera)
    cell = float(fit.ground_axis[1] - fit.ground_axis[0])
    inside = ndimage.distance_transform_edt(fit.footprint) * cell
    outside = ndimage.distance_transform_edt(~fit.footprint) * cell
    sd2 = (inside - outside).astype(np.float32)
    # the cap near the footprint's edge: that of the nearest cell inside
    _, (ii, jj) = ndimage.distance_transform_edt(~fit.footprint, return_indices=True)
    cap = fit.cap[ii, jj]
    scale = (len(fit.ground_axis) - 1) / (fit.ground_axis[-1] - fit.ground_axis[0])

    def index(values: np.ndarray) -> np.ndarray:
        return np.clip(np.round((values - fit.ground_axis[0]) * scale).astype(np.int64), 0,
                       len(fit.ground_axis) - 1)

    ix, iy = index(axis - offset[0]), index(axis - offset[1])
    sd_xy = sd2[np.ix_(ix, iy)]
    cap_xy = cap[np.ix_(ix, iy)]
    z = (axis - offset[2])[None, None, :]
    return np.minimum(np.minimum(sd_xy[..., None], z - fit.z_ground),
                      cap_xy[..., None] - z).astype(np.float32)


def flat_bottom(alpha: np.ndarray, camera: Camera) -> tuple[float, float]:
    """How the silhouette ``alpha`` (S,S) seen by ``camera`` (camera 0 at size S) meets the
    ground, read per slice (line through the vertical vanishing point, so a box's vertical
    edges are single slices) at ``WORK_SIZE``: ``contact`` in [0,1], the fraction of slices
    whose lowest object pixel lies on the convex hull's lower outline (within 2 px: no gaps
    between legs, no overhang), and ``bend``, how far (95th percentile, a fraction of the
    width) that lower outline strays from the two straight edges through its ends and its
    lowest point (a box's bottom edges: ~0; an ellipse's arc: several per cent)."""
    work, mask = working_mask(alpha, camera, WORK_SIZE)
    if mask.sum() < 16:
        return 0.0, 1.0
    hull = _outlines(mask, work)
    own = _outlines(mask, work, convex=False)
    n = min(len(hull["theta"]), len(own["theta"]))
    if n < 4:
        return 0.0, 1.0
    # the same slices (both start at the hull's first angle; the mask may have empty ones)
    low_hull = np.hypot(hull["low_u"] - hull["vp"][0], hull["low_v"] - hull["vp"][1])
    theta_own = own["theta"]
    low_own = np.interp(hull["theta"], theta_own,
                        np.hypot(own["low_u"] - own["vp"][0], own["low_v"] - own["vp"][1]))
    contact = float(np.mean(low_own - low_hull <= 2.0))
    return contact, _two_edge_bend(hull["low_u"], hull["low_v"], int(np.argmax(hull["low_v"])))


def flat_top(alpha: np.ndarray, camera: Camera) -> float:
    """How far (95th percentile, a fraction of the width) the silhouette's upper outline
    strays from the two straight edges through its ends and its highest point, read per
    slice like :func:`flat_bottom`: a table top's or a bus roof's far edges ~0.02-0.05; a
    chair's back rising above its seat, an animal's back, a box's vertical corners > 0.25."""
    work, mask = working_mask(alpha, camera, WORK_SIZE)
    if mask.sum() < 16:
        return 1.0
    o = _outlines(mask, work)
    u, v = o["top_u"], o["top_v"]
    if len(u) < 4:
        return 1.0
    return _two_edge_bend(u, v, int(np.argmin(v)))


def _two_edge_bend(u: np.ndarray, v: np.ndarray, corner: int) -> float:
    """95th percentile of |v - polyline| / width, the polyline through the outline's ends
    and its point ``corner``."""
    ends = [0, corner, len(u) - 1] if 0 < corner < len(u) - 1 else [0, len(u) - 1]
    width = float(u.max() - u.min()) + 1.0
    return float(np.percentile(np.abs(v - np.interp(u, u[ends], v[ends])), 95)) / width
