"""Legs: thin upright parts found in the silhouette, placed on the ground as columns."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.pipeline.legs import Stand, find_legs, place_legs, under_field
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
