import math

import numpy as np
import pytest

from glimpse3d.splat.cameras import camera_center, orbit_camera, syncdreamer_cameras


def test_sixteen_cameras_follow_syncdreamer_convention():
    cams = syncdreamer_cameras()
    assert len(cams) == 16
    for k, cam in enumerate(cams):
        assert cam.azimuth == pytest.approx(22.5 * k)
        assert cam.elevation == 30.0
        assert np.linalg.norm(cam.center) == pytest.approx(1.5)
        assert (cam.fx, cam.fy, cam.cx, cam.cy) == (280.0, 280.0, 128.0, 128.0)
        # the origin projects to the image centre at depth 1.5
        uv, z = cam.project(np.zeros((1, 3)))
        np.testing.assert_allclose(uv[0], [128.0, 128.0], atol=1e-9)
        assert z[0] == pytest.approx(1.5)
        # rotation is orthonormal with det +1
        rot = cam.w2c[:3, :3]
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)


def test_camera_centre_formula_and_view0_on_plus_x():
    c = camera_center(30.0, 0.0, 1.5)
    np.testing.assert_allclose(c, [1.5 * math.cos(math.pi / 6), 0.0, 0.75])
    c90 = camera_center(0.0, 90.0, 2.0)
    np.testing.assert_allclose(c90, [0.0, 2.0, 0.0], atol=1e-12)


def test_z_up_is_image_up_and_azimuth_counter_clockwise():
    cam = orbit_camera(0.0, 0.0, 1.5, 256)
    (uv_up, _), (uv_y, _) = cam.project(np.array([[0, 0, 0.3]])), cam.project(np.array([[0, 0.3, 0]]))
    assert uv_up[0, 1] < 128  # +Z appears above the centre (smaller v)
    assert uv_y[0, 0] > 128  # from +X looking in, +Y is to the right


def test_fov_and_resize():
    cam = orbit_camera(30, 45, size=512)
    assert cam.fx == pytest.approx(560.0)
    fov = 2 * math.degrees(math.atan(128 / 280))
    assert fov == pytest.approx(49.1, abs=0.05)
    small = cam.resized(128)
    assert small.fx == pytest.approx(140.0) and small.cx == pytest.approx(64.0)
