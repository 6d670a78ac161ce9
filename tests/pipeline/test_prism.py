"""The prism reading of a silhouette: geometry helpers against known answers, the fit against
synthetic boxes of known size, and the choice between the rotational and the prism prior."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse3d.pipeline.multiview import ClassicMultiview, render_proxy
from glimpse3d.pipeline.prism import (
    fit_prism,
    prism_field,
    project_plane,
    vertical_vanishing_point,
)
from glimpse3d.pipeline.proxy import build_proxy, proxy_field
from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.testing import synthetic as S
from tests.utils.synthetic import aligned_ious

SIZE = 256


def _view0_alpha(obj: S.SyntheticObject) -> np.ndarray:
    return S.silhouette(obj, orbit_camera(30.0, 0.0, size=SIZE)).astype(np.float32)


def test_project_plane_matches_the_camera() -> None:
    cam = orbit_camera(30.0, 0.0, size=SIZE)
    xy = np.array([[0.0, 0.0], [0.2, -0.1], [-0.3, 0.25]])
    u, v = project_plane(cam, xy, 0.15)
    uv, _ = cam.project(np.c_[xy, np.full(3, 0.15)])
    np.testing.assert_allclose(np.c_[u, v], uv, atol=1e-3)


def test_vertical_lines_meet_at_the_vanishing_point() -> None:
    cam = orbit_camera(30.0, 0.0, size=SIZE)
    vpu, vpv = vertical_vanishing_point(cam)
    # looking down 30°: straight below the image centre, at f / tan(30°)
    assert vpu == pytest.approx(cam.cx, abs=1e-6)
    assert vpv == pytest.approx(cam.cy + cam.fy / np.tan(np.radians(30.0)), rel=1e-6)
    for x, y in [(0.2, 0.3), (-0.25, -0.1)]:
        (u0, v0), (u1, v1) = cam.project(np.array([[x, y, -0.3], [x, y, 0.4]]))[0]
        # the image of the vertical segment points at the vanishing point
        cross = (u1 - u0) * (vpv - v0) - (v1 - v0) * (vpu - u0)
        assert abs(cross) / np.hypot(u1 - u0, v1 - v0) < 1e-3 * np.hypot(vpu - u0, vpv - v0)
    with pytest.raises(ValueError, match="level"):
        vertical_vanishing_point(orbit_camera(0.0, 0.0, size=SIZE))


@pytest.mark.parametrize("yaw", [0.0, 25.0, 45.0])
def test_fit_recovers_a_box(yaw: float) -> None:
    half = np.array([0.3, 0.3, 0.25])
    obj = S.make_box(yaw, tuple(half), name="cube")
    fit = fit_prism(_view0_alpha(obj), orbit_camera(30.0, 0.0, size=SIZE))
    assert fit is not None and fit.plausible
    assert fit.z_bottom == pytest.approx(-half[2], abs=0.05)
    assert fit.z_top == pytest.approx(half[2], abs=0.05)
    c, s = abs(np.cos(np.radians(yaw))), abs(np.sin(np.radians(yaw)))
    true_extent = 2 * (half[0] * c + half[1] * s)  # along X and along Y (square footprint)
    assert fit.depth == pytest.approx(true_extent, rel=0.1)
    assert fit.width == pytest.approx(true_extent, rel=0.1)
    assert abs(fit.centre_x) < 0.05


def test_round_objects_do_not_read_as_prisms() -> None:
    cam = orbit_camera(30.0, 0.0, size=SIZE)
    for name in ("sphere", "cone", "blob"):
        fit = fit_prism(_view0_alpha(S.fit_view0(S.catalogue()[name], size=SIZE)), cam)
        assert fit is None or not fit.plausible, (name, fit)
        if fit is not None:
            assert fit.side_run < 0.3  # no straight vertical sides


def test_prism_field_inside_and_outside() -> None:
    from glimpse3d.pipeline.proxy import _signed_distance

    obj = S.make_box(25.0, (0.3, 0.3, 0.25), name="cube")
    cam = orbit_camera(30.0, 0.0, size=SIZE)
    alpha = _view0_alpha(obj)
    fit = fit_prism(alpha, cam)
    assert fit is not None
    axis = np.linspace(-0.6, 0.6, 25, dtype=np.float32)  # step 0.05: index 12 is 0.0
    field = prism_field(_signed_distance(alpha > 0.5), cam, fit, axis)
    assert field.shape == (25, 25, 25)
    assert field[12, 12, 12] > 0.05  # the centre (values are image distances, not metric)
    assert field[12, 12, 20] < 0  # z = 0.4, above the top
    assert field[12, 22, 12] < 0  # y = 0.5, beside it
    # the corner direction of the turned box reaches further than the face direction
    c, s = np.cos(np.radians(25.0)), np.sin(np.radians(25.0))
    corner = np.array([c * 0.3 - s * 0.3, s * 0.3 + c * 0.3]) * 0.9  # 90 % of the way out
    ix, iy = (np.round((corner + 0.6) / 0.05)).astype(int)
    assert field[ix, iy, 12] > -0.03


def test_auto_prior_picks_per_object() -> None:
    picks = {}
    for name in ("sphere", "cylinder", "box", "cube"):
        alpha = _view0_alpha(S.fit_view0(S.catalogue()[name], size=SIZE))
        picks[name] = proxy_field(alpha, grid=48)[2]
    # boxes stand on straight ground edges: the footprint reading (pipeline/footprint.py)
    # has taken over from the prism's strict test in "auto"
    assert picks == {"sphere": "rotational", "cylinder": "rotational", "box": "footprint",
                     "cube": "footprint"}
    with pytest.raises(ValueError, match="shape_prior"):
        proxy_field(np.ones((32, 32), np.float32), shape_prior="cubist")
    with pytest.raises(ValueError, match="shape_prior"):
        ClassicMultiview(shape_prior="cubist")


def test_auto_prior_beats_the_rotational_one_on_a_box() -> None:
    """The reason for the box readings: a turned box seen at 90° and 135° from the photo,
    after the quality benchmark's alignment (scale and a shift across view 0: what one photo
    cannot fix)."""
    # as a photo is taken (and the benchmark's objects are): the box at the origin, its
    # bounding radius a third of the camera distance; preprocessing re-centres and re-scales
    obj = S.make_box(25.0)
    photo, _ = S.synthetic_photo(obj, size=2 * SIZE, ssaa=1)
    from glimpse3d.pipeline.preprocess import preprocess_image, validate_image

    processed = preprocess_image(validate_image(S.png_bytes(photo)), size=SIZE).rgba
    cams = [orbit_camera(30.0, az, size=128) for az in (90.0, 135.0)]
    ious = {}
    for prior in ("rotational", "auto"):
        proxy = build_proxy(processed, shape_prior=prior)
        ious[prior] = aligned_ious(lambda c, p=proxy: render_proxy(p, c)[0][..., 3], obj,
                                   orbit_camera(30.0, 0.0, size=128), cams)
        assert proxy.shape == ("footprint" if prior == "auto" else "rotational")
    print(ious)
    # measured (aligned IoU at 90° / 135°): rotational 0.744 / 0.778, footprint 0.970 / 0.969
    assert min(ious["auto"]) > 0.92
    assert np.mean(ious["auto"]) > np.mean(ious["rotational"]) + 0.15
