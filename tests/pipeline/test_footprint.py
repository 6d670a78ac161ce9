"""The footprint reading of a silhouette (an upright object on its ground footprint): the
ray/plane geometry against the camera's own projection, the fit against boxes of known size,
the flat-bottom measure that decides when ``auto`` uses it, and its signed field."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.pipeline.footprint import (
    fit_footprint,
    flat_bottom,
    flat_top,
    footprint_field,
    height_to_row,
    on_plane,
    side_vanishing_point,
    straight_ends,
)
from glimpse3d.pipeline.prism import vertical_vanishing_point
from glimpse3d.pipeline.proxy import (
    FLAT_MAX_BEND,
    FLAT_MAX_TOP_BEND,
    FLAT_MIN_CONTACT,
    proxy_field,
)
from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.testing import synthetic as S
from tests.utils.synthetic import bus_object, table_object

SIZE = 256
CAM0 = orbit_camera(30.0, 0.0, size=SIZE)


def _alpha(obj: S.SyntheticObject) -> np.ndarray:
    return S.silhouette(obj, CAM0).astype(np.float32)


def _table(yaw: float = 20.0) -> S.SyntheticObject:
    return table_object(yaw)


def test_rays_meet_planes_where_the_camera_projects_from() -> None:
    pts = np.array([[0.1, -0.2, -0.3], [-0.25, 0.3, 0.0], [0.3, 0.05, 0.35]])
    uv, _ = CAM0.project(pts)
    ground = on_plane(CAM0, uv[:, 0], uv[:, 1], pts[:, 2])
    np.testing.assert_allclose(ground, pts[:, :2], atol=1e-9)
    # the height at which the vertical above each point reaches its own image row
    z = height_to_row(CAM0, pts[:, :2], uv[:, 1])
    np.testing.assert_allclose(z, pts[:, 2], atol=1e-9)


@pytest.mark.parametrize("yaw", [0.0, 30.0, 45.0])
def test_fit_recovers_a_box(yaw: float) -> None:
    """A box of bounding radius 0.49 at the origin, seen by camera 0 itself (the convention
    the fit assumes: camera 3 radii away, looking at the box's middle): its ground height,
    top, and footprint extents come back within a few per cent, at any yaw including
    face-on (where point symmetry gives no depth and the flat-top rule is used)."""
    half = np.array([0.3, 0.3, 0.25])
    fit = fit_footprint(_alpha(S.make_box(yaw, tuple(half))), CAM0)
    assert fit is not None
    assert fit.rule == ("flat-top" if yaw == 0.0 else "symmetric")
    assert fit.z_ground == pytest.approx(-half[2], abs=0.03)
    assert float(np.median(fit.cap[fit.footprint])) == pytest.approx(half[2], abs=0.04)
    assert fit.zoom == pytest.approx(1.0, abs=0.1)
    gx, gy = np.meshgrid(fit.ground_axis, fit.ground_axis, indexing="ij")
    c, s = abs(np.cos(np.radians(yaw))), abs(np.sin(np.radians(yaw)))
    extent = 2 * (half[0] * c + half[1] * s)  # square footprint: the same along X and Y
    assert np.ptp(gx[fit.footprint]) == pytest.approx(extent, rel=0.08)
    assert np.ptp(gy[fit.footprint]) == pytest.approx(extent, rel=0.08)
    area = fit.footprint.sum() * (fit.ground_axis[1] - fit.ground_axis[0]) ** 2
    assert area == pytest.approx(4 * half[0] * half[1], rel=0.1)


def test_flat_bottom_tells_boxes_from_round_bottoms() -> None:
    """The measure ``auto`` decides with: boxes stand on straight edges; spheres, cylinders,
    cones, blobs and mugs have curved lower outlines."""
    cat = S.catalogue()
    for name in ("box", "cube"):
        contact, bend = flat_bottom(_alpha(cat[name]), CAM0)
        assert contact >= FLAT_MIN_CONTACT and bend <= FLAT_MAX_BEND / 2, name
    for name in ("sphere", "cylinder", "cone", "blob", "mug"):
        _, bend = flat_bottom(_alpha(cat[name]), CAM0)
        assert bend > FLAT_MAX_BEND * 1.3, name
    # a table on four legs: its lowest pixels are mostly not on the hull (gaps between legs),
    # but its top's far edges are straight; a chair's back rises above its seat
    contact, _ = flat_bottom(_alpha(_table()), CAM0)
    assert contact < FLAT_MIN_CONTACT
    assert flat_top(_alpha(_table()), CAM0) <= FLAT_MAX_TOP_BEND / 2
    chair = S.SyntheticObject(
        "chair", lambda q: np.minimum(_table().sdf(q), S.sdf_box(q - [-0.37, 0, 0.5],
                                                                   np.array([0.03, 0.3, 0.25]))),
        lambda p, n: np.full((len(p), 3), 0.5), radius=0.8)
    assert flat_top(_alpha(chair), CAM0) > FLAT_MAX_TOP_BEND
    # a round pot on a small foot: its top is an arc
    pot = S.SyntheticObject(
        "pot", lambda q: np.minimum(S.sdf_sphere(q - [0, 0, 0.05], 0.4),
                                    S.sdf_cylinder_z(q - [0, 0, -0.37], 0.15, 0.05)),
        lambda p, n: np.full((len(p), 3), 0.5), radius=0.6)
    assert flat_top(_alpha(pot), CAM0) > FLAT_MAX_TOP_BEND
    assert flat_bottom(np.zeros((SIZE, SIZE), np.float32), CAM0) == (0.0, 1.0)


def test_footprint_field_inside_above_and_beside() -> None:
    half = np.array([0.3, 0.3, 0.25])
    fit = fit_footprint(_alpha(S.make_box(30.0, tuple(half))), CAM0)
    axis = np.linspace(-0.6, 0.6, 25)  # 0.05 per voxel; index 12 = 0
    field = footprint_field(fit, axis, CAM0)
    assert field.shape == (25, 25, 25)
    assert field[12, 12, 12] > 0.15  # the centre, 0.25 from the top and the bottom
    assert field[12, 12, 19] < 0  # z = 0.35, above the top
    assert field[12, 12, 5] < 0  # z = -0.35, below the ground
    assert field[12, 23, 12] < 0  # y = 0.55, beside it
    assert field[12, 12, 12] == pytest.approx(0.25, abs=0.05)  # a distance in scene units


@pytest.mark.parametrize("distance", [1.5, 2.2])
def test_the_sides_of_a_box_give_the_vanishing_point(distance: float) -> None:
    """A box photographed from 1.5 and from 2.2 (weaker perspective): its straight sides meet
    at the photo camera's own vertical vanishing point; a sphere has no straight sides."""
    from glimpse3d.splat.cameras import fov_camera

    cam = fov_camera(30.0, 0.0, distance, 49.1 * 1.5 / distance, SIZE)  # about the same size
    mask = S.silhouette(S.make_box(25.0), cam)
    vp = side_vanishing_point(mask, CAM0)
    assert vp is not None
    true_u, true_v = vertical_vanishing_point(cam)
    assert vp[0] == pytest.approx(true_u, abs=4.0)
    assert vp[1] == pytest.approx(true_v, rel=0.03)
    assert side_vanishing_point(S.silhouette(S.catalogue()["sphere"], CAM0), CAM0) is None


def test_a_table_is_read_from_its_top_down() -> None:
    """Legs keep the lowest outline off the footprint's near side; the top's far edges, its
    point reflection and the ground under its near edge give the table's top and height."""
    alpha = _alpha(_table())
    fit = fit_footprint(alpha, CAM0, rule="top")
    assert fit is not None and fit.rule == "top"
    assert float(np.median(fit.cap[fit.footprint])) == pytest.approx(0.315, abs=0.04)
    assert fit.z_ground == pytest.approx(-0.315, abs=0.05)
    area = fit.footprint.sum() * (fit.ground_axis[1] - fit.ground_axis[0]) ** 2
    assert area == pytest.approx(0.8 * 0.6, rel=0.15)
    assert proxy_field(alpha, grid=48)[2] == "footprint"  # auto reads it so


def test_straight_ends_put_rounded_ends_back_on_their_edges() -> None:
    """A far side of two straight edges (a box's roof seen from above) whose last points
    bend towards the camera along their slices, as rounded corners make them: both ends
    return to the corners; a side with an edge too short for a line, or a straight side
    whose ends are already on it, comes back as it was."""
    eye = np.array([1.3, 0.0])
    corners = np.array([[-0.1, -0.46], [-0.35, -0.32], [0.1, 0.46]])  # end, far corner, end
    side = np.concatenate([np.linspace(corners[0], corners[1], 30, endpoint=False),
                           np.linspace(corners[1], corners[2], 90)])
    bent = side.copy()
    for idx in (np.arange(4), np.arange(len(side) - 4, len(side))):
        bent[idx] = eye + (side[idx] - eye) * np.linspace(0.93, 0.99, 4)[:, None][
            ::1 if idx[0] == 0 else -1]
    fixed = straight_ends(bent, eye)
    np.testing.assert_allclose(fixed[[0, -1]], corners[[0, 2]], atol=1e-6)
    np.testing.assert_array_equal(fixed[1:-1], bent[1:-1])
    np.testing.assert_allclose(straight_ends(side, eye), side, atol=1e-9)
    short = np.concatenate([side[27:30], side[30:]])  # a 3-point first edge
    np.testing.assert_array_equal(straight_ends(short, eye), short)


def test_a_bus_with_rounded_edges_is_read_to_its_width() -> None:
    """A rounded bus on wheels at yaw 60, read from the top down: the ends of its roof's
    outline fall away with the rounded corners; read as they are, the footprint came out
    too deep for its length (0.41 instead of 0.32); with the ends on the roof's edges
    and the centring height interpolated, its proportions and height come back."""
    alpha = _alpha(bus_object(60.0))
    fit = fit_footprint(alpha, CAM0, rule="top")
    assert fit is not None
    gx, gy = np.meshgrid(fit.ground_axis, fit.ground_axis, indexing="ij")
    pts = np.stack([gx[fit.footprint], gy[fit.footprint]], 1)
    pts -= pts.mean(axis=0)
    short, long = np.sort(np.ptp(pts @ np.linalg.eigh(np.cov(pts.T))[1], axis=0))
    assert short / long == pytest.approx(0.32, abs=0.06)
    height = float(np.median(fit.cap[fit.footprint])) - fit.z_ground
    assert height / long == pytest.approx(0.42, rel=0.15)
