"""Classic multiview: silhouette IoU on held-out views of synthetic objects, view-0 fidelity."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from glimpse3d.pipeline.multiview import ClassicMultiview, render_proxy
from glimpse3d.pipeline.preprocess import preprocess_image, validate_image
from glimpse3d.pipeline.proxy import Proxy, build_proxy
from glimpse3d.splat.cameras import orbit_camera, syncdreamer_cameras
from glimpse3d.testing import synthetic as S
from tests.utils.synthetic import aligned_ious

HELD_OUT = [2, 5, 8, 12]  # azimuths 45°, 112.5°, 180°, 270°
# measured worst held-out IoU of these four views after the benchmark's alignment (scale and
# a shift across view 0): sphere 0.998, cylinder 0.986, mug 0.941, cone 0.981, box 0.834 and
# cube 0.852 (both read as footprints; these objects are scaled to fill the frame, so the
# photo is taken from 2.4 bounding radii: the vanishing point of their sides gives that)
MIN_IOU = {"sphere": 0.95, "cylinder": 0.95, "mug": 0.88, "box": 0.8, "cube": 0.82, "cone": 0.85}


def _processed(obj: S.SyntheticObject) -> np.ndarray:
    photo, _ = S.synthetic_photo(obj, size=512, ssaa=1)
    return preprocess_image(validate_image(S.png_bytes(photo))).rgba


@pytest.fixture(scope="module")
def objects() -> dict[str, tuple[S.SyntheticObject, np.ndarray]]:
    cat = S.catalogue()
    out = {}
    for name in MIN_IOU:
        obj = S.fit_view0(cat[name])
        out[name] = (obj, _processed(obj))
    return out


@pytest.fixture(scope="module")
def proxies(objects) -> dict[str, Proxy]:
    """Each object's proxy, built once and passed to the stages (as the runner does)."""
    return {name: build_proxy(processed) for name, (_, processed) in objects.items()}


@pytest.mark.parametrize("name", list(MIN_IOU))
def test_held_out_silhouette_iou(objects, proxies, name: str) -> None:
    obj, processed = objects[name]
    cams = syncdreamer_cameras(256)
    chosen = [cams[k] for k in HELD_OUT]
    views = ClassicMultiview().generate(processed, chosen, proxy=proxies[name])
    raw = [S.silhouette_iou(v[..., 3], S.silhouette(obj, c)) for v, c in zip(views, chosen, strict=True)]
    ious = aligned_ious(lambda c: render_proxy(proxies[name], c)[0][..., 3], obj,
                        orbit_camera(30.0, 0.0, size=256), chosen)
    print(f"{name}: held-out IoU {np.round(ious, 3).tolist()} mean {np.mean(ious):.3f}"
          f" (unaligned {np.round(raw, 3).tolist()})")
    assert min(ious) >= MIN_IOU[name]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def _over_white(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3] * rgba[..., 3:4] + (1 - rgba[..., 3:4])


@pytest.mark.parametrize("name", ["sphere", "mug"])
def test_view0_reproduces_the_input(objects, proxies, name: str) -> None:
    _, processed = objects[name]
    view0 = ClassicMultiview().generate(processed, [orbit_camera(30.0, 0.0, size=256)],
                                        proxy=proxies[name])[0]
    ref = cv2.resize(processed, (256, 256), interpolation=cv2.INTER_AREA)
    iou = S.silhouette_iou(view0[..., 3], ref[..., 3])
    psnr = _psnr(_over_white(view0), _over_white(ref))
    print(f"{name}: view 0 vs processed image: IoU {iou:.4f}, PSNR {psnr:.1f} dB")
    assert iou > 0.97
    assert psnr > 22.0


def test_sixteen_views_shapes_speed_and_determinism(objects, proxies) -> None:
    obj, processed = objects["sphere"]
    proxy = proxies["sphere"]
    assert isinstance(proxy, Proxy)
    # not cached: rebuilt from the same image (as a resumed run does) it is the same shape
    again = build_proxy(processed.copy())
    assert again is not proxy and np.array_equal(again.vertices, proxy.vertices)
    assert np.array_equal(again.vertex_colours, proxy.vertex_colours)
    cams = syncdreamer_cameras(256)
    t0 = time.process_time()
    views = ClassicMultiview.from_settings(None).generate(processed, cams, proxy=proxy)
    cpu = time.process_time() - t0
    print(f"16 views at 256 px: {cpu:.2f} s CPU")
    assert cpu < 12.0  # target <= 3 s on 2 idle cores; generous for a shared machine
    assert len(views) == 16
    for v in views:
        assert v.shape == (256, 256, 4) and v.dtype == np.float32
        assert v.min() >= 0.0 and v.max() <= 1.0
        assert v[0, 0, 3] == 0 and v[..., 3].mean() > 0.2
    # the proxy fits the unit sphere of radius ~0.5 and sits around the origin
    r = np.linalg.norm(proxy.vertices, axis=1)
    assert 0.3 < r.max() < 0.75  # the hull from one elevation bulges a little at the poles
    assert np.abs(proxy.vertices.mean(axis=0)).max() < 0.1
    # hidden sides take the input's colours (mirrored, blurred): every view's mean colour
    # stays close to the input's
    ref = processed[..., :3][processed[..., 3] > 0.5].mean(axis=0)
    dev = [np.abs(v[..., :3][v[..., 3] > 0.5].mean(axis=0) - ref).max() for v in views]
    print(f"max deviation of a view's mean colour from the input's: {max(dev):.3f}")
    assert max(dev) < 0.15
    # at 45° most of what is seen was seen in the input: colours match the true object
    truth, _ = S.render_truth(obj, cams[2])
    both = (views[2][..., 3] > 0.5) & (truth[..., 3] > 0.5)
    mae = float(np.abs(views[2][..., :3][both] - truth[..., :3][both]).mean())
    print(f"colour MAE vs truth at azimuth 45°: {mae:.3f}")
    assert mae < 0.1


def test_other_sizes_and_depth(proxies) -> None:
    proxy = proxies["sphere"]
    small = orbit_camera(30.0, 45.0, size=128)
    big = orbit_camera(30.0, 45.0, size=384)
    a, da = render_proxy(proxy, small)
    b, db = render_proxy(proxy, big)
    assert a.shape == (128, 128, 4) and b.shape == (384, 384, 4)
    down = cv2.resize(b[..., 3], (128, 128), interpolation=cv2.INTER_AREA)
    assert S.silhouette_iou(a[..., 3], down) > 0.97
    assert np.array_equal(da > 0, a[..., 3] > 0.5)  # depth where alpha > 0.5 (soft edges)
    assert 0.8 < da[da > 0].min() < da[da > 0].max() < 2.2


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        build_proxy(np.zeros((64, 32, 4), np.float32))
    with pytest.raises(ValueError):
        build_proxy(np.zeros((64, 64, 4), np.float32))


def test_mirror_symmetry_known_answers() -> None:
    from glimpse3d.pipeline.proxy import mirror_symmetry

    m = np.zeros((10, 12), bool)
    m[2:8, 1:4] = True  # a rectangle anywhere is symmetric about its own centre line
    assert mirror_symmetry(m) == 1.0
    ell = np.zeros((10, 10), bool)
    ell[2:8, 3:6] = True
    ell[2:4, 6:9] = True  # an L: 18 + 6 px, its mirror overlaps it on 12 of 36
    assert mirror_symmetry(ell) == pytest.approx(1 / 3)
    assert mirror_symmetry(np.zeros((4, 4), bool)) == 1.0


def test_asymmetric_silhouette_is_read_as_inflated() -> None:
    """An L-shaped silhouette cannot look alike from every azimuth: ``auto`` reads it as the
    inflated silhouette cone (nothing is carved away, so nothing is filled back as a slab),
    and view 0 reproduces it."""
    from glimpse3d.pipeline.proxy import SYMMETRY_MIN, mirror_symmetry, proxy_field

    size = 128
    alpha = np.zeros((size, size), np.float32)
    alpha[30:100, 40:64] = 1.0
    alpha[30:54, 64:100] = 1.0
    assert mirror_symmetry(alpha > 0.5) < SYMMETRY_MIN
    assert proxy_field(alpha, grid=48)[2] == "inflated"
    assert proxy_field(alpha, grid=48, shape_prior="rotational")[2] == "rotational"
    rgba = np.dstack([np.full((size, size, 3), 0.5, np.float32), alpha])
    proxy = build_proxy(rgba, grid=64)
    assert proxy.shape == "inflated"
    view0, _ = render_proxy(proxy, orbit_camera(30.0, 0.0, size=size))
    assert S.silhouette_iou(view0[..., 3], alpha) > 0.99  # measured 0.997


@pytest.mark.parametrize("name", ["cylinder", "cone", "sphere"])
def test_the_photos_own_camera_makes_round_objects_right(name: str) -> None:
    """Photographed at the convention's size (not scaled to fill the frame), the crop zooms
    the photo 1.2-1.3x and moves the object's centre off the image's: read with the crop's
    own camera (``PreprocessResult.camera``), a turned object is right from every side.
    Measured held-out aligned IoU (mean of 4) without / with it: cylinder 0.954 / 0.992, cone
    0.916 / 0.987, sphere 0.993 / 0.999."""
    obj = S.catalogue()[name]
    photo, _ = S.synthetic_photo(obj, size=512, ssaa=1)
    result = preprocess_image(validate_image(S.png_bytes(photo)))
    cams = syncdreamer_cameras(256)
    chosen = [cams[k] for k in HELD_OUT]
    means = []
    for camera in (None, result.camera):
        proxy = build_proxy(result.rgba, camera=camera)
        assert proxy.shape == "rotational"
        ious = aligned_ious(lambda c, p=proxy: render_proxy(p, c)[0][..., 3], obj,
                            orbit_camera(30.0, 0.0, size=256), chosen)
        means.append(float(np.mean(ious)))
    assert means[1] >= 0.98
    assert means[1] >= means[0] + 0.005


def test_symmetric_side_views_that_no_turned_object_makes_are_inflated() -> None:
    """A mirror-symmetric silhouette is read as a turned object only when the turned object
    reproduces it from view 0: a bus-like side view on two wheels and a sofa-like block are
    symmetric, but spun about the vertical axis they miss more than ROTATIONAL_MAX_MISSED of
    themselves (the hull was a disc with fins); an ellipse (a plate from 30°) is kept."""
    from glimpse3d.pipeline.proxy import SYMMETRY_MIN, mirror_symmetry, proxy_field

    bus = np.zeros((256, 256), np.float32)
    bus[90:160, 40:216] = 1.0
    for x in (70, 186):
        cv2.circle(bus, (x, 160), 18, 1.0, -1)
    sofa = np.zeros((256, 256), np.float32)
    cv2.ellipse(sofa, (128, 150), (100, 40), 0, 0, 360, 1.0, -1)
    sofa[60:150, 28:229] = 1.0
    plate = np.zeros((256, 256), np.float32)
    cv2.ellipse(plate, (128, 128), (100, 45), 0, 0, 360, 1.0, -1)
    for alpha, want in ((bus, "inflated"), (sofa, "inflated"), (plate, "rotational")):
        assert mirror_symmetry(alpha > 0.5) >= SYMMETRY_MIN
        assert proxy_field(alpha, grid=64)[2] == want


def test_cone_runs_known_profiles() -> None:
    """A cone's radius grows by a steady step from its tip; a sphere's by ever smaller
    ones; a shoulder is a steady run after a narrow neck."""
    from glimpse3d.pipeline.proxy import cone_runs

    voxel = 0.01
    cone = np.concatenate([np.arange(7) * 2.5, np.full(5, 15.0)]) * voxel  # base at level 6
    assert cone_runs(cone, voxel) == [(0, 6)]
    noisy = cone + np.tile([0.0, 0.3 * voxel], 6)  # steps 2.2-2.8 voxels: still one cone
    assert cone_runs(noisy, voxel) == [(0, 6)]
    h = np.arange(1, 20) * voxel
    sphere = np.sqrt(2 * 0.3 * h - h**2)  # a ball of 30 voxels from its top
    assert cone_runs(sphere, voxel) == []
    bottle = np.concatenate([np.full(5, 4.0), 4.0 + np.arange(1, 5) * 2.4, np.full(6, 13.6)]) * voxel
    assert cone_runs(bottle, voxel) == [(4, 8)]
    # from above, any widening run down to a wall may be cut (view 0 decides): the cone over
    # a photographed mug's rim does not grow steadily
    mug_top = np.cumsum([0.0, 4.1, 9.0, 3.1, 2.2, 1.7, 0.5, 0.2, 0.0, 0.3]) * voxel
    assert cone_runs(mug_top, voxel) == []
    assert cone_runs(mug_top, voxel, steady=False) == [(0, 5)]
    # from below, a cone must end at a wall: the cone under a plate does; the hull's cone
    # under a ball runs on into the ball's lower half, whose steps fall off slowly
    plate_below = np.concatenate([np.arange(12) * 0.9, [10.0, 9.5]]) * voxel
    assert cone_runs(plate_below, voxel, 0.5, wall=True) == [(0, 11)]
    ball_below = np.concatenate([np.arange(12) * 0.9, 9.9 + np.cumsum(np.linspace(0.8, 0.1, 8))]) * voxel
    assert cone_runs(ball_below, voxel, 0.5) != []
    assert cone_runs(ball_below, voxel, 0.5, wall=True) == []


@pytest.mark.parametrize("name", ["plate", "sphere"])
def test_a_plate_is_flat_and_a_ball_stays_round(name: str) -> None:
    """The rotational hull of a plate seen from 30° is a spinning top: a cone ~0.2 high over
    its flat top and one ~0.4 deep under it (0.63 in all); both are cut flat (the plate's
    own thickness is 0.06), and the view-0 silhouette stays. A ball has no cone: its field
    is unchanged."""
    from glimpse3d.pipeline.proxy import _proxy_field, flat_ends

    if name == "plate":
        obj = S.SyntheticObject("plate", lambda q: S.sdf_cylinder_z(q, 0.45, 0.03),
                                lambda q, n: np.full((len(q), 3), 0.8), radius=0.5)
    else:
        obj = S.catalogue()["sphere"]
    photo, _ = S.synthetic_photo(obj, size=512, ssaa=1)
    result = preprocess_image(validate_image(S.png_bytes(photo)))
    alpha = result.rgba[..., 3]
    field_, axis, used, cam0 = _proxy_field(alpha, 64, 16, False, "rotational", result.camera)
    heights = axis[np.nonzero((field_ > 0).any(axis=(0, 1)))[0]]
    if name == "sphere":
        np.testing.assert_array_equal(flat_ends(field_, axis, alpha > 0.5, cam0), field_)
        assert np.ptp(heights) > 0.6  # the whole ball
        return
    assert np.ptp(heights) < 0.12  # measured 0.08; 0.63 without the cuts
    view0, _ = render_proxy(build_proxy(result.rgba, camera=result.camera), result.camera)
    assert S.silhouette_iou(view0[..., 3], alpha) > 0.97
