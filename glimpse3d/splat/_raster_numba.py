"""Compiled CPU tile rasterizer (numba) with an analytic backward, wrapped as autograd Functions.

Same maths as :func:`glimpse3d.splat.rasterizer.project` / ``composite_torch`` (square 3-sigma
boxes, alpha clamped to 0.99 and skipped below 1/255, front-to-back compositing stopped before the
transmittance drops below 1e-4), so both backends give the same images and gradients.

- ``_ProjectGaussians``: EWA projection (means, log-scales, quaternions -> 2D means, conics,
  depths, radii, boxes) forward and analytic backward in numba; SH colours and opacities stay in
  torch autograd.
- ``_RasterizeTiles``: gaussians are binned into 16x16 tiles in depth order (counting sort);
  tiles are rasterized in parallel (``prange``), each gaussian visiting only the pixels of its
  box in the tile where its alpha can reach 1/255 (per-row ellipse spans). The forward keeps the
  final transmittance and the end of the contributing range per pixel (like gsplat); the backward
  walks back to front, recovering the transmittance by division, and writes one gradient row per
  (tile, gaussian) pair, summed per gaussian afterwards (no atomics, deterministic).

Kernels take float32 arrays (float64 models are computed in float32 and the gradients cast back)
and do the per-pixel arithmetic in float64. ``cache=True`` keeps the compiled code in
``__pycache__``: the first run compiles (~8 s of CPU), later processes load it (~0.6 s).
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
import torch
from numba import njit, prange

from glimpse3d.splat._constants import ALPHA_MAX, ALPHA_MIN, TRANSMITTANCE_MIN
from glimpse3d.splat._types import Projected

if "NUMBA_THREADING_LAYER" not in os.environ:
    # The default GNU-OpenMP layer kills a process that forks after a parallel launch (API server
    # -> worker processes); "workqueue" is fork-safe, and launches are serialised below.
    numba.config.THREADING_LAYER = "workqueue"

TILE = 16
_ALPHA_MIN = ALPHA_MIN  # module globals: numba freezes them into the kernels
_ALPHA_MAX = ALPHA_MAX
_T_MIN = TRANSMITTANCE_MIN
_NGRAD = 10  # mx, my, conic a, b, c, r, g, b, opacity, depth
# numba's "workqueue" threading layer is not thread-safe: concurrent parallel launches from several
# Python threads (e.g. API server + in-process worker) abort; serialise them (each uses every core).
_LAUNCH_LOCK = threading.Lock()


@njit(cache=True, fastmath=True)
def _row_span(ca, cb, cc, tau, dy, mx, x0, x1):  # pragma: no cover - jitted
    """Pixel columns of a row (offset ``dy`` from the mean) where alpha can reach 1/255.

    Solves ``ca dx^2 + 2 cb dx dy + cc dy^2 <= tau`` for dx (slightly widened for rounding),
    intersected with ``[x0, x1]``; returns an empty range (x0, x0 - 1) when there is none.
    """
    disc = cb * cb * dy * dy - ca * (cc * dy * dy - tau)
    if disc < 0.0:
        return x0, x0 - 1
    root = np.sqrt(disc)
    lo = min(max((-cb * dy - root) / ca + mx - 0.5 - 1e-3, x0 - 1.0), x1 + 1.0)  # clamp before int()
    hi = min(max((-cb * dy + root) / ca + mx - 0.5 + 1e-3, x0 - 1.0), x1 + 1.0)
    return max(x0, int(np.ceil(lo))), min(x1, int(np.floor(hi)))


@njit(cache=True, inline="always")
def _tile_rect(t, tiles_x, width, height):  # pragma: no cover - jitted
    """Origin ``(ox, oy)`` and size ``(tw, th)`` in pixels of tile ``t`` (row-major)."""
    ox = (t % tiles_x) * TILE
    oy = (t // tiles_x) * TILE
    return ox, oy, min(TILE, width - ox), min(TILE, height - oy)


@njit(cache=True, inline="always")
def _splat_in_tile(g, boxes, means2d, conics, colors, opac, depths, ox, oy, tw, th):  # pragma: no cover
    """Gaussian ``g`` as the raster kernels read it: its box clipped to the tile
    (x0, x1, y0, y1, inclusive), mean (mx, my), conic (ca, cb, cc), opacity, colour, depth."""
    return (max(boxes[g, 0], ox), min(boxes[g, 2], ox + tw - 1),
            max(boxes[g, 1], oy), min(boxes[g, 3], oy + th - 1),
            means2d[g, 0], means2d[g, 1], conics[g, 0], conics[g, 1], conics[g, 2],
            opac[g], colors[g, 0], colors[g, 1], colors[g, 2], depths[g])


@njit(cache=True, fastmath=True, inline="always")
def _alpha_tau(op):  # pragma: no cover - jitted
    """The Mahalanobis bound where ``op * exp(-power/2)`` falls to 1/255 (slightly widened)."""
    return 2.0 * np.log(op / _ALPHA_MIN) * (1.0 + 1e-6) + 1e-6


@njit(cache=True, fastmath=True, inline="always")
def _pixel_row(py, oy, ox, my, mx, ca, cb, cc, tau, x0, x1):  # pragma: no cover - jitted
    """For pixel row ``py`` of a gaussian in a tile: ``dy`` from the mean, the offset that
    turns a column into a tile-local pixel index, and the column span from :func:`_row_span`."""
    dy = py + 0.5 - my
    xa, xb = _row_span(ca, cb, cc, tau, dy, mx, x0, x1)
    return dy, (py - oy) * TILE - ox, xa, xb


@njit(parallel=True, cache=True, fastmath=True)
def _forward_kernel(means2d, conics, colors, opac, depths, boxes, tile_offsets, tile_gids,
                    width, height, tiles_x, out_feat, out_t, out_last):  # pragma: no cover - jitted
    """Gaussian-outer loop per tile: each gaussian only visits its box within the tile."""
    n_tiles = tile_offsets.shape[0] - 1
    for t in prange(n_tiles):
        ox, oy, tw, th = _tile_rect(t, tiles_x, width, height)
        start = tile_offsets[t]
        end = tile_offsets[t + 1]
        trans = np.ones(TILE * TILE)
        acc = np.zeros((TILE * TILE, 4))
        last = np.full(TILE * TILE, start)
        done = np.zeros(TILE * TILE, dtype=np.bool_)
        n_done = 0
        for k in range(start, end):
            if n_done == tw * th:
                break
            x0, x1, y0, y1, mx, my, ca, cb, cc, op, cr, cg, cbl, z = _splat_in_tile(
                tile_gids[k], boxes, means2d, conics, colors, opac, depths, ox, oy, tw, th)
            if op < _ALPHA_MIN:
                continue
            tau = _alpha_tau(op)
            for py in range(y0, y1 + 1):
                dy, row, xa, xb = _pixel_row(py, oy, ox, my, mx, ca, cb, cc, tau, x0, x1)
                for px in range(xa, xb + 1):
                    i = row + px
                    if done[i]:
                        continue
                    dx = px + 0.5 - mx
                    alpha = op * np.exp(-0.5 * (ca * dx * dx + cc * dy * dy) - cb * dx * dy)
                    if alpha > _ALPHA_MAX:
                        alpha = _ALPHA_MAX
                    if alpha < _ALPHA_MIN:
                        continue
                    tr = trans[i]
                    next_t = tr * (1.0 - alpha)
                    if next_t < _T_MIN:
                        done[i] = True
                        n_done += 1
                        continue
                    w = alpha * tr
                    acc[i, 0] += w * cr
                    acc[i, 1] += w * cg
                    acc[i, 2] += w * cbl
                    acc[i, 3] += w * z
                    trans[i] = next_t
                    last[i] = k + 1
        for ly in range(th):
            for lx in range(tw):
                i = ly * TILE + lx
                out_feat[oy + ly, ox + lx, 0] = acc[i, 0]
                out_feat[oy + ly, ox + lx, 1] = acc[i, 1]
                out_feat[oy + ly, ox + lx, 2] = acc[i, 2]
                out_feat[oy + ly, ox + lx, 3] = acc[i, 3]
                out_feat[oy + ly, ox + lx, 4] = 1.0 - trans[i]
                out_t[oy + ly, ox + lx] = trans[i]
                out_last[oy + ly, ox + lx] = last[i]


@njit(parallel=True, cache=True, fastmath=True)
def _backward_kernel(means2d, conics, colors, opac, depths, boxes, tile_offsets, tile_gids,
                     width, height, tiles_x, out_t, out_last, grad_feat, pair_grads):  # pragma: no cover
    """Back to front per tile; one row of ``pair_grads`` per (tile, gaussian) pair."""
    n_tiles = tile_offsets.shape[0] - 1
    for t in prange(n_tiles):
        ox, oy, tw, th = _tile_rect(t, tiles_x, width, height)
        start = tile_offsets[t]
        trans = np.ones(TILE * TILE)
        s_dot = np.zeros(TILE * TILE)  # per pixel: sum over later gaussians j of w_j * (f_j . grad)
        gfeat = np.zeros((TILE * TILE, 5))
        last = np.full(TILE * TILE, start)
        kmax = start
        for ly in range(th):
            for lx in range(tw):
                i = ly * TILE + lx
                trans[i] = out_t[oy + ly, ox + lx]
                last[i] = out_last[oy + ly, ox + lx]
                kmax = max(kmax, last[i])
                for c in range(5):
                    gfeat[i, c] = grad_feat[oy + ly, ox + lx, c]
        for k in range(kmax - 1, start - 1, -1):
            x0, x1, y0, y1, mx, my, ca, cb, cc, op, cr, cg, cbl, z = _splat_in_tile(
                tile_gids[k], boxes, means2d, conics, colors, opac, depths, ox, oy, tw, th)
            g_mx = 0.0
            g_my = 0.0
            g_ca = 0.0
            g_cb = 0.0
            g_cc = 0.0
            g_r = 0.0
            g_g = 0.0
            g_b = 0.0
            g_op = 0.0
            g_z = 0.0
            if op < _ALPHA_MIN:
                continue
            tau = _alpha_tau(op)
            for py in range(y0, y1 + 1):
                dy, row, xa, xb = _pixel_row(py, oy, ox, my, mx, ca, cb, cc, tau, x0, x1)
                for px in range(xa, xb + 1):
                    i = row + px
                    if k >= last[i]:
                        continue
                    dx = px + 0.5 - mx
                    gauss = np.exp(-0.5 * (ca * dx * dx + cc * dy * dy) - cb * dx * dy)
                    raw = op * gauss
                    alpha = min(raw, _ALPHA_MAX)
                    if alpha < _ALPHA_MIN:
                        continue
                    one_m = 1.0 - alpha
                    tr = trans[i] / one_m  # transmittance in front of gaussian k
                    trans[i] = tr
                    w = alpha * tr
                    gr = gfeat[i, 0]
                    gg = gfeat[i, 1]
                    gb = gfeat[i, 2]
                    gz = gfeat[i, 3]
                    f_dot = gr * cr + gg * cg + gb * cbl + gz * z + gfeat[i, 4]
                    g_r += w * gr
                    g_g += w * gg
                    g_b += w * gb
                    g_z += w * gz
                    d_alpha = tr * f_dot - s_dot[i] / one_m
                    s_dot[i] += w * f_dot
                    if raw <= _ALPHA_MAX:
                        g_op += gauss * d_alpha
                        d_power = raw * d_alpha
                        g_mx += d_power * (ca * dx + cb * dy)
                        g_my += d_power * (cb * dx + cc * dy)
                        g_ca += -0.5 * dx * dx * d_power
                        g_cb += -dx * dy * d_power
                        g_cc += -0.5 * dy * dy * d_power
            pair_grads[k, 0] = g_mx
            pair_grads[k, 1] = g_my
            pair_grads[k, 2] = g_ca
            pair_grads[k, 3] = g_cb
            pair_grads[k, 4] = g_cc
            pair_grads[k, 5] = g_r
            pair_grads[k, 6] = g_g
            pair_grads[k, 7] = g_b
            pair_grads[k, 8] = g_op
            pair_grads[k, 9] = g_z


@njit(cache=True)
def _bin_kernel(order, boxes, tiles_x, n_tiles):  # pragma: no cover - jitted
    """Counting sort of (tile, gaussian) pairs; ``order`` lists visible gaussians front to back."""
    offsets = np.zeros(n_tiles + 1, dtype=np.int64)
    for g in order:
        for ty in range(boxes[g, 1] // TILE, boxes[g, 3] // TILE + 1):
            for tx in range(boxes[g, 0] // TILE, boxes[g, 2] // TILE + 1):
                offsets[ty * tiles_x + tx + 1] += 1
    for t in range(n_tiles):
        offsets[t + 1] += offsets[t]
    fill = offsets[:-1].copy()
    gids = np.empty(offsets[n_tiles], dtype=np.int32)
    for g in order:
        for ty in range(boxes[g, 1] // TILE, boxes[g, 3] // TILE + 1):
            for tx in range(boxes[g, 0] // TILE, boxes[g, 2] // TILE + 1):
                t = ty * tiles_x + tx
                gids[fill[t]] = g
                fill[t] += 1
    return offsets, gids


@njit(cache=True)
def _reduce_pairs(pair_grads, tile_gids, n):  # pragma: no cover - jitted
    """Sum the per-pair gradient rows into per-gaussian rows (N, 10)."""
    out = np.zeros((n, _NGRAD))
    for k in range(tile_gids.shape[0]):
        g = tile_gids[k]
        for c in range(_NGRAD):
            out[g, c] += pair_grads[k, c]
    return out


def bin_tiles(
    boxes: np.ndarray, depths: np.ndarray, visible: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-tile gaussian lists sorted front to back.

    Returns ``tile_offsets`` (n_tiles+1,) int64, ``tile_gids`` (n_pairs,) int32 and ``tiles_x``.
    Tile ``t`` (row-major, ``tiles_x`` per row) lists ``tile_gids[tile_offsets[t]:tile_offsets[t+1]]``.
    """
    tiles_x = (width + TILE - 1) // TILE
    tiles_y = (height + TILE - 1) // TILE
    vis = np.flatnonzero(visible)
    order = vis[np.argsort(depths[vis], kind="stable")].astype(np.int64)
    tile_offsets, tile_gids = _bin_kernel(order, boxes, tiles_x, tiles_x * tiles_y)
    return tile_offsets, tile_gids, tiles_x


_NEAR = 0.01
_LOWPASS = 0.3
_EXTENT = 3.0


@njit(cache=True, fastmath=True, inline="always")
def _to_camera(means, i, rot, trans):  # pragma: no cover - jitted
    """Gaussian ``i``'s mean in camera coordinates (``rot``, ``trans``: the w2c rotation and
    translation)."""
    m0, m1, m2 = means[i, 0], means[i, 1], means[i, 2]
    return (rot[0, 0] * m0 + rot[0, 1] * m1 + rot[0, 2] * m2 + trans[0],
            rot[1, 0] * m0 + rot[1, 1] * m1 + rot[1, 2] * m2 + trans[1],
            rot[2, 0] * m0 + rot[2, 1] * m1 + rot[2, 2] * m2 + trans[2])


@njit(cache=True, fastmath=True, inline="always")
def _unit_quat_rotation(quats, i):  # pragma: no cover - jitted
    """Gaussian ``i``'s quaternion (w, x, y, z) normalised, its norm (at least 1e-12) and its
    rotation matrix (3, 3)."""
    qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
    qn = max(np.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
    qw, qx, qy, qz = qw / qn, qx / qn, qy / qn, qz / qn
    r = np.empty((3, 3))
    r[0, 0] = 1 - 2 * (qy * qy + qz * qz)
    r[0, 1] = 2 * (qx * qy - qw * qz)
    r[0, 2] = 2 * (qx * qz + qw * qy)
    r[1, 0] = 2 * (qx * qy + qw * qz)
    r[1, 1] = 1 - 2 * (qx * qx + qz * qz)
    r[1, 2] = 2 * (qy * qz - qw * qx)
    r[2, 0] = 2 * (qx * qz - qw * qy)
    r[2, 1] = 2 * (qy * qz + qw * qx)
    r[2, 2] = 1 - 2 * (qx * qx + qy * qy)
    return qw, qx, qy, qz, qn, r


@njit(cache=True, fastmath=True, inline="always")
def _projection_jacobian(x, y, z, fx, fy, lims):  # pragma: no cover - jitted
    """Normalised image coordinates ``u, v`` of a camera-space point, the same clamped to the
    widened frustum ``lims`` (``uc, vc``), and the non-zero entries ``j00, j02, j11, j12`` of
    the perspective Jacobian at the clamped point."""
    u, v = x / z, y / z
    uc = min(max(u, -lims[1]), lims[0])
    vc = min(max(v, -lims[3]), lims[2])
    return u, v, uc, vc, fx / z, -fx * uc / z, fy / z, -fy * vc / z


@njit(cache=True, fastmath=True)
def _project_fwd_kernel(means, log_scales, quats, rot, trans, intr, lims, width, height,
                        out_m2d, out_conic, out_depth, out_radii, out_boxes, out_visible):  # pragma: no cover
    """EWA projection of every gaussian (same maths as ``rasterizer.project``)."""
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    for i in range(means.shape[0]):
        x, y, z = _to_camera(means, i, rot, trans)
        out_depth[i] = z
        out_visible[i] = False
        out_radii[i] = 0.0
        if not z > _NEAR:
            continue
        qw, qx, qy, qz, _, r = _unit_quat_rotation(quats, i)
        u, v, uc, vc, j00, j02, j11, j12 = _projection_jacobian(x, y, z, fx, fy, lims)
        va0 = 0.0
        va1 = 0.0
        va2 = 0.0
        vb0 = 0.0
        vb1 = 0.0
        vb2 = 0.0
        for k in range(3):
            t0k = j00 * rot[0, k] + j02 * rot[2, k]
            t1k = j11 * rot[1, k] + j12 * rot[2, k]
            va0 += t0k * r[k, 0]
            va1 += t0k * r[k, 1]
            va2 += t0k * r[k, 2]
            vb0 += t1k * r[k, 0]
            vb1 += t1k * r[k, 1]
            vb2 += t1k * r[k, 2]
        s0, s1, s2 = np.exp(log_scales[i, 0]), np.exp(log_scales[i, 1]), np.exp(log_scales[i, 2])
        va0, va1, va2, vb0, vb1, vb2 = va0 * s0, va1 * s1, va2 * s2, vb0 * s0, vb1 * s1, vb2 * s2
        a = va0 * va0 + va1 * va1 + va2 * va2 + _LOWPASS
        b = va0 * vb0 + va1 * vb1 + va2 * vb2
        c = vb0 * vb0 + vb1 * vb1 + vb2 * vb2 + _LOWPASS
        det = a * c - b * b
        if not det > 0:
            continue
        out_conic[i, 0] = c / det
        out_conic[i, 1] = -b / det
        out_conic[i, 2] = a / det
        mu = fx * u + cx
        mv = fy * v + cy
        out_m2d[i, 0] = mu
        out_m2d[i, 1] = mv
        mid = 0.5 * (a + c)
        rad = _EXTENT * np.sqrt(mid + np.sqrt(max(0.1, mid * mid - det)))
        x0 = max(np.ceil(mu - rad - 0.5), 0.0)
        x1 = min(np.floor(mu + rad - 0.5), width - 1.0)
        y0 = max(np.ceil(mv - rad - 0.5), 0.0)
        y1 = min(np.floor(mv + rad - 0.5), height - 1.0)
        if x0 <= x1 and y0 <= y1 and np.isfinite(rad):
            out_visible[i] = True
            out_radii[i] = rad
            out_boxes[i, 0] = int(x0)
            out_boxes[i, 1] = int(y0)
            out_boxes[i, 2] = int(x1)
            out_boxes[i, 3] = int(y1)


@njit(cache=True, fastmath=True)
def _project_bwd_kernel(means, log_scales, quats, rot, trans, intr, lims, visible,
                        g_m2d, g_conic, g_depth, out_gmeans, out_gscales, out_gquats):  # pragma: no cover
    """Analytic backward of ``_project_fwd_kernel`` (zero for gaussians that are not visible)."""
    fx, fy = intr[0], intr[1]
    for i in range(means.shape[0]):
        if not visible[i]:
            continue
        x, y, z = _to_camera(means, i, rot, trans)
        qw, qx, qy, qz, qn, r = _unit_quat_rotation(quats, i)
        s = np.empty(3)
        for j in range(3):
            s[j] = np.exp(log_scales[i, j])
        u, v, uc, vc, j00, j02, j11, j12 = _projection_jacobian(x, y, z, fx, fy, lims)
        tm = np.empty((2, 3))  # J W
        for k in range(3):
            tm[0, k] = j00 * rot[0, k] + j02 * rot[2, k]
            tm[1, k] = j11 * rot[1, k] + j12 * rot[2, k]
        mm = np.empty((3, 3))  # R S
        for k in range(3):
            for j in range(3):
                mm[k, j] = r[k, j] * s[j]
        vv = np.zeros((2, 3))
        for rr in range(2):
            for j in range(3):
                for k in range(3):
                    vv[rr, j] += tm[rr, k] * mm[k, j]
        a = vv[0, 0] ** 2 + vv[0, 1] ** 2 + vv[0, 2] ** 2 + _LOWPASS
        b = vv[0, 0] * vv[1, 0] + vv[0, 1] * vv[1, 1] + vv[0, 2] * vv[1, 2]
        c = vv[1, 0] ** 2 + vv[1, 1] ** 2 + vv[1, 2] ** 2 + _LOWPASS
        det = a * c - b * b
        d2 = det * det
        gA, gB, gC = g_conic[i, 0], g_conic[i, 1], g_conic[i, 2]
        # conic (A, B, C) = (c, -b, a) / det
        ga = gA * (-c * c / d2) + gB * (b * c / d2) + gC * (1.0 / det - a * c / d2)
        gb = gA * (2 * b * c / d2) + gB * (-1.0 / det - 2 * b * b / d2) + gC * (2 * a * b / d2)
        gc = gA * (1.0 / det - a * c / d2) + gB * (a * b / d2) + gC * (-a * a / d2)
        gv = np.empty((2, 3))
        for j in range(3):
            gv[0, j] = 2 * ga * vv[0, j] + gb * vv[1, j]
            gv[1, j] = 2 * gc * vv[1, j] + gb * vv[0, j]
        gt = np.zeros((2, 3))
        gmm = np.zeros((3, 3))
        for rr in range(2):
            for k in range(3):
                for j in range(3):
                    gt[rr, k] += gv[rr, j] * mm[k, j]
                    gmm[k, j] += tm[rr, k] * gv[rr, j]
        gr = np.empty((3, 3))
        for j in range(3):
            gs = 0.0
            for k in range(3):
                gr[k, j] = gmm[k, j] * s[j]
                gs += gmm[k, j] * r[k, j]
            out_gscales[i, j] = gs * s[j]
        dw = 2 * (-qz * gr[0, 1] + qy * gr[0, 2] + qz * gr[1, 0] - qx * gr[1, 2] - qy * gr[2, 0] + qx * gr[2, 1])
        dx = 2 * (qy * gr[0, 1] + qz * gr[0, 2] + qy * gr[1, 0] - 2 * qx * gr[1, 1] - qw * gr[1, 2]
                  + qz * gr[2, 0] + qw * gr[2, 1] - 2 * qx * gr[2, 2])
        dy = 2 * (-2 * qy * gr[0, 0] + qx * gr[0, 1] + qw * gr[0, 2] + qx * gr[1, 0] + qz * gr[1, 2]
                  - qw * gr[2, 0] + qz * gr[2, 1] - 2 * qy * gr[2, 2])
        dz = 2 * (-2 * qz * gr[0, 0] - qw * gr[0, 1] + qx * gr[0, 2] + qw * gr[1, 0] - 2 * qz * gr[1, 1]
                  + qy * gr[1, 2] + qx * gr[2, 0] + qy * gr[2, 1])
        dot = qw * dw + qx * dx + qy * dy + qz * dz
        out_gquats[i, 0] = (dw - qw * dot) / qn
        out_gquats[i, 1] = (dx - qx * dot) / qn
        out_gquats[i, 2] = (dy - qy * dot) / qn
        out_gquats[i, 3] = (dz - qz * dot) / qn
        # T = J W -> J
        gj00 = gt[0, 0] * rot[0, 0] + gt[0, 1] * rot[0, 1] + gt[0, 2] * rot[0, 2]
        gj02 = gt[0, 0] * rot[2, 0] + gt[0, 1] * rot[2, 1] + gt[0, 2] * rot[2, 2]
        gj11 = gt[1, 0] * rot[1, 0] + gt[1, 1] * rot[1, 1] + gt[1, 2] * rot[1, 2]
        gj12 = gt[1, 0] * rot[2, 0] + gt[1, 1] * rot[2, 1] + gt[1, 2] * rot[2, 2]
        gz = g_depth[i] + (-gj00 * fx + gj02 * fx * uc - gj11 * fy + gj12 * fy * vc) / (z * z)
        gu = g_m2d[i, 0] * fx
        gvv = g_m2d[i, 1] * fy
        if -lims[1] <= u <= lims[0]:
            gu += -gj02 * fx / z
        if -lims[3] <= v <= lims[2]:
            gvv += -gj12 * fy / z
        gx = gu / z
        gy = gvv / z
        gz += -(gu * x + gvv * y) / (z * z)
        for j in range(3):
            out_gmeans[i, j] = rot[0, j] * gx + rot[1, j] * gy + rot[2, j] * gz


def _camera_arrays(camera, width: int, height: int):  # noqa: ANN001, ANN202
    fx, fy, cx, cy = float(camera.fx), float(camera.fy), float(camera.cx), float(camera.cy)
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lims = np.array([(width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x,
                     (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y])
    w2c = np.asarray(camera.w2c, dtype=np.float64)
    return (np.ascontiguousarray(w2c[:3, :3]), np.ascontiguousarray(w2c[:3, 3]),
            np.array([fx, fy, cx, cy]), lims)


class _ProjectGaussians(torch.autograd.Function):
    """(means, log_scales, quats) -> means2d, conics, depths (+ non-differentiable radii, boxes, visible)."""

    @staticmethod
    def forward(ctx, means, log_scales, quats, cam_arrays, width, height):  # noqa: ANN001
        arrays = tuple(_np32(t) for t in (means, log_scales, quats))
        n = arrays[0].shape[0]
        m2d = np.zeros((n, 2), dtype=np.float32)
        conic = np.zeros((n, 3), dtype=np.float32)
        depth = np.zeros(n, dtype=np.float32)
        radii = np.zeros(n, dtype=np.float32)
        boxes = np.zeros((n, 4), dtype=np.int32)
        boxes[:, 2:] = -1
        visible = np.zeros(n, dtype=np.bool_)
        _project_fwd_kernel(*arrays, *cam_arrays, width, height, m2d, conic, depth, radii, boxes, visible)
        ctx.saved = (arrays, cam_arrays, visible)
        dev, dt = means.device, means.dtype
        outs = [torch.from_numpy(a).to(device=dev, dtype=dt) for a in (m2d, conic, depth, radii)]
        outs += [torch.from_numpy(boxes).to(dev), torch.from_numpy(visible).to(dev)]
        ctx.mark_non_differentiable(*outs[3:])
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_m2d, g_conic, g_depth, *_unused):  # noqa: ANN001
        arrays, cam_arrays, visible = ctx.saved
        n = arrays[0].shape[0]
        gm, gs, gq = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 4))
        _project_bwd_kernel(*arrays, *cam_arrays, visible, _np32(g_m2d), _np32(g_conic), _np32(g_depth), gm, gs, gq)
        dev, dt = g_m2d.device, g_m2d.dtype
        return (*(torch.from_numpy(a).to(device=dev, dtype=dt) for a in (gm, gs, gq)), None, None, None)


def project_fast(model, camera, degree: int):  # noqa: ANN001, ANN201
    """Numba version of :func:`glimpse3d.splat.rasterizer.project` (colours and opacities in torch)."""
    from glimpse3d.splat.sh import sh_to_rgb

    width, height = int(camera.width), int(camera.height)
    cam_arrays = _camera_arrays(camera, width, height)
    m2d, conics, depths, radii, boxes, visible = _ProjectGaussians.apply(
        model.means, model.log_scales, model.quats, cam_arrays, width, height
    )
    center = torch.as_tensor(camera.center, dtype=model.means.dtype, device=model.means.device)
    return Projected(
        means2d=m2d, conics=conics, depths=depths,
        colors=sh_to_rgb(degree, model.sh, model.means, center),
        opacities=torch.sigmoid(model.opacity_logits),
        radii=radii, visible=visible, boxes=boxes,
    )


def _np32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(device="cpu", dtype=torch.float32).numpy())


class _RasterizeTiles(torch.autograd.Function):
    """(means2d, conics, colors, opacities, depths) -> per-pixel (r, g, b, sum w z, alpha)."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, boxes, tile_offsets, tile_gids, tiles_x, width, height):  # noqa: ANN001
        arrays = tuple(_np32(t) for t in (means2d, conics, colors, opacities, depths))
        feat = np.zeros((height, width, 5), dtype=np.float32)
        final_t = np.ones((height, width), dtype=np.float32)
        last = np.zeros((height, width), dtype=np.int64)
        with _LAUNCH_LOCK:
            _forward_kernel(*arrays, boxes, tile_offsets, tile_gids, width, height, tiles_x, feat, final_t, last)
        ctx.raster = (arrays, boxes, tile_offsets, tile_gids, tiles_x, width, height, final_t, last)
        ctx.n = means2d.shape[0]
        ctx.dtypes = [t.dtype for t in (means2d, conics, colors, opacities, depths)]
        return torch.from_numpy(feat).to(device=means2d.device, dtype=means2d.dtype)

    @staticmethod
    def backward(ctx, grad_feat):  # noqa: ANN001
        arrays, boxes, tile_offsets, tile_gids, tiles_x, width, height, final_t, last = ctx.raster
        pair_grads = np.zeros((tile_gids.shape[0], _NGRAD), dtype=np.float64)
        with _LAUNCH_LOCK:
            _backward_kernel(*arrays, boxes, tile_offsets, tile_gids, width, height, tiles_x, final_t, last,
                             _np32(grad_feat), pair_grads)
        grads = torch.from_numpy(_reduce_pairs(pair_grads, tile_gids, ctx.n))
        dev = grad_feat.device
        gm, gc, gcol, go, gz = grads[:, 0:2], grads[:, 2:5], grads[:, 5:8], grads[:, 8], grads[:, 9]
        outs = [g.to(device=dev, dtype=dt) for g, dt in zip((gm, gc, gcol, go, gz), ctx.dtypes, strict=True)]
        return (*outs, None, None, None, None, None, None)


def _alpha_boxes(proj) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """3-sigma boxes shrunk to the bounding box of the ellipse where alpha can reach 1/255.

    Pixels outside it are skipped by both backends anyway (alpha < 1/255), so the result is
    unchanged; it only saves tile pairs and pixel visits. Returns int32 boxes and the visible mask.
    """
    boxes = proj.boxes.detach().cpu().numpy().astype(np.int32)
    visible = proj.visible.detach().cpu().numpy().copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        con = proj.conics.detach().cpu().numpy().astype(np.float64)
        m2d = proj.means2d.detach().cpu().numpy().astype(np.float64)
        op = proj.opacities.detach().cpu().numpy().astype(np.float64)
        tau = 2.0 * np.log(op / _ALPHA_MIN) * (1.0 + 1e-6) + 1e-6
        det = con[:, 0] * con[:, 2] - con[:, 1] ** 2
        ex = np.sqrt(tau * con[:, 2] / det) + 1e-3  # ellipse half-extent in x: sqrt(tau * cov_xx)
        ey = np.sqrt(tau * con[:, 0] / det) + 1e-3
        ok = visible & (op >= _ALPHA_MIN) & (det > 0) & np.isfinite(ex) & np.isfinite(ey)
        ex, ey = np.where(ok, ex, 0.0), np.where(ok, ey, 0.0)
        boxes[:, 0] = np.maximum(boxes[:, 0], np.ceil(m2d[:, 0] - ex - 0.5).clip(-1, 1 << 30))
        boxes[:, 1] = np.maximum(boxes[:, 1], np.ceil(m2d[:, 1] - ey - 0.5).clip(-1, 1 << 30))
        boxes[:, 2] = np.minimum(boxes[:, 2], np.floor(m2d[:, 0] + ex - 0.5).clip(-1, 1 << 30))
        boxes[:, 3] = np.minimum(boxes[:, 3], np.floor(m2d[:, 1] + ey - 0.5).clip(-1, 1 << 30))
    visible &= ok & (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])
    return np.ascontiguousarray(boxes), visible


def composite_fast(proj, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Numba compositing of a :class:`~glimpse3d.splat.rasterizer.Projected`.

    Returns premultiplied rgb (H,W,3), alpha (H,W) and sum(w z) (H,W), like ``composite_torch``.
    """
    boxes, visible = _alpha_boxes(proj)
    depths = proj.depths.detach().cpu().numpy()
    tile_offsets, tile_gids, tiles_x = bin_tiles(boxes, depths, visible, width, height)
    feat = _RasterizeTiles.apply(
        proj.means2d, proj.conics, proj.colors, proj.opacities, proj.depths,
        boxes, tile_offsets, tile_gids, tiles_x, width, height,
    )
    return feat[..., :3], feat[..., 4], feat[..., 3]
