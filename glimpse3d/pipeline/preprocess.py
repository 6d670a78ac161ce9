"""Preprocess stage: validate the upload, remove the background, centre the object.

Conventions: images are float32 numpy arrays in [0,1], shape (H,W,C); RGB(A) colour is
*straight* (not premultiplied by alpha). Masks are float32 (H,W) in [0,1].

``validate_image`` sniffs the bytes (never trusts a file name), applies the EXIF orientation
and checks one rule at a time, raising :class:`glimpse3d.errors.ImageValidationError` with the
rule name and an HTTP status. ``preprocess_image`` turns the photo into a square RGBA image with
the object centred at ~85% fill and a transparent background (the input of every later stage).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from glimpse3d.domain import PILLOW_IMAGE_FORMATS
from glimpse3d.errors import ImageValidationError
from glimpse3d.splat.cameras import Camera, input_camera

if TYPE_CHECKING:
    from glimpse3d.config import Settings

# --- validation limits -------------------------------------------------------------------
ALLOWED_FORMATS = PILLOW_IMAGE_FORMATS  # Pillow names of glimpse3d.domain.IMAGE_FORMATS
MIN_SIDE = 128  # px, short side of the file (object crops of 150-256 px are normal input)
MIN_OBJECT = 64  # px, long side of the object's bounding box (it is upsampled to the working size)
MAX_SIDE = 4096  # px, long side
MAX_ASPECT = 3.0  # long/short
# Declared pixel count above which an image is treated as a decompression bomb (checked from
# the header, before decoding). Anything legitimately usable is <= 4096*4096 = 16.8 MP.
MAX_PIXELS = 64_000_000
BLANK_STD = 0.02  # std of grey (0..1) below which the photo is "almost uniform"
BLUR_SIZE = 512  # long side of the normalised grey image for the blur measure
# Sharpness (``blur_score``: variance of the Laplacian over the strongest 5% edges, grey in
# 0..255, long side 512) below which a photo is blurry. Measured: skimage's photos (astronaut,
# coffee, chelsea, rocket, camera, moon, page, ...) score 499..8000 sharp, 8..42 after a
# Gaussian blur of sigma 2 px and <= 10 after sigma 3; the rendered samples score 85 (smooth
# toy with alpha) .. 5800, and <= 8 after sigma 3.
BLUR_THRESHOLD = 20.0
FILL = 0.85  # fraction of the square's side taken by the object's longer bbox side
# the processed image's camera: the photo is read as taken by the convention camera (camera
# 0, SyncDreamer's field of view over its long side), so the crop makes the focal length
# this many times longer at most (objects that fill little of a large photo: read as seen
# from afar, not as tiny) and moves the principal point by at most this fraction of the side
MAX_INPUT_ZOOM = 2.0
MAX_INPUT_SHIFT = 0.15


def _fail(rule: str, message: str, status: int = 422) -> ImageValidationError:
    return ImageValidationError(rule, message, status)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB or RGBA (8-bit), keeping transparency."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr8 = ((arr - lo) * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if img.mode == "L" and "transparency" in img.info:
        has_alpha = True
    return img.convert("RGBA" if has_alpha else "RGB")


def blur_score(grey: np.ndarray) -> float:
    """Sharpness: variance of the Laplacian of a grey image (0..255) downsized to long side
    ``BLUR_SIZE`` (smaller images are measured as they are), taken over its strongest-gradient
    pixels (top 5%).

    Restricting to edge pixels makes the score independent of how much plain background a
    product photo has; a blurred edge has a small Laplacian whatever the content.
    """
    h, w = grey.shape
    s = min(1.0, BLUR_SIZE / max(h, w))  # never upsampled: that would blur a small crop
    g = grey.astype(np.float32)
    if s < 1:
        g = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1)
    grad = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    edges = grad >= np.percentile(grad, 95)
    return float(lap[edges].var()) if edges.sum() > 16 else float(lap.var())


def _grey_composite(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey image (0..255 float32) composited over mid-grey, and alpha (0..1) if any."""
    arr = np.asarray(img, dtype=np.float32)
    rgb = arr[..., :3]
    alpha = arr[..., 3] / 255.0 if arr.shape[-1] == 4 else None
    if alpha is not None:
        rgb = rgb * alpha[..., None] + 127.5 * (1.0 - alpha[..., None])
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return grey, alpha


def validate_image(data: bytes, *, max_bytes: int | None = None) -> Image.Image:
    """Decode and check an uploaded photo; return it as an RGB or RGBA Pillow image.

    Rules (``ImageValidationError.rule``, HTTP status): ``too_large_file`` (413, only when
    ``max_bytes`` is given), ``not_image`` (415: not a JPEG/PNG/WebP/BMP/TIFF or undecodable),
    ``decompression_bomb`` (422), ``too_small`` (short side < 128 px), ``too_big`` (long side
    > 4096 px), ``aspect`` (outside 1:3..3:1), ``blank`` (almost uniform), ``blurry``.
    The EXIF orientation is applied before the size checks.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("validate_image expects bytes")
    data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise _fail("too_large_file",
                    f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB",
                    413)
    if not data:
        raise _fail("not_image", "the file is empty; upload a JPEG, PNG, WebP, BMP or TIFF photo", 415)
    bomb_msg = ("the image declares too many pixels (possible decompression bomb); "
                f"upload a photo of at most {MAX_SIDE}x{MAX_SIDE} pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            if fmt not in ALLOWED_FORMATS:
                raise _fail("not_image",
                            f"unsupported image type {fmt or 'unknown'}; upload a JPEG, PNG, WebP, "
                            "BMP or TIFF photo", 415)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise _fail("decompression_bomb", bomb_msg)
            if max(w, h) > MAX_SIDE:  # from the header: refuse before decoding
                raise _fail("too_big", f"the image is {w}x{h} px; the long side must be at "
                            f"most {MAX_SIDE} px (downscale it)")
            img.load()
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img = ImageOps.exif_transpose(img)
            img = _to_8bit(img)
            img.format = fmt  # the source format (the stored original keeps it)
    except ImageValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _fail("decompression_bomb", bomb_msg) from exc
    except UnidentifiedImageError as exc:
        raise _fail("not_image",
                    "the file is not a readable image; upload a JPEG, PNG, WebP, BMP or TIFF photo",
                    415) from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, struct.error) as exc:
        raise _fail("not_image", f"the image could not be decoded ({exc}); it may be truncated or "
                    "corrupt", 415) from exc

    w, h = img.size
    short, long_ = min(w, h), max(w, h)
    if short < MIN_SIDE:
        raise _fail("too_small", f"the image is {w}x{h} px; the short side must be at least "
                    f"{MIN_SIDE} px")
    if long_ > MAX_SIDE:
        raise _fail("too_big", f"the image is {w}x{h} px; the long side must be at most "
                    f"{MAX_SIDE} px (downscale it)")
    if long_ / short > MAX_ASPECT:
        raise _fail("aspect", f"the image is {w}x{h} px (aspect {long_ / short:.1f}:1); crop it to "
                    "between 1:3 and 3:1")
    grey, alpha = _grey_composite(img)
    if alpha is not None and float(alpha.max()) < 0.05:
        raise _fail("blank", "the image is fully transparent; nothing to reconstruct")
    grey01 = grey / 255.0
    alpha_std = float(alpha.std()) if alpha is not None else 0.0
    if float(grey01.std()) < BLANK_STD and alpha_std < BLANK_STD:
        raise _fail("blank", "the image is almost uniform (blank); upload a photo of an object")
    score = blur_score(grey)
    if score < BLUR_THRESHOLD:
        raise _fail("blurry", f"the image is too blurry (sharpness {score:.1f} < {BLUR_THRESHOLD:.0f});"
                    " upload a sharper photo")
    return img


# --- segmentation --------------------------------------------------------------------------


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def _fill_small_holes(mask: np.ndarray, max_frac: float) -> np.ndarray:
    """Fill enclosed background regions smaller than ``max_frac`` of the object's area."""
    holes = ndimage.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    lab, n = ndimage.label(holes)
    sizes = ndimage.sum_labels(holes, lab, index=np.arange(1, n + 1))
    small = np.zeros(n + 1, dtype=bool)
    small[1:] = sizes <= max_frac * max(1, int(mask.sum()))
    return mask | small[lab]


class ClassicSegmenter:
    """Weight-free background removal: a border colour model seeds ``cv2.grabCut``.

    The border strip of the photo is assumed to be background: its colours are clustered
    (k-means in Lab); pixels far from every cluster seed the foreground. GrabCut runs on a copy
    with long side ``work_size``; the result keeps the largest component, fills small holes and
    is upsampled with a ~1 px feathered edge.
    """

    name = "classic"

    def __init__(self, work_size: int = 320, iterations: int = 4, border_frac: float = 0.03,
                 hole_frac: float = 0.02) -> None:
        self.work_size = work_size
        self.iterations = iterations
        self.border_frac = border_frac
        self.hole_frac = hole_frac

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ClassicSegmenter:
        return cls()

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H,W,3) float in [0,1] -> foreground mask (H,W) float32 in [0,1]."""
        rgb = np.asarray(rgb, dtype=np.float32)[..., :3]
        h, w = rgb.shape[:2]
        s = min(1.0, self.work_size / max(h, w))
        sw, sh = max(8, round(w * s)), max(8, round(h * s))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA) if s < 1 else rgb.copy()
        small = np.clip(small, 0, 1)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)  # L 0..100, a/b ~ -128..127
        bw = max(2, round(self.border_frac * min(sw, sh)))
        border = np.zeros((sh, sw), dtype=bool)
        border[:bw], border[-bw:], border[:, :bw], border[:, -bw:] = True, True, True, True
        samples = lab[border].reshape(-1, 3).astype(np.float32)
        k = 4 if len(samples) >= 64 else 1
        crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
        cv2.setRNGSeed(0)
        _, _, centres = cv2.kmeans(samples, k, None, crit, 2, cv2.KMEANS_PP_CENTERS)
        flat = lab.reshape(-1, 3)
        dist = np.min(np.linalg.norm(flat[:, None, :] - centres[None, :, :], axis=-1), axis=1)
        dist = dist.reshape(sh, sw)
        # the border's spread around its own colour model sets the thresholds
        spread = float(np.percentile(dist[border], 75))
        thr = max(12.0, 2.5 * float(np.percentile(dist[border], 95)))
        t_low = max(6.0, 1.5 * spread)
        prob_fg = dist > t_low
        if (dist > thr).sum() < 0.002 * sh * sw and prob_fg[~border].mean() < 0.02:
            return np.zeros((h, w), dtype=np.float32)
        # GrabCut seeds: border strip = background (unless clearly not background-coloured),
        # interior = probably foreground unless it matches the border colours closely
        gc = np.full((sh, sw), cv2.GC_PR_BGD, dtype=np.uint8)
        gc[prob_fg] = cv2.GC_PR_FGD
        sure_fg = ndimage.binary_erosion(dist > thr, iterations=2)
        gc[sure_fg] = cv2.GC_FGD
        gc[border & (dist <= thr)] = cv2.GC_BGD
        img8 = (small * 255 + 0.5).astype(np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(img8, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
            fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        except cv2.error:  # degenerate colour models (e.g. two-colour images)
            fg = prob_fg
        if not fg.any():
            return np.zeros((h, w), dtype=np.float32)
        fg = ndimage.binary_opening(fg, iterations=1) if fg.sum() > 64 else fg
        if not fg.any():
            return np.zeros((h, w), dtype=np.float32)
        fg = _largest_component(fg)
        fg = _fill_small_holes(fg, self.hole_frac)
        soft = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), 0.7)
        if s < 1:
            soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
        # re-sharpen to a ~1-2 px feathered edge at full resolution
        sigma = max(0.6, 0.6 / s)
        soft = cv2.GaussianBlur(soft, (0, 0), sigma)
        mask = np.clip((soft - 0.5) * 2.5 + 0.5, 0.0, 1.0)
        return mask.astype(np.float32)


# --- crop / centre -------------------------------------------------------------------------


@dataclass
class PreprocessResult:
    """The processed input: square RGBA (straight colour) + mask, object centred at ~85% fill."""

    rgba: np.ndarray  # (S,S,4) float32 [0,1]; background alpha 0
    mask: np.ndarray  # (S,S) float32 [0,1] (== rgba[..., 3])
    used_alpha: bool  # the photo's own alpha channel was used as the mask
    camera: Camera | None = None  # camera 0 of the processed image (crop_camera); None: the convention's


def crop_camera(photo_size: tuple[int, int], bbox: tuple[int, int, int, int], size: int,
                fill: float = FILL) -> Camera:
    """Camera 0 of the square crop :func:`square_crop` makes of a ``photo_size`` = (W, H)
    photo around ``bbox`` = (x0, y0, x1, y1), when the photo was taken by the convention
    camera (elevation 30°, distance 1.5, field of view 49.1° over the long side, looking at
    the photo's centre): the crop lengthens the focal length by long side / crop side and
    moves the principal point to where the photo's centre lands; clamped to
    ``MAX_INPUT_ZOOM`` (the shift scaled with it) and ``MAX_INPUT_SHIFT``."""
    w, h = photo_size
    side = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / fill
    scale = size / side
    zoom = max(w, h) / side
    shift = np.array([(w / 2.0 - (bbox[0] + bbox[2]) / 2.0) * scale,
                      (h / 2.0 - (bbox[1] + bbox[3]) / 2.0) * scale])
    used = float(np.clip(zoom, 1.0, MAX_INPUT_ZOOM))
    shift = np.clip(shift * used / zoom, -MAX_INPUT_SHIFT * size, MAX_INPUT_SHIFT * size)
    return input_camera(size, used, (float(shift[0]), float(shift[1])))


def _meaningful_alpha(alpha: np.ndarray) -> bool:
    """True when the alpha channel separates an object from a transparent background."""
    n = alpha.size
    return bool((alpha < 0.5).sum() > 0.01 * n and (alpha > 0.5).sum() > 0.001 * n)


def fill_background(rgb: np.ndarray, alpha: np.ndarray, thr: float = 0.05) -> np.ndarray:
    """Replace colours where ``alpha < thr`` by the nearest foreground colour (edge extension).

    Keeps bilinear texture look-ups near the silhouette free of background colour.
    """
    bg = alpha < thr
    if not bg.any() or bg.all():
        return rgb
    _, (iy, ix) = ndimage.distance_transform_edt(bg, return_indices=True)
    return rgb[iy, ix]


def square_crop(rgba: np.ndarray, bbox: tuple[int, int, int, int], size: int,
                fill: float = FILL) -> np.ndarray:
    """Crop ``rgba`` (H,W,4, straight colour) to a square around ``bbox`` = (x0,y0,x1,y1)
    (exclusive ends) so the bbox's long side covers ``fill`` of the side; resize to ``size``.

    Outside the photo alpha is 0. Colour is resampled premultiplied, then un-premultiplied.
    """
    h, w = rgba.shape[:2]
    x0, y0, x1, y1 = bbox
    side = max(x1 - x0, y1 - y0) / fill
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    sx0, sy0 = cx - side / 2.0, cy - side / 2.0
    scale = size / side
    out = np.zeros((size, size, 4), dtype=np.float32)
    # source window clipped to the photo (integer pixels)
    ax0, ay0 = max(0, int(np.floor(sx0))), max(0, int(np.floor(sy0)))
    ax1, ay1 = min(w, int(np.ceil(sx0 + side))), min(h, int(np.ceil(sy0 + side)))
    dx0, dy0 = round((ax0 - sx0) * scale), round((ay0 - sy0) * scale)
    dx1, dy1 = round((ax1 - sx0) * scale), round((ay1 - sy0) * scale)
    dx0, dy0 = max(0, dx0), max(0, dy0)
    dx1, dy1 = min(size, dx1), min(size, dy1)
    if dx1 <= dx0 or dy1 <= dy0:
        return out
    src = rgba[ay0:ay1, ax0:ax1].astype(np.float32)
    pre = np.concatenate([src[..., :3] * src[..., 3:4], src[..., 3:4]], axis=-1)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    res = cv2.resize(pre, (dx1 - dx0, dy1 - dy0), interpolation=interp)
    out[dy0:dy1, dx0:dx1] = res
    a = np.clip(out[..., 3], 0.0, 1.0)
    rgb = np.where(a[..., None] > 1e-4, out[..., :3] / np.maximum(a[..., None], 1e-4), 0.0)
    rgb = fill_background(np.clip(rgb, 0, 1), a)
    return np.concatenate([rgb, a[..., None]], axis=-1).astype(np.float32)


def preprocess_image(image: Image.Image, *, remove_bg: bool = True, segmenter: Any = None,
                     size: int = 512) -> PreprocessResult:
    """Photo -> square RGBA (``size`` px) with the object centred at ~85% fill.

    The photo's own alpha channel is used when it is meaningful (some transparent and some
    opaque pixels), whatever ``remove_bg`` says; otherwise ``segmenter`` (default
    :class:`ClassicSegmenter`) finds the object. ``remove_bg=False`` keeps the whole photo
    (mask = 1 inside it) but still centres it in the square. Raises
    ``ImageValidationError('no_object')`` when no foreground is found and
    ``'too_small_object'`` when the object's bounding box is under ``MIN_OBJECT`` px across
    (smaller crops are upsampled to ``size``).
    """
    if image.mode not in ("RGB", "RGBA"):
        image = _to_8bit(image)
    arr = np.asarray(image, dtype=np.float32) / 255.0
    rgb = arr[..., :3]
    h, w = rgb.shape[:2]
    used_alpha = False
    if arr.shape[-1] == 4 and _meaningful_alpha(arr[..., 3]):
        mask = arr[..., 3]
        used_alpha = True
    elif not remove_bg:
        mask = np.ones((h, w), dtype=np.float32)
    else:
        seg = segmenter if segmenter is not None else ClassicSegmenter()
        mask = np.asarray(seg.segment(rgb), dtype=np.float32)
        if mask.shape != (h, w):
            raise ValueError(f"segmenter returned a mask of shape {mask.shape}, expected {(h, w)}")
    hard = mask > 0.5
    if hard.sum() < max(16, 0.001 * h * w):
        raise ImageValidationError(
            "no_object", "no object was found in the photo; use a photo of one object on a plain "
            "background (or a PNG with transparency)", 422)
    if used_alpha:  # keep only the object (drop stray specks), but keep alpha's soft edges
        keep = ndimage.binary_dilation(_largest_component(hard), iterations=3)
        comps, n = ndimage.label(hard)
        if n > 1:
            sizes = ndimage.sum_labels(hard, comps, index=np.arange(1, n + 1))
            big = np.zeros(n + 1, dtype=bool)
            big[1:] = sizes >= 0.02 * sizes.max()
            keep |= ndimage.binary_dilation(big[comps], iterations=3)
        mask = mask * keep
        hard = mask > 0.5
    ys, xs = np.nonzero(hard)
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    extent = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    if extent < MIN_OBJECT:
        raise ImageValidationError(
            "too_small_object", f"the object is only {extent} px across; it must be at least "
            f"{MIN_OBJECT} px (use a closer or larger photo)", 422)
    rgba = np.concatenate([rgb, mask[..., None]], axis=-1)
    out = square_crop(rgba, bbox, size)
    return PreprocessResult(rgba=out, mask=out[..., 3].copy(), used_alpha=used_alpha,
                            camera=crop_camera((w, h), bbox, size))
