"""Validation rules, segmentation and crop/centre of the preprocess stage."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from glimpse3d.errors import ImageValidationError, UserError
from glimpse3d.pipeline.preprocess import (
    BLUR_THRESHOLD,
    FILL,
    MAX_INPUT_SHIFT,
    MAX_INPUT_ZOOM,
    ClassicSegmenter,
    PreprocessResult,
    blur_score,
    crop_camera,
    preprocess_image,
    validate_image,
)
from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.testing import synthetic as S


def _encode(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels (tiny, no real pixel data)."""

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + tag + payload
                + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def mug_photo() -> tuple[Image.Image, np.ndarray]:
    return S.synthetic_photo(S.fit_view0(S.make_cylinder(handle=True)), size=512, ssaa=1)


def _checker(w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (((xx // 16 + yy // 16) % 2) * 200 + 30).astype(np.uint8)


def _rule(data: bytes, **kw) -> tuple[str, int]:
    with pytest.raises(ImageValidationError) as info:
        validate_image(data, **kw)
    err = info.value
    assert isinstance(err, UserError) and str(err)
    return err.rule, err.http_status


# --- validation ----------------------------------------------------------------------------


def test_valid_photo_passes_and_is_rgb(mug_photo) -> None:
    img = validate_image(S.png_bytes(mug_photo[0]), max_bytes=10_000_000)
    assert img.mode == "RGB" and img.size == (512, 512)


def test_sniffs_content_not_names(mug_photo) -> None:
    jpeg = _encode(np.asarray(mug_photo[0]), "JPEG", quality=92)
    assert validate_image(jpeg).size == (512, 512)
    webp = _encode(np.asarray(mug_photo[0]), "WEBP")
    assert validate_image(webp).size == (512, 512)


@pytest.mark.parametrize("payload", [
    b"hello, this is not an image",
    b"%PDF-1.4\n" + b"0" * 400,
    b"",
])
def test_not_image(payload: bytes) -> None:
    assert _rule(payload) == ("not_image", 415)


def test_gif_is_not_accepted_and_truncated_png_is_rejected() -> None:
    gif = _encode(_checker(300, 300), "GIF")
    assert _rule(gif) == ("not_image", 415)
    png = _encode(np.stack([_checker(400, 400)] * 3, axis=-1))
    assert _rule(png[: len(png) // 2]) == ("not_image", 415)


def test_too_large_file(mug_photo) -> None:
    data = S.png_bytes(mug_photo[0])
    assert _rule(data, max_bytes=len(data) - 1) == ("too_large_file", 413)
    validate_image(data, max_bytes=len(data))


@pytest.mark.parametrize("w,h", [(100_000, 100_000), (9000, 8000)])
def test_decompression_bomb(w: int, h: int) -> None:
    data = _png_header(w, h)
    assert len(data) < 200
    assert _rule(data) == ("decompression_bomb", 422)


def test_too_small() -> None:
    assert _rule(_encode(_checker(120, 300))) == ("too_small", 422)
    validate_image(_encode(_checker(128, 300)))  # a short side of 128 px is enough


def test_small_object_crop_is_upsampled_and_tiny_object_refused() -> None:
    """A 150 px RGBA object crop (the usual image-to-3D input) becomes the 512 px working
    image with the object at 85% fill; an object under MIN_OBJECT px is refused."""
    obj = S.fit_view0(S.make_cylinder(handle=True))
    rgba, _ = S.render_truth(obj, orbit_camera(30.0, 0.0, size=150), ssaa=2)
    small = _encode((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8))
    result = preprocess_image(validate_image(small))
    assert result.used_alpha and result.rgba.shape == (512, 512, 4)
    ys, xs = np.nonzero(result.mask > 0.5)
    assert max(np.ptp(xs), np.ptp(ys)) + 1 == pytest.approx(0.85 * 512, abs=4)
    # upsampled, not blocky: the truth rendered at 512 px matches to within a few pixels
    truth, _ = S.render_truth(S.fit_view0(obj, size=512), orbit_camera(30.0, 0.0, size=512))
    assert S.silhouette_iou(result.mask, truth[..., 3]) > 0.96
    # a 40 px object in a 300 px frame
    tiny = np.zeros((300, 300, 4), np.uint8)
    tiny[..., :3] = _checker(300, 300)[..., None]
    tiny[130:170, 140:180, 3] = 255
    with pytest.raises(ImageValidationError) as info:
        preprocess_image(validate_image(_encode(tiny)))
    assert info.value.rule == "too_small_object" and "40 px" in str(info.value)


def test_too_big() -> None:
    assert _rule(_encode(np.zeros((1500, 4200), np.uint8))) == ("too_big", 422)


def test_aspect() -> None:
    assert _rule(_encode(_checker(1000, 300))) == ("aspect", 422)
    validate_image(_encode(_checker(900, 300)))  # exactly 3:1 is fine


def test_blank() -> None:
    rng = np.random.default_rng(0)
    grey = np.clip(128 + rng.normal(0, 1.0, (400, 400, 3)), 0, 255).astype(np.uint8)
    assert _rule(_encode(grey)) == ("blank", 422)
    transparent = np.zeros((400, 400, 4), np.uint8)
    transparent[..., :3] = _checker(400, 400)[..., None]
    assert _rule(_encode(transparent)) == ("blank", 422)


def test_blurry(mug_photo) -> None:
    arr = np.asarray(mug_photo[0])
    for sigma in (3.0, 5.0):
        blurred = cv2.GaussianBlur(arr, (0, 0), sigma)
        assert _rule(_encode(blurred)) == ("blurry", 422)
    g = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert blur_score(g) > 5 * BLUR_THRESHOLD
    for name in ("coffee", "astronaut", "camera", "chelsea"):
        img = getattr(skdata, name)()
        grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        assert blur_score(grey.astype(np.float32)) > 10 * BLUR_THRESHOLD, name
        assert blur_score(cv2.GaussianBlur(grey, (0, 0), 3.0).astype(np.float32)) < BLUR_THRESHOLD


def test_exif_orientation_applied() -> None:
    arr = np.stack([_checker(400, 300)] * 3, axis=-1)
    arr[:40, :, 0] = 255  # a red band at the top of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", exif=exif, quality=95)
    img = validate_image(buf.getvalue())
    assert img.size == (300, 400)  # width and height swapped
    out = np.asarray(img)
    assert out[:, -20:, 0].mean() > out[:, :20, 0].mean() + 50  # the band is now on the right


def test_rgba_and_palette_modes_convert() -> None:
    rgba = np.zeros((300, 300, 4), np.uint8)
    rgba[..., :3] = _checker(300, 300)[..., None]
    rgba[50:250, 50:250, 3] = 255
    assert validate_image(_encode(rgba)).mode == "RGBA"
    pal = Image.fromarray(np.stack([_checker(300, 300)] * 3, axis=-1)).convert("P")
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    assert validate_image(buf.getvalue()).mode == "RGB"


# --- segmentation ----------------------------------------------------------------------------


def test_segmentation_iou_on_synthetic_photo(mug_photo) -> None:
    img, truth = mug_photo
    mask = ClassicSegmenter().segment(np.asarray(img, dtype=np.float32) / 255.0)
    assert mask.shape == truth.shape and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    iou = S.silhouette_iou(mask, truth)
    print(f"segmentation IoU (mug photo): {iou:.4f}")
    assert iou >= 0.9


def test_segmentation_on_skimage_coffee() -> None:
    photo = skdata.coffee() / 255.0  # a cup on a saucer on a wooden table
    mask = ClassicSegmenter().segment(photo) > 0.5
    assert 0.25 < mask.mean() < 0.75
    assert mask[100, 190]  # the crema in the cup
    assert mask[330, 250]  # the saucer
    assert not mask[15, 15] and not mask[15, 585] and not mask[390, 590]  # table corners


def test_segmenter_finds_nothing_on_plain_background() -> None:
    yy = np.linspace(0.85, 0.95, 300)[:, None, None]
    plain = np.broadcast_to(yy, (300, 400, 3)).astype(np.float32)
    assert ClassicSegmenter().segment(plain).max() < 0.5
    with pytest.raises(ImageValidationError) as info:
        preprocess_image(Image.fromarray((plain * 255).astype(np.uint8)))
    assert info.value.rule == "no_object"


# --- crop / centre --------------------------------------------------------------------------


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask > 0.5)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_off_centre_object_is_centred_at_85_percent(mug_photo) -> None:
    arr = np.asarray(mug_photo[0])
    canvas = np.empty((700, 900, 3), np.uint8)
    canvas[:] = arr[5, 5]
    canvas[150:662, 20:532] = arr  # object left of centre, low
    res = preprocess_image(Image.fromarray(canvas))
    assert isinstance(res, PreprocessResult) and not res.used_alpha
    assert res.rgba.shape == (512, 512, 4) and res.rgba.dtype == np.float32
    assert res.mask.shape == (512, 512) and np.array_equal(res.mask, res.rgba[..., 3])
    x0, y0, x1, y1 = _bbox(res.mask)
    assert max(x1 - x0, y1 - y0) / 512 == pytest.approx(0.85, abs=0.015)
    assert abs((x0 + x1) / 2 - 256) <= 3 and abs((y0 + y1) / 2 - 256) <= 3
    assert res.mask[:5].max() == 0 and res.mask[:, :5].max() == 0  # background alpha 0
    # against the true silhouette: the object in the canvas at the same placement
    truth = np.zeros((700, 900), np.float32)
    truth[150:662, 20:532] = mug_photo[1]
    truth_res = preprocess_image(Image.fromarray(
        np.dstack([canvas, (truth * 255).astype(np.uint8)]), "RGBA"))
    assert truth_res.used_alpha
    assert S.silhouette_iou(res.mask, truth_res.mask) > 0.9


def test_alpha_channel_is_used(mug_photo) -> None:
    arr = np.asarray(mug_photo[0])
    rgba = np.dstack([arr, (mug_photo[1] * 255).astype(np.uint8)])
    res = preprocess_image(Image.fromarray(rgba, "RGBA"))
    assert res.used_alpha
    # the photo was already centred at 85%: preprocessing is (almost) the identity
    assert S.silhouette_iou(res.mask, mug_photo[1]) > 0.97
    inside = res.mask > 0.99
    err = np.abs(res.rgba[..., :3][inside] - arr[inside] / 255.0).mean()
    assert err < 0.03


def test_remove_bg_false_keeps_whole_photo(mug_photo) -> None:
    res = preprocess_image(mug_photo[0], remove_bg=False)
    assert not res.used_alpha
    assert res.mask.max() == 1.0
    assert (res.mask > 0.5).mean() == pytest.approx(0.85**2, abs=0.01)
    x0, y0, x1, y1 = _bbox(res.mask)
    assert abs((x0 + x1) / 2 - 256) <= 1 and abs((y0 + y1) / 2 - 256) <= 1


def test_custom_segmenter_and_size() -> None:
    class Disc:
        name = "disc"

        def segment(self, rgb: np.ndarray) -> np.ndarray:
            h, w = rgb.shape[:2]
            yy, xx = np.mgrid[0:h, 0:w]
            return ((xx - 300) ** 2 + (yy - 200) ** 2 < 80**2).astype(np.float32)

    img = Image.fromarray(np.stack([_checker(600, 400)] * 3, axis=-1))
    res = preprocess_image(img, segmenter=Disc(), size=256)
    assert res.rgba.shape == (256, 256, 4)
    x0, y0, x1, y1 = _bbox(res.mask)
    assert (x1 - x0) / 256 == pytest.approx(0.85, abs=0.02)


@pytest.mark.parametrize("name,alpha", [("mug.png", False), ("coffee.jpg", False), ("toy.png", True)])
def test_bundled_samples(name: str, alpha: bool) -> None:
    from pathlib import Path

    import glimpse3d

    path = Path(glimpse3d.__file__).parent / "samples" / name
    data = path.read_bytes()
    assert len(data) <= 300_000
    img = validate_image(data, max_bytes=10 * 1024 * 1024)
    assert 512 <= max(img.size) <= 800
    res = preprocess_image(img)
    assert res.used_alpha is alpha
    x0, y0, x1, y1 = _bbox(res.mask)
    assert max(x1 - x0, y1 - y0) / 512 == pytest.approx(0.85, abs=0.02)
    assert 0.25 < (res.mask > 0.5).mean() < 0.75


def _rgba_png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA").save(buf, "PNG")
    return buf.getvalue()


def _checker_albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A 5 cm checker (a photo sharp enough to pass the blur check)."""
    cells = np.floor(q * 20).sum(axis=1) % 2
    return np.repeat((0.3 + 0.5 * cells)[:, None], 3, axis=1)


@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.0), (0.03, 0.08, -0.04)])
def test_the_crop_camera_sees_the_object_where_the_processed_image_has_it(offset) -> None:
    """A box photographed by the convention camera (512 px, filling 60-70 % of it, off the
    centre): the processed image is the crop, and its recorded camera renders the object
    exactly there (silhouette IoU), with a longer focal length and the principal point where
    the photo's centre (the image of the origin) lands."""
    obj = S.SyntheticObject(
        "box", lambda q: S.sdf_box(q, np.array([0.3, 0.2, 0.22])),
        _checker_albedo, radius=0.45, offset=np.asarray(offset))
    photo, _ = S.render_truth(obj, orbit_camera(30.0, 0.0, size=512))
    result = preprocess_image(validate_image(_rgba_png(photo)))
    cam = result.camera
    assert cam is not None and cam.width == 512
    seen = S.silhouette(obj, cam)
    assert S.silhouette_iou(seen, result.mask) > 0.97
    zoom = cam.fx / orbit_camera(30.0, 0.0, size=512).fx
    ys, xs = np.nonzero(photo[..., 3] > 0.5)
    extent = max(np.ptp(xs), np.ptp(ys)) + 1
    assert zoom == pytest.approx(512 * FILL / extent, rel=0.01)
    (uv,), _ = cam.project(np.zeros((1, 3)))
    centre = np.array([(xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2])
    np.testing.assert_allclose(uv, 256 + (256 - centre) * 512 / (extent / FILL), atol=0.5)


def test_the_crop_camera_is_clamped() -> None:
    """An object filling a tenth of a large photo is read as seen from afar (focal length at
    most MAX_INPUT_ZOOM times the convention's), a tight crop as the convention's camera."""
    far = crop_camera((2000, 1500), (950, 700, 1050, 800), 512)
    assert far.fx == pytest.approx(MAX_INPUT_ZOOM * orbit_camera(30.0, 0.0, size=512).fx)
    edge = crop_camera((2000, 1500), (1800, 1300, 1900, 1400), 512)
    assert abs(edge.cx - 256) <= MAX_INPUT_SHIFT * 512 + 1e-9
    assert abs(edge.cy - 256) <= MAX_INPUT_SHIFT * 512 + 1e-9
    tight = crop_camera((256, 256), (0, 10, 256, 246), 512)
    assert (tight.fx, tight.cx, tight.cy) == (orbit_camera(30.0, 0.0, size=512).fx, 256.0, 256.0)
