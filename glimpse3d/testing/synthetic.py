"""Synthetic objects with a known true shape and colour, for tests and benchmarks.

Each object is a signed-distance function (scene units, negative inside) plus an albedo
function, in a Z-up world (docs/architecture.md, "Cameras"). ``render_truth`` sphere-traces it from any
:class:`~glimpse3d.splat.cameras.Camera` with numpy (vectorised over pixels) and returns the
straight-colour RGBA image and the camera-space depth z (0 where there is no object).
Shading is Lambertian with a fixed world light, so a surface point has the same colour in
every view. ``fit_view0`` scales/moves an object so its view-0 silhouette is centred at ~85%
fill, i.e. exactly what the preprocess stage produces from its photo.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from glimpse3d.splat.cameras import Camera, orbit_camera, similarity_camera

SDF = Callable[[np.ndarray], np.ndarray]
Albedo = Callable[[np.ndarray, np.ndarray], np.ndarray]

LIGHT_DIR = np.array([0.6, 0.35, 0.72]) / np.linalg.norm([0.6, 0.35, 0.72])
AMBIENT = 0.45


@dataclass(frozen=True)
class SyntheticObject:
    """An implicit object: ``sdf(q)`` and ``albedo(q, n)`` in local coordinates (N,3).

    World point ``p`` maps to local ``q = (p - offset) / scale``. ``radius`` bounds the
    local shape. ``lipschitz`` < 1 slows the tracer for inexact distance functions.
    """

    name: str
    sdf: SDF
    albedo: Albedo
    radius: float
    scale: float = 1.0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    lipschitz: float = 1.0

    def world_sdf(self, p: np.ndarray) -> np.ndarray:
        return self.scale * self.sdf((p - self.offset) / self.scale)

    def normals(self, p: np.ndarray, eps: float = 1e-3) -> np.ndarray:
        """Unit outward normals (N,3) from the SDF gradient (central differences)."""
        grads = []
        for k in range(3):
            d = np.zeros(3)
            d[k] = eps
            grads.append(self.world_sdf(p + d) - self.world_sdf(p - d))
        g = np.stack(grads, axis=1)
        return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)

    def colour(self, p: np.ndarray) -> np.ndarray:
        """Shaded RGB in [0,1] (N,3) of world surface points: albedo * (ambient + lambert)."""
        n = self.normals(p)
        alb = self.albedo((p - self.offset) / self.scale, n)
        shade = AMBIENT + (1 - AMBIENT) * np.clip(n @ LIGHT_DIR, 0.0, 1.0)
        return np.clip(alb * shade[:, None], 0.0, 1.0)

    def inside(self, p: np.ndarray) -> np.ndarray:
        return self.world_sdf(p) < 0


# --- primitive SDFs (local coordinates) ---------------------------------------------------


def sdf_sphere(q: np.ndarray, r: float) -> np.ndarray:
    return np.linalg.norm(q, axis=1) - r


def sdf_box(q: np.ndarray, half: np.ndarray) -> np.ndarray:
    d = np.abs(q) - half
    outside = np.linalg.norm(np.maximum(d, 0.0), axis=1)
    return outside + np.minimum(d.max(axis=1), 0.0)


def sdf_cylinder_z(q: np.ndarray, r: float, half_h: float) -> np.ndarray:
    d = np.stack([np.linalg.norm(q[:, :2], axis=1) - r, np.abs(q[:, 2]) - half_h], axis=1)
    return np.minimum(d.max(axis=1), 0.0) + np.linalg.norm(np.maximum(d, 0.0), axis=1)


def sdf_torus_xz(q: np.ndarray, big_r: float, small_r: float) -> np.ndarray:
    """Torus around the Y axis (its ring lies in the XZ plane)."""
    ring = np.linalg.norm(q[:, [0, 2]], axis=1) - big_r
    return np.sqrt(ring**2 + q[:, 1] ** 2) - small_r


def _hsv(h: np.ndarray, s: float, v: np.ndarray | float) -> np.ndarray:
    h = np.mod(h, 1.0)[:, None]
    k = np.mod(np.array([5.0, 3.0, 1.0])[None] + h * 6.0, 6.0)
    v = np.broadcast_to(np.asarray(v, dtype=np.float64), h.shape[:1])[:, None]
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


# --- the catalogue -------------------------------------------------------------------------


def make_sphere() -> SyntheticObject:
    """Textured sphere: a longitude/latitude checker of two hues over a colour gradient."""

    def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
        lon = np.arctan2(q[:, 1], q[:, 0])
        lat = np.arcsin(np.clip(q[:, 2] / np.maximum(np.linalg.norm(q, axis=1), 1e-9), -1, 1))
        chk = (np.floor(lon / (np.pi / 4)) + np.floor(lat / (np.pi / 6))) % 2
        base = _hsv(0.02 + 0.1 * (lat / np.pi + 0.5), 0.75, 0.95)
        other = _hsv(0.58 + 0.05 * lon / np.pi, 0.6, 0.85)
        return np.where(chk[:, None] > 0, base, other)

    return SyntheticObject("sphere", lambda q: sdf_sphere(q, 0.45), albedo, radius=0.46)


def make_cylinder(handle: bool = True) -> SyntheticObject:
    """Mug-like cylinder (radius 0.3, height 0.7) with stripes, dark top, optional handle."""

    def sdf(q: np.ndarray) -> np.ndarray:
        body = sdf_cylinder_z(q, 0.3, 0.35)
        if not handle:
            return body
        return np.minimum(body, sdf_torus_xz(q - np.array([0.0, 0.3, 0.0]), 0.17, 0.04))

    def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
        ang = np.arctan2(q[:, 1], q[:, 0])
        col = np.tile(np.array([0.92, 0.9, 0.85]), (len(q), 1))
        band = np.abs(q[:, 2] - 0.05) < 0.08
        col[band] = _hsv(0.55 + 0.08 * np.sin(3 * ang[band]), 0.7, 0.8)
        logo = (np.abs(ang) < 0.45) & (np.abs(q[:, 2] + 0.17) < 0.09)
        col[logo] = np.array([0.85, 0.2, 0.15])
        top = (q[:, 2] > 0.345) & (np.linalg.norm(q[:, :2], axis=1) < 0.26)
        col[top] = np.array([0.3, 0.17, 0.08])
        return col

    return SyntheticObject("cylinder" if not handle else "mug", sdf, albedo, radius=0.55)


def make_box(yaw_deg: float = 25.0, half_extents: tuple[float, float, float] = (0.35, 0.25, 0.275),
             name: str = "box") -> SyntheticObject:
    """A box (default 0.7 x 0.5 x 0.55) turned by ``yaw_deg`` about Z, one colour per face +
    grid lines."""
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    half = np.asarray(half_extents, dtype=np.float64)
    face_cols = np.array([[0.85, 0.3, 0.25], [0.25, 0.6, 0.85], [0.95, 0.8, 0.3],
                          [0.35, 0.75, 0.4], [0.7, 0.45, 0.8], [0.9, 0.6, 0.4]])

    def to_box(q: np.ndarray) -> np.ndarray:  # world-aligned local -> box axes (q @ rot)
        return np.stack([c * q[:, 0] + s * q[:, 1], c * q[:, 1] - s * q[:, 0], q[:, 2]], axis=1)

    def sdf(q: np.ndarray) -> np.ndarray:
        return sdf_box(to_box(q), half)

    def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
        b = to_box(q)
        r = b / half
        axis = np.argmax(np.abs(r), axis=1)
        sign = (r[np.arange(len(r)), axis] > 0).astype(int)
        col = face_cols[axis * 2 + sign].copy()
        grid = (np.abs(np.sin(b * 18.0)) < 0.12).any(axis=1)
        col[grid] *= 0.55
        return col

    return SyntheticObject(name, sdf, albedo, radius=float(np.linalg.norm(half)) + 0.01)


def make_cone() -> SyntheticObject:
    """An upright cone (base radius 0.4, height 0.75) with rings of colour."""
    base_r, z_base, z_apex = 0.4, -0.3, 0.45
    slope = np.hypot(z_apex - z_base, base_r)

    def sdf(q: np.ndarray) -> np.ndarray:  # a bound (exact on the faces): tracer uses lipschitz
        rho = np.linalg.norm(q[:, :2], axis=1)
        side = (rho - base_r * (z_apex - q[:, 2]) / (z_apex - z_base)) * (z_apex - z_base) / slope
        return np.maximum(side, z_base - q[:, 2])

    def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
        ring = np.floor((q[:, 2] - z_base) / 0.15) % 2
        return np.where(ring[:, None] > 0, _hsv(0.12 + 0 * q[:, 2], 0.7, 0.95),
                        _hsv(0.95 + 0.05 * np.arctan2(q[:, 1], q[:, 0]) / np.pi, 0.6, 0.8))

    return SyntheticObject("cone", sdf, albedo, radius=0.6, lipschitz=0.7)


def make_blob() -> SyntheticObject:
    """A bumpy star-shaped blob r(dir) = 0.4 (1 + 0.12 sin 3θ sin 2φ + ...)."""

    def radius(q: np.ndarray) -> np.ndarray:
        r = np.maximum(np.linalg.norm(q, axis=1), 1e-9)
        theta = np.arctan2(q[:, 1], q[:, 0])
        phi = np.arccos(np.clip(q[:, 2] / r, -1, 1))
        return 0.4 * (1 + 0.12 * np.sin(3 * theta) * np.sin(2 * phi) + 0.08 * np.cos(4 * phi))

    def sdf(q: np.ndarray) -> np.ndarray:
        return np.linalg.norm(q, axis=1) - radius(q)

    def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
        h = 0.08 + 0.25 * (q[:, 2] + 0.5) + 0.05 * np.sin(9 * np.arctan2(q[:, 1], q[:, 0]))
        return _hsv(h, 0.7, 0.9)

    return SyntheticObject("blob", sdf, albedo, radius=0.55, lipschitz=0.6)


def catalogue() -> dict[str, SyntheticObject]:
    """All test objects by name: sphere, cylinder, mug (cylinder + handle), box (0.7 x 0.5 x
    0.55 turned 25°), cube (turned 40°), cone, blob."""
    return {
        "sphere": make_sphere(),
        "cylinder": make_cylinder(handle=False),
        "mug": make_cylinder(handle=True),
        "box": make_box(),
        "cube": make_box(40.0, (0.3, 0.3, 0.3), name="cube"),
        "cone": make_cone(),
        "blob": make_blob(),
    }


# --- rendering -------------------------------------------------------------------------------


def camera_rays(camera: Camera, ssaa: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """World ray origin (3,) and unit directions (H*ssaa, W*ssaa, 3) through pixel centres."""
    h, w = camera.height * ssaa, camera.width * ssaa
    u = (np.arange(w) + 0.5) / ssaa
    v = (np.arange(h) + 0.5) / ssaa
    uu, vv = np.meshgrid(u, v)
    d_cam = np.stack([(uu - camera.cx) / camera.fx, (vv - camera.cy) / camera.fy,
                      np.ones_like(uu)], axis=-1)
    rot = camera.w2c[:3, :3]
    d_world = d_cam @ rot  # R^T d
    d_world /= np.linalg.norm(d_world, axis=-1, keepdims=True)
    return camera.center, d_world


def _trace(obj: SyntheticObject, origin: np.ndarray, dirs: np.ndarray,
           max_steps: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Sphere-trace rays (N,3); returns hit mask (N,) and ray parameter t (N,)."""
    n = len(dirs)
    bound = obj.scale * obj.radius
    oc = origin - obj.offset
    b = dirs @ oc
    c = oc @ oc - bound**2
    disc = b * b - c
    hit = np.zeros(n, dtype=bool)
    t = np.zeros(n)
    cand = np.nonzero(disc > 0)[0]
    if len(cand) == 0:
        return hit, t
    sq = np.sqrt(disc[cand])
    t_near = np.maximum(-b[cand] - sq, 0.0)
    t_far = -b[cand] + sq
    tt = t_near.copy()
    active = np.arange(len(cand))
    eps = 2e-4 * max(obj.scale, 1e-3)
    for _ in range(max_steps):
        if len(active) == 0:
            break
        p = origin + dirs[cand[active]] * tt[active, None]
        d = obj.world_sdf(p)
        done = d < eps
        hit[cand[active[done]]] = True
        tt[active[~done]] += d[~done] * obj.lipschitz
        keep = ~done & (tt[active] < t_far[active])
        active = active[keep]
    t[cand] = tt
    # Newton steps along the rays sharpen the hit point (the tracer stops eps away from it)
    idx = np.nonzero(hit)[0]
    for _ in range(2):
        if len(idx) == 0:
            break
        p = origin + dirs[idx] * t[idx, None]
        g_d = np.sum(obj.normals(p) * dirs[idx], axis=1)
        t[idx] -= obj.world_sdf(p) / np.minimum(g_d, -0.2)
    return hit, t


def render_truth(obj: SyntheticObject, camera: Camera, ssaa: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Render the true object: RGBA (H,W,4) float32 straight colour (alpha = coverage) and
    camera-space depth z (H,W) float32, 0 where there is no object.

    With ``ssaa`` > 1 each pixel averages ssaa² samples (colour premultiplied, then
    un-premultiplied); depth is the mean z of the covering samples.
    """
    origin, dirs = camera_rays(camera, ssaa)
    hs, ws = dirs.shape[:2]
    flat = dirs.reshape(-1, 3)
    hit, t = _trace(obj, origin, flat)
    rgb = np.zeros((hs * ws, 3))
    z = np.zeros(hs * ws)
    if hit.any():
        p = origin + flat[hit] * t[hit, None]
        rgb[hit] = obj.colour(p)
        z[hit] = (p @ camera.w2c[2, :3]) + camera.w2c[2, 3]
    a = hit.astype(np.float64)
    h, w = camera.height, camera.width
    if ssaa > 1:
        def pool(x: np.ndarray) -> np.ndarray:
            return x.reshape(h, ssaa, w, ssaa, -1).mean(axis=(1, 3))

        a_p = pool(a.reshape(hs, ws, 1))[..., 0]
        rgb_p = pool(rgb.reshape(hs, ws, 3) * a.reshape(hs, ws, 1))
        z_p = pool((z * a).reshape(hs, ws, 1))[..., 0]
        rgb_img = np.where(a_p[..., None] > 0, rgb_p / np.maximum(a_p[..., None], 1e-9), 0.0)
        depth = np.where(a_p > 0, z_p / np.maximum(a_p, 1e-9), 0.0)
        alpha = a_p
    else:
        rgb_img, alpha, depth = rgb.reshape(h, w, 3), a.reshape(h, w), z.reshape(h, w)
    rgba = np.concatenate([rgb_img, alpha[..., None]], axis=-1).astype(np.float32)
    return rgba, depth.astype(np.float32)


def silhouette(obj: SyntheticObject, camera: Camera) -> np.ndarray:
    """Boolean (H,W) coverage of the object at pixel centres."""
    origin, dirs = camera_rays(camera)
    hit, _ = _trace(obj, origin, dirs.reshape(-1, 3))
    return hit.reshape(camera.height, camera.width)


def fit_view0(obj: SyntheticObject, fill: float = 0.85, size: int = 256,
              iterations: int = 5) -> SyntheticObject:
    """Scale the object about the origin and shift it along world Y/Z so its silhouette from
    view 0 (elevation 30°, azimuth 0°) has its bbox centred with long side ``fill`` x size.
    """
    cam = orbit_camera(30.0, 0.0, size=size)
    cur = obj
    for _ in range(iterations):
        sil = silhouette(cur, cam)
        if not sil.any():
            raise ValueError(f"object {obj.name} is not visible from view 0")
        ys, xs = np.nonzero(sil)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        long_side = max(x1 - x0, y1 - y0)
        k = fill * size / long_side
        du = size / 2 - (x0 + x1) / 2  # px to move right
        dv = size / 2 - (y0 + y1) / 2  # px to move down
        px_to_world = cam.distance / cam.fx
        off = cur.offset * k
        off = off + np.array([0.0, du * px_to_world, -dv * px_to_world / np.cos(np.radians(30))])
        cur = replace(cur, scale=cur.scale * k, offset=off)
    return cur


def synthetic_photo(obj: SyntheticObject, size: int = 512, background: tuple[float, float, float]
                    = (0.94, 0.93, 0.91), seed: int = 0, ssaa: int = 2
                    ) -> tuple[Image.Image, np.ndarray]:
    """A photo of the object from view 0 on a plain light background with a soft gradient and
    mild noise; returns the RGB Pillow image and the true coverage mask (H,W) float32."""
    cam = orbit_camera(30.0, 0.0, size=size)
    rgba, _ = render_truth(obj, cam, ssaa=ssaa)
    yy = np.linspace(0.0, 1.0, size)[:, None, None]
    bg = np.asarray(background)[None, None, :] * (1.0 - 0.08 * yy)
    rng = np.random.default_rng(seed)
    a = rgba[..., 3:4]
    img = rgba[..., :3] * a + bg * (1 - a) + rng.normal(0.0, 0.006, (size, size, 3))
    img8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(img8, "RGB"), rgba[..., 3].copy()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def silhouette_iou(a: np.ndarray, b: np.ndarray, thr: float = 0.5) -> float:
    """Intersection over union of two masks/alphas thresholded at ``thr``."""
    ma, mb = np.asarray(a) > thr, np.asarray(b) > thr
    union = (ma | mb).sum()
    return float((ma & mb).sum() / union) if union else 1.0


def make_sample_photos(out_dir: str) -> dict[str, str]:
    """Write the bundled sample photos (``glimpse3d/samples``): ``mug.png`` (rendered mug on a
    plain light background, no alpha), ``coffee.jpg`` (scikit-image's ``coffee`` photo, cropped)
    and ``toy.png`` (a rendered bumpy toy with a real alpha channel). Returns name -> path."""
    from pathlib import Path

    from skimage import data as skdata

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    # mug: object at ~62% of the frame, soft vertical gradient, faint contact shadow
    size = 640
    mug = fit_view0(make_cylinder(handle=True), fill=0.62, size=256)
    cam = orbit_camera(30.0, 0.0, size=size)
    rgba, _ = render_truth(mug, cam, ssaa=2)
    yy, xx = np.mgrid[0:size, 0:size] / size
    bg = np.array([0.95, 0.94, 0.92])[None, None] * (1.0 - 0.07 * yy[..., None])
    ys, xs = np.nonzero(rgba[..., 3] > 0.5)
    cy, cx = ys.max() / size, xs.mean() / size
    shadow = np.exp(-(((xx - cx) / 0.22) ** 2 + ((yy - cy) / 0.035) ** 2)) * 0.18
    bg = bg * (1.0 - shadow[..., None])
    a = rgba[..., 3:4]
    img = rgba[..., :3] * a + bg * (1 - a)
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB").save(
        out / "mug.png", optimize=True)
    paths["mug"] = str(out / "mug.png")
    # coffee: scikit-image's cup photo (600x400), trimmed to the cup and saucer
    coffee = skdata.coffee()[:, 10:570]
    Image.fromarray(coffee).save(out / "coffee.jpg", quality=90)
    paths["coffee"] = str(out / "coffee.jpg")
    # toy: bumpy blob with a transparent background
    toy = fit_view0(make_blob(), fill=0.7, size=256)
    rgba, _ = render_truth(toy, orbit_camera(30.0, 0.0, size=600), ssaa=2)
    Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA").save(
        out / "toy.png", optimize=True)
    paths["toy"] = str(out / "toy.png")
    return paths


def fit_similarity(render_alpha: Callable[[Camera], np.ndarray], truth_mask: np.ndarray,
                   cam0: Camera, iterations: int = 6) -> tuple[float, np.ndarray]:
    """The quality protocol's alignment of a model to the truth: a uniform scale about the
    origin and a shift (world units, perpendicular to view 0's ray) fitted so the model's
    view-0 silhouette has the truth's area and centroid (all a photo fixes).
    ``render_alpha(camera) -> (H,W) alpha`` renders the model; apply the result with
    :func:`~glimpse3d.splat.cameras.similarity_camera`."""
    ty, tx = np.nonzero(truth_mask)
    scale, shift = 1.0, np.zeros(3)
    right, down = cam0.w2c[0, :3], cam0.w2c[1, :3]
    px_to_world = cam0.distance / cam0.fx
    for _ in range(iterations):
        m = render_alpha(similarity_camera(cam0, scale, shift)) > 0.5
        if not m.any():
            break
        my, mx = np.nonzero(m)
        scale *= float(np.sqrt(truth_mask.sum() / m.sum()))
        shift = shift + px_to_world * ((tx.mean() - mx.mean()) * right + (ty.mean() - my.mean()) * down)
    return scale, shift
