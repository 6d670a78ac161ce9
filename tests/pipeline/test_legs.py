"""Legs: thin upright parts found in the silhouette, placed on the ground as columns."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.pipeline.legs import (
    Leg,
    Stand,
    column_field,
    column_tops,
    find_legs,
    over_feet,
    place_legs,
    under_field,
)
from glimpse3d.pipeline.proxy import proxy_field
from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.testing import synthetic as S
from tests.utils.synthetic import table_leg_positions, table_object

SIZE = 256
CAM0 = orbit_camera(30.0, 0.0, size=SIZE)
TABLE_GROUND = -0.315


def _mask(obj: S.SyntheticObject) -> np.ndarray:
    return S.silhouette(obj, CAM0)


def test_a_tables_legs_stand_where_they_are() -> None:
    """The feet of the legs seen, back-projected onto the true ground, land on true legs
    (within their 0.03 radius); their columns are about as thick; the body ends near the
    underside of the top (z = 0.255)."""
    _, legs = find_legs(_mask(table_object()))
    assert len(legs) >= 2
    stand = place_legs(legs, CAM0, TABLE_GROUND)
    truth = table_leg_positions()
    gaps = np.linalg.norm(stand.feet[:, None] - truth[None], axis=2).min(axis=1)
    assert gaps.max() < 0.02, gaps  # measured 0.011
    np.testing.assert_allclose(stand.radius, 0.03, atol=0.012)
    assert stand.z_under == pytest.approx(0.255, abs=0.06)


def test_hidden_legs_by_point_symmetry() -> None:
    """Mirrored about the top's centre, the legs seen give the hidden ones: all four stand."""
    _, legs = find_legs(_mask(table_object()))
    stand = place_legs(legs, CAM0, TABLE_GROUND, centre=np.zeros(2))
    truth = table_leg_positions()
    assert len(stand.feet) == 4
    gaps = np.linalg.norm(truth[:, None] - stand.feet[None], axis=2).min(axis=1)
    assert gaps.max() < 0.03, gaps


@pytest.mark.parametrize("name", ["sphere", "mug", "cone", "box", "blob"])
def test_no_legs_on_objects_without_them(name: str) -> None:
    obj = S.fit_view0(S.catalogue()[name])
    labels, legs = find_legs(_mask(obj))
    assert legs == [] and labels.max() == 0


def test_one_stem_or_a_leaning_stick_is_no_stand() -> None:
    mask = np.zeros((SIZE, SIZE), bool)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    mask[(yy - 90) ** 2 + (xx - 128) ** 2 <= 60**2] = True
    stem = mask | ((np.abs(xx - 128) <= 4) & (yy < 230))
    assert find_legs(stem)[1] == []  # one thin part at the bottom: a stem
    leaning = mask.copy()
    for dx in (-50, 50):  # two sticks at 45°
        leaning |= (np.abs((xx - 128 - dx) - (yy - 140)) <= 5) & (yy > 130) & (yy < 220)
    assert find_legs(leaning)[1] == []
    upright = mask.copy()
    for dx in (-40, 40):
        upright |= (np.abs(xx - 128 - dx) <= 5) & (yy > 120) & (yy < 230)
    assert len(find_legs(upright)[1]) == 2


def test_under_field_values() -> None:
    stand = Stand(np.array([[0.0, 0.0], [0.3, 0.0]]), np.array([0.05, 0.02]), -0.3, 0.0)
    pts = np.array([[0, 0, -0.1], [0.1, 0, -0.1], [0, 0, -0.35], [0, 0, 0.1], [0.29, 0, -0.2]])
    np.testing.assert_allclose(under_field(stand, pts), [0.05, -0.05, -0.05, np.inf, 0.01],
                               atol=1e-6)


def test_the_proxy_of_a_table_has_legs_not_walls() -> None:
    """Under the top, what the proxy holds stands on the legs: nearly every occupied voxel
    below the top's underside is within two leg radii of a true leg's axis, and each of the
    four legs holds some."""
    field_, axis, used = proxy_field(_mask(table_object()).astype(np.float32), grid=96)
    assert used == "footprint"
    gx, gy, gz = np.meshgrid(axis, axis, axis, indexing="ij")
    occupied = field_ > 0
    under = occupied & (gz < 0.2) & (gz > -0.25)
    pts = np.stack([gx[under], gy[under]], axis=1)
    d = np.linalg.norm(pts[:, None] - table_leg_positions()[None], axis=2)
    assert (d.min(axis=1) < 0.08).mean() > 0.9  # measured 1.0; without legs 0.16 (walls)
    assert np.bincount(d.argmin(axis=1), minlength=4).min() > 0


def test_over_feet_known_values() -> None:
    """The prism over a square of feet (half-side 0.2), grown by a tenth of its side
    (0.04): its field is the distance to the nearest side plus 0.04 inside, minus the
    distance to the square plus 0.04 outside (also past a corner); two feet span nothing."""
    feet = np.array([[-0.2, -0.2], [0.2, -0.2], [0.2, 0.2], [-0.2, 0.2]])
    stand = Stand(feet, np.full(4, 0.02), -0.3, 0.0)
    pts = np.array([[0.0, 0.0, 0.1], [0.1, 0.0, -0.5], [0.3, 0.0, 0.0], [0.3, 0.3, 0.0]])
    np.testing.assert_allclose(over_feet(stand, pts, 0.1),
                               [0.24, 0.14, -0.06, 0.04 - 0.1 * np.sqrt(2)], atol=1e-6)
    two = Stand(feet[:2], np.full(2, 0.02), -0.3, 0.0)
    assert np.isinf(over_feet(two, pts)).all()


def test_columns_reach_the_body_above_them() -> None:
    """A body whose underside is above the legs' tops (z_under) would leave the legs
    floating: each column goes up to the body over it, one voxel in; a leg with no body
    above stays at z_under; the columns' field is the radius minus the distance, between
    z_under and the top."""
    axis = np.linspace(-0.5, 0.5, 21)  # 0.05 voxels
    occupied = np.zeros((21, 21, 21), bool)
    occupied[6:15, 6:15, 14:18] = True  # a block from z = 0.2 to 0.35 over |x|, |y| <= 0.2
    stand = Stand(np.array([[0.1, 0.1], [0.45, 0.45]]), np.array([0.03, 0.03]), -0.4, 0.0)
    tops = column_tops(stand, occupied, axis)
    np.testing.assert_allclose(tops, [0.25, 0.0], atol=1e-9)
    pts = np.array([[0.1, 0.1, 0.1], [0.12, 0.1, 0.1], [0.1, 0.1, 0.3], [0.45, 0.45, 0.1]])
    field_ = column_field(stand, pts, tops)
    np.testing.assert_allclose(field_[:2], [0.03, 0.01], atol=1e-6)
    assert np.isneginf(field_[2])  # above every top
    assert field_[3] < -0.4  # over the second leg, above its top: only the first is near


def test_three_legs_complete_a_rectangle() -> None:
    """Three legs seen of four at the corners of a rectangle centred under the object (a
    chair from behind): the nearest is next to the other two, the hidden fourth completes
    the parallelogram, and the ground puts its centre on view 0's axis."""
    from glimpse3d.pipeline.proxy import _stand

    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    corners = np.array([[sx * 0.2, sy * 0.15] for sx in (-1, 1) for sy in (-1, 1)]) @ [[c, s], [-s, c]]
    ground = -0.3
    uv, _ = CAM0.project(np.c_[corners, np.full(4, ground)])
    hidden = int(np.argmin(uv[:, 1]))  # the farthest foot (highest in the photo) is not seen
    legs = [Leg(float(u), float(v), 0.01, float(v) - 40.0)
            for k, (u, v) in enumerate(uv) if k != hidden]
    stand = _stand(legs, CAM0, None)
    assert stand.z_ground == pytest.approx(ground, abs=0.005)
    assert len(stand.feet) == 4
    np.testing.assert_allclose(stand.feet[-1], corners[hidden], atol=0.005)
