"""Quality benchmark: novel-view quality of the default pipeline on objects with a known truth.

Protocol (the pose-aligned one of the single-image-to-3D papers, issue 14):

1. every object is a textured triangle mesh in the project's world (Z-up, bounding sphere of
   radius 0.5 at the origin); view 0 (elevation 30°, azimuth 0°) is ray-cast at 512 px with
   alpha (trimesh + embreex) and is the input photo (RGBA PNG);
2. ``glimpse3d``'s runner runs every stage on it (default settings, ``--iterations`` refinement
   iterations);
3. a similarity transform of the model (uniform scale about the origin, then a shift
   perpendicular to view 0's ray through the origin) is fitted so the model's view-0
   silhouette matches the truth's (area and centroid) — the input fixes the object only up
   to that transform, since preprocessing re-centres and re-scales it;
4. each version v0..vN is scored at the 15 other ring views (elevation 30°, azimuth 22.5°·k)
   and 2 off-ring views (elevation 10° and 50°) at 256 px: silhouette IoU (alpha > 0.5),
   PSNR of the whole image composited on white (as SyncDreamer's ``eval_nvs.py``) and SSIM.

Objects: the real meshes of ``../shared/eval/meshes`` when that folder exists (Spot the cow
with its texture; the Utah teapot with a procedural texture), plus synthetic objects built
from signed-distance functions (marching cubes -> mesh) that cover elongated, boxy (several
yaws, incl. face-on), flat, thin-part, stacked, handled, furniture and organic shapes.

    python benchmarks/bench_quality.py [--objects cow table ...] [--iterations 3]
        [--workers 2] [--proxy-only] [--out benchmarks/results/quality.json]

``--proxy-only`` scores the classic multiview proxy instead of the trained model (seconds
per object: the fast loop for shape priors). Results (JSON + a markdown table) and contact
images (truth over model, input view then 6 azimuths) go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glimpse3d.splat.cameras import similarity_camera
from glimpse3d.testing.synthetic import fit_similarity

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
INPUT_SIZE = 512
SCORE_SIZE = 256
RING = [(30.0, 22.5 * k) for k in range(1, 16)]
OFF_RING = [(10.0, 45.0), (50.0, 225.0)]
SCORED = RING + OFF_RING
CONTACT = [(30.0, 0.0), (30.0, 45.0), (30.0, 90.0), (30.0, 135.0), (30.0, 180.0),
           (30.0, 270.0), (50.0, 225.0)]


def eval_dir() -> Path | None:
    """``../shared/eval`` next to the checkout (or ``$GLIMPSE3D_EVAL``), if present."""
    env = os.environ.get("GLIMPSE3D_EVAL")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "eval", ROOT.parent.parent / "shared" / "eval"]
    return next((c for c in candidates if (c / "meshes").is_dir()), None)


# ------------------------------------------------------------------------- objects
@dataclass
class TruthObject:
    """A mesh (world units, Z-up, normalised) and a colour function of surface hits:
    ``colour(points (N,3), triangle ids (N,), barycentric (N,3)) -> RGB (N,3) in [0,1]``."""

    name: str
    kind: str
    mesh: object  # trimesh.Trimesh
    colour: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _normalise(mesh: object, yaw_deg: float = 0.0, y_up: bool = False) -> object:
    """Z-up (from Y-up if asked), turned by ``yaw_deg`` about Z, bbox centred at the origin,
    bounding sphere radius 0.5 (``../shared/eval/README.md``)."""
    import trimesh

    m = mesh.copy()
    if y_up:
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    m.apply_transform(trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1]))
    m.apply_translation(-m.bounds.mean(axis=0))
    m.apply_scale(0.5 / float(np.linalg.norm(m.vertices, axis=1).max()))
    return m


def _cow(root: Path) -> TruthObject:
    import trimesh

    scene = trimesh.load(root / "meshes" / "cow" / "cow.obj", process=False)
    mesh = scene if isinstance(scene, trimesh.Trimesh) else scene.dump(concatenate=True)
    tex = np.asarray(mesh.visual.material.image.convert("RGB"), dtype=np.float32) / 255.0
    uv = np.asarray(mesh.visual.uv, dtype=np.float64)
    mesh = _normalise(mesh, yaw_deg=-60.0, y_up=True)
    h, w = tex.shape[:2]

    def colour(p: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
        st = np.einsum("nk,nkj->nj", bary, uv[mesh.faces[tri]])
        x = np.clip(st[:, 0] % 1.0 * (w - 1), 0, w - 1)
        y = np.clip((1.0 - st[:, 1] % 1.0) * (h - 1), 0, h - 1)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
        bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
        return top * (1 - fy) + bottom * fy

    return TruthObject("cow", "organic (real mesh, texture)", mesh, colour)


def _teapot(root: Path) -> TruthObject:
    import trimesh

    mesh = _normalise(trimesh.load(root / "meshes" / "teapot.obj", process=True, force="mesh"),
                      yaw_deg=30.0, y_up=True)

    def colour(p: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
        # glazed bands by height, a two-hue checker by angle, a dark lid
        from glimpse3d.testing.synthetic import _hsv

        ang = np.arctan2(p[:, 1], p[:, 0])
        band = np.floor((p[:, 2] + 0.5) / 0.08) % 2
        chk = (np.floor(ang / (np.pi / 6)) + band) % 2
        col = np.where(chk[:, None] > 0, _hsv(0.58 + 0.1 * p[:, 2], 0.55, 0.85),
                       _hsv(0.08 + 0.05 * np.sin(3 * ang), 0.65, 0.95))
        col[p[:, 2] > 0.17] = [0.25, 0.2, 0.35]
        return col

    return TruthObject("teapot", "handles (real mesh, procedural texture)", mesh, colour)


def _sdf_object(name: str, kind: str, obj: object, grid: int = 160) -> TruthObject:
    """Mesh of a synthetic SDF object (marching cubes), coloured by its shaded albedo."""
    import trimesh
    from skimage import measure

    r = obj.radius * obj.scale
    axis = np.linspace(-r, r, grid) + 0.0
    gx, gy, gz = np.meshgrid(axis, axis, axis, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1) + obj.offset
    vals = obj.world_sdf(pts).reshape(grid, grid, grid)
    step = float(axis[1] - axis[0])
    verts, faces, _, _ = measure.marching_cubes(vals, 0.0, spacing=(step,) * 3)
    mesh = trimesh.Trimesh(verts + axis[0] + obj.offset, faces[:, ::-1], process=True)
    if mesh.volume < 0:
        mesh.invert()
    sphere_r = float(np.linalg.norm(mesh.vertices - mesh.bounds.mean(axis=0), axis=1).max())
    centre, k = mesh.bounds.mean(axis=0), 0.5 / sphere_r
    mesh.apply_translation(-centre)
    mesh.apply_scale(k)

    def colour(p: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
        return obj.colour(p / k + centre)

    return TruthObject(name, kind, mesh, colour)


def synthetic_objects() -> dict[str, tuple[str, object]]:
    """name -> (class, SyntheticObject): 16 objects of the classes issue 14 lists."""
    from glimpse3d.testing import synthetic as S

    def rot(q: np.ndarray, yaw: float) -> np.ndarray:
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        return np.stack([c * q[:, 0] + s * q[:, 1], c * q[:, 1] - s * q[:, 0], q[:, 2]], 1)

    def box(c: tuple, h: tuple, r: float = 0.0) -> Callable:
        c_, h_ = np.asarray(c, float), np.asarray(h, float) - r
        return lambda q: S.sdf_box(q - c_, h_) - r

    def cyl(c: tuple, r: float, hh: float) -> Callable:
        c_ = np.asarray(c, float)
        return lambda q: S.sdf_cylinder_z(q - c_, r, hh)

    def ell(c: tuple, a: tuple) -> Callable:
        c_, a_ = np.asarray(c, float), np.asarray(a, float)

        def f(q: np.ndarray) -> np.ndarray:
            d = q - c_
            k0 = np.linalg.norm(d / a_, axis=1)
            k1 = np.linalg.norm(d / a_**2, axis=1)
            return k0 * (k0 - 1) / np.maximum(k1, 1e-9)
        return f

    def plain(rgb: tuple, stripes: float = 0.0) -> Callable:
        col = np.asarray(rgb, float)

        def f(q: np.ndarray) -> np.ndarray:
            out = np.tile(col, (len(q), 1))
            if stripes:
                out *= (0.75 + 0.25 * (np.floor(q[:, :1] * stripes + q[:, 2:3] * stripes) % 2))
            return out
        return f

    def compose(name: str, parts: list[tuple[Callable, Callable]], yaw: float, radius: float,
                lipschitz: float = 0.8) -> object:
        def sdf(q: np.ndarray) -> np.ndarray:
            ql = rot(q, yaw)
            return np.min(np.stack([p[0](ql) for p in parts]), axis=0)

        def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
            ql = rot(q, yaw)
            k = np.argmin(np.stack([p[0](ql) for p in parts]), axis=0)
            cols = np.stack([p[1](ql) for p in parts])
            return cols[k, np.arange(len(q))]

        return S.SyntheticObject(name, sdf, albedo, radius=radius, lipschitz=lipschitz)

    red, blue, yellow, green = (0.85, 0.3, 0.25), (0.25, 0.5, 0.85), (0.95, 0.8, 0.3), (0.3, 0.7, 0.4)
    wood, dark, cream = (0.6, 0.42, 0.25), (0.2, 0.2, 0.25), (0.92, 0.88, 0.8)
    legs = [(cyl((sx * 0.3, sy * 0.18, -0.1), 0.025, 0.2), plain(dark))
            for sx in (-1, 1) for sy in (-1, 1)]
    chair_legs = [(cyl((sx * 0.17, sy * 0.17, -0.2), 0.022, 0.18), plain(dark))
                  for sx in (-1, 1) for sy in (-1, 1)]
    out: dict[str, tuple[str, object]] = {
        "shoe": ("elongated", compose("shoe", [
            (box((0.0, 0.0, -0.12), (0.42, 0.14, 0.04), 0.03), plain(cream)),
            (ell((-0.1, 0.0, -0.02), (0.3, 0.13, 0.12)), plain(blue, 8)),
            (ell((0.22, 0.0, -0.06), (0.18, 0.12, 0.07)), plain(blue))], 35.0, 0.6)),
        "bus": ("elongated boxy", compose("bus", [
            (box((0.0, 0.0, 0.02), (0.5, 0.16, 0.17), 0.03), plain(yellow, 10)),
            (box((0.0, 0.0, 0.08), (0.505, 0.165, 0.05)), plain(dark)),
            *[(cyl((x, sy * 0.15, -0.16), 0.055, 0.03), plain(dark))
              for x in (-0.32, 0.3) for sy in (-1, 1)]], 60.0, 0.7)),
        "crate-face-on": ("boxy, face-on", compose("crate-face-on", [
            (box((0, 0, 0), (0.3, 0.25, 0.22)), plain(wood, 9))], 0.0, 0.5)),
        "crate-30": ("boxy, yaw 30", compose("crate-30", [
            (box((0, 0, 0), (0.32, 0.2, 0.2)), plain(red, 9))], 30.0, 0.5)),
        "cube-45": ("boxy, yaw 45", compose("cube-45", [
            (box((0, 0, 0), (0.25, 0.25, 0.25)), plain(green, 7))], 45.0, 0.5)),
        "toaster": ("boxy, rounded, yaw 10", compose("toaster", [
            (box((0, 0, 0), (0.2, 0.32, 0.22), 0.06), plain((0.75, 0.75, 0.8), 6)),
            (box((0.0, -0.08, 0.22), (0.14, 0.03, 0.02)), plain(dark)),
            (box((0.0, 0.08, 0.22), (0.14, 0.03, 0.02)), plain(dark))], 10.0, 0.5)),
        "book": ("flat", compose("book", [
            (box((0, 0, 0), (0.35, 0.26, 0.045)), plain(blue, 12)),
            (box((0.0, 0.0, 0.0), (0.345, 0.255, 0.035)), plain(cream))], 20.0, 0.5)),
        "plate": ("flat, round", compose("plate", [
            (cyl((0, 0, 0), 0.45, 0.025), plain(cream, 10)),
            (cyl((0, 0, 0.03), 0.25, 0.01), plain(red))], 0.0, 0.5)),
        "table": ("thin parts (legs)", compose("table", [
            (box((0, 0, 0.12), (0.36, 0.24, 0.025)), plain(wood, 10)), *legs], 15.0, 0.55)),
        "chair": ("thin parts, furniture", compose("chair", [
            (box((0, 0, -0.01), (0.2, 0.2, 0.025)), plain(red)),
            (box((-0.18, 0, 0.2), (0.025, 0.2, 0.2)), plain(red, 8)), *chair_legs], 200.0, 0.6)),
        "stack": ("stacked", compose("stack", [
            (cyl((0, 0, -0.2), 0.35, 0.1), plain(blue, 8)),
            (cyl((0.02, 0.0, -0.02), 0.24, 0.08), plain(yellow)),
            (box((0.04, 0.03, 0.13), (0.1, 0.08, 0.07)), plain(red, 10))], 0.0, 0.6)),
        "mug": ("handle", compose("mug", [
            (cyl((0, 0, 0), 0.25, 0.3), plain(cream, 7)),
            (lambda q: S.sdf_torus_xz(q - np.array([0.0, 0.27, 0.0]), 0.15, 0.035),
             plain(red))], 50.0, 0.55)),
        "kettle": ("handles, round", compose("kettle", [
            (ell((0, 0, -0.05), (0.3, 0.3, 0.24)), plain((0.7, 0.3, 0.3), 8)),
            (lambda q: S.sdf_torus_xz(np.stack([q[:, 1], q[:, 0], q[:, 2] - 0.2], 1), 0.16, 0.03),
             plain(dark)),
            (lambda q: S.sdf_cylinder_z((q - np.array([0.32, 0, 0.02])) @ np.array(
                [[0.8, 0, 0.6], [0, 1, 0], [-0.6, 0, 0.8]]), 0.04, 0.12), plain(dark))],
            -40.0, 0.6)),
        "sofa": ("furniture, elongated", compose("sofa", [
            (box((0.02, 0, -0.1), (0.2, 0.45, 0.09), 0.03), plain(green, 6)),
            (box((-0.17, 0, 0.02), (0.06, 0.45, 0.2), 0.03), plain(green)),
            (box((0.0, 0.42, -0.03), (0.2, 0.05, 0.14), 0.03), plain(green)),
            (box((0.0, -0.42, -0.03), (0.2, 0.05, 0.14), 0.03), plain(green))], -25.0, 0.6)),
        "duck": ("organic", compose("duck", [
            (ell((0, 0, -0.08), (0.34, 0.24, 0.2)), plain(yellow)),
            (lambda q: S.sdf_sphere(q - np.array([0.2, 0, 0.16]), 0.14), plain(yellow)),
            (ell((0.36, 0, 0.14), (0.09, 0.06, 0.03)), plain((0.95, 0.5, 0.15)))], 70.0, 0.6)),
        "bottle": ("round, thin neck", compose("bottle", [
            (cyl((0, 0, -0.1), 0.18, 0.25), plain(green, 9)),
            (cyl((0, 0, 0.25), 0.06, 0.12), plain(dark))], 0.0, 0.5)),
    }
    return out


def catalogue() -> dict[str, Callable[[], TruthObject]]:
    """name -> builder of every benchmark object (real meshes only when ``../shared/eval``
    is present)."""
    out: dict[str, Callable[[], TruthObject]] = {}
    root = eval_dir()
    if root is not None:
        out["cow"] = lambda: _cow(root)
        out["teapot"] = lambda: _teapot(root)
    for name, (kind, _) in synthetic_objects().items():
        out[name] = lambda name=name, kind=kind: _sdf_object(
            name, kind, synthetic_objects()[name][1])
    return out


# ------------------------------------------------------------------------- rendering
def render_truth(obj: TruthObject, camera: object, ssaa: int = 2) -> np.ndarray:
    """Ray-cast RGBA (H,W,4) float32, straight colour, alpha = coverage (``ssaa``² rays/px)."""
    from trimesh.triangles import points_to_barycentric

    from glimpse3d.testing.synthetic import camera_rays

    h, w = camera.height, camera.width
    origin, dirs = camera_rays(camera, ssaa)
    d = dirs.reshape(-1, 3)
    o = np.broadcast_to(origin, d.shape)
    tri, ray, loc = obj.mesh.ray.intersects_id(o, d, multiple_hits=False, return_locations=True)
    rgb = np.zeros((len(d), 3))
    a = np.zeros(len(d))
    if len(tri):
        bary = points_to_barycentric(obj.mesh.triangles[tri], loc)
        rgb[ray] = np.clip(obj.colour(loc, tri, bary), 0, 1)
        a[ray] = 1.0
    rgb = (rgb * a[:, None]).reshape(h, ssaa, w, ssaa, 3).mean(axis=(1, 3))
    a = a.reshape(h, ssaa, w, ssaa).mean(axis=(1, 3))
    rgb = np.where(a[..., None] > 0, rgb / np.maximum(a[..., None], 1e-9), 0.0)
    return np.concatenate([rgb, a[..., None]], -1).astype(np.float32)


Renderer = Callable[[object], tuple[np.ndarray, np.ndarray]]  # camera -> (premul rgb, alpha)


def score_views(render_fn: Renderer, truths: list[np.ndarray], cams: list[object]
                ) -> dict[str, list[float]]:
    from glimpse3d.pipeline.metrics import psnr, silhouette_iou, ssim

    out: dict[str, list[float]] = {"iou": [], "psnr": [], "ssim": []}
    for truth, cam in zip(truths, cams, strict=True):
        rgb, alpha = render_fn(cam)
        pred = np.clip(rgb + (1 - alpha[..., None]), 0, 1)
        ref = truth[..., :3] * truth[..., 3:4] + (1 - truth[..., 3:4])
        out["iou"].append(silhouette_iou(alpha, truth[..., 3]))
        out["psnr"].append(psnr(pred, ref))
        out["ssim"].append(ssim(pred, ref))
    return out


def _splat_renderer(model: object) -> Renderer:
    import torch

    from glimpse3d.splat.rasterizer import render

    def fn(cam: object) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = render(model, cam)
        return out.rgb.numpy(), out.alpha.numpy()
    return fn


def _proxy_renderer(proxy: object) -> Renderer:
    from glimpse3d.pipeline.multiview import render_proxy

    def fn(cam: object) -> tuple[np.ndarray, np.ndarray]:
        rgba, _ = render_proxy(proxy, cam)
        return rgba[..., :3] * rgba[..., 3:4], rgba[..., 3]
    return fn


def _png(rgba: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA").save(buf, "PNG")
    return buf.getvalue()


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return (np.clip(rgb + (1 - alpha[..., None]), 0, 1) * 255 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- running
def run_object(name: str, iterations: int, proxy_only: bool, contact_dir: str,
               prior: str = "auto") -> dict:
    """Everything for one object; returns its result dict (picklable, for the pool)."""
    from PIL import Image

    from glimpse3d.splat.cameras import orbit_camera

    t0 = time.perf_counter()
    cams = [orbit_camera(e, a, size=SCORE_SIZE) for e, a in SCORED]
    cam0 = orbit_camera(30.0, 0.0, size=SCORE_SIZE)
    cache = RESULTS / "truth-cache" / f"{name}.npz"
    if cache.exists():
        with np.load(cache) as z:
            kind, photo, truth0, truths = str(z["kind"]), z["photo"], z["truth0"], list(z["truths"])
    else:
        obj = catalogue()[name]()
        kind = obj.kind
        photo = render_truth(obj, orbit_camera(30.0, 0.0, size=INPUT_SIZE))
        truths = [render_truth(obj, c) for c in cams]
        truth0 = render_truth(obj, cam0)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, kind=kind, photo=photo, truth0=truth0, truths=np.stack(truths))
    truth_s = time.perf_counter() - t0
    versions: dict[str, object] = {}
    report: dict = {}
    if proxy_only:
        from glimpse3d.pipeline.preprocess import preprocess_image, validate_image
        from glimpse3d.pipeline.proxy import build_proxy

        start = time.perf_counter()
        pre = preprocess_image(validate_image(_png(photo)))
        proxy = build_proxy(pre.rgba, shape_prior=prior, camera=pre.camera)
        versions["proxy"] = _proxy_renderer(proxy)
        report = {"total_seconds": time.perf_counter() - start, "shape": proxy.shape}
    else:
        from glimpse3d.config import Settings
        from glimpse3d.db.repository import open_repository
        from glimpse3d.pipeline.runner import PipelineRunner
        from glimpse3d.splat.formats import model_from_bytes
        from glimpse3d.storage.base import MODELS
        from glimpse3d.storage.local import LocalStorage

        with tempfile.TemporaryDirectory(prefix=f"bq-{name}-") as tmp:
            settings = Settings(data_dir=Path(tmp) / "data", proxy_shape=prior)
            repo = open_repository(settings.resolved_database_url)
            storage = LocalStorage(Path(tmp) / "storage")
            runner = PipelineRunner(repo, storage, settings)
            start = time.perf_counter()
            project = runner.ingest(_png(photo), f"{name}.png", name=name)
            ingest_s = time.perf_counter() - start
            rep = runner.run_all(project["id"], iterations=iterations)
            total = time.perf_counter() - start
            for row in repo.list_models(project["id"]):
                model = model_from_bytes(storage.get_bytes(MODELS, row["model_key"]), "ply")
                versions[f"v{row['version']}"] = _splat_renderer(model)
            report = {"total_seconds": total,
                      "stage_seconds": {"preprocess": ingest_s, **rep["stage_seconds"]},
                      "iterations": rep["iterations"]}
    result: dict = {"name": name, "kind": kind, "truth_seconds": truth_s, **report,
                    "versions": {}}
    contact_rows = [np.concatenate([_on_white(t[..., :3] * t[..., 3:4], t[..., 3])
                                    for t in [truth0] + [truths[SCORED.index(v)]
                                                         for v in CONTACT[1:]]], 1)]
    for version, fn in versions.items():
        scale, shift = fit_similarity(lambda c, fn=fn: fn(c)[1], truth0[..., 3] > 0.5, cam0)
        aligned = [similarity_camera(c, scale, shift) for c in cams]
        scores = score_views(fn, truths, aligned)
        result["versions"][version] = {
            "scale": scale, **{k: float(np.mean(v)) for k, v in scores.items()},
            "per_view": scores}
        if version in ("proxy", "v0", list(versions)[-1]):
            row = [_on_white(*fn(similarity_camera(cam0, scale, shift)))]
            row += [_on_white(*fn(aligned[SCORED.index(v)])) for v in CONTACT[1:]]
            contact_rows.append(np.concatenate(row, 1))
    sheet = np.concatenate(contact_rows, 0)
    Image.fromarray(sheet).resize((sheet.shape[1] // 2, sheet.shape[0] // 2),
                                  Image.LANCZOS).save(Path(contact_dir) / f"{name}.png")
    return result


def _run_job(job: tuple) -> dict:
    return run_object(*job)


def table(results: list[dict]) -> str:
    """Markdown table: per object and mean, every version. Where refinement stopped early
    (an update was rejected, the model did not change) the later versions repeat the last
    one, marked ``=``."""
    def order(v: str) -> int:
        return int(v[1:]) if v[1:].isdigit() else -1

    versions = sorted({v for r in results for v in r["versions"]}, key=order)

    def scores(r: dict, v: str) -> tuple[dict, bool]:
        if v in r["versions"]:
            return r["versions"][v], False
        have = [w for w in r["versions"] if order(w) <= order(v)]
        return r["versions"][max(have, key=order)], True

    head = "| object | class | " + " | ".join(
        f"{v} IoU | {v} PSNR | {v} SSIM" for v in versions) + " | s |"
    lines = [head, "|" + "---|" * (3 * len(versions) + 3)]
    for r in results:
        cells = []
        for v in versions:
            s, same = scores(r, v)
            mark = "=" if same else ""
            cells.append(f"{mark}{s['iou']:.3f} | {mark}{s['psnr']:.2f} | {mark}{s['ssim']:.3f}")
        lines.append(f"| {r['name']} | {r['kind']} | " + " | ".join(cells)
                     + f" | {r['total_seconds']:.1f} |")
    means = []
    for v in versions:
        rs = [scores(r, v)[0] for r in results]
        means.append(f"**{np.mean([s['iou'] for s in rs]):.3f}** | **{np.mean([s['psnr'] for s in rs]):.2f}**"
                     f" | **{np.mean([s['ssim'] for s in rs]):.3f}**")
    lines.append("| **mean** | | " + " | ".join(means)
                 + f" | {np.median([r['total_seconds'] for r in results]):.1f} (median) |")
    return "\n".join(lines)


def _reprint(path: Path) -> None:
    """Print the table of a saved JSON result again (``--table FILE``)."""
    print(table(json.loads(path.read_text())))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        _reprint(Path(sys.argv[2]))
        return
    names = list(catalogue())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", nargs="+", default=names, choices=names)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="objects run in a pool of this size")
    parser.add_argument("--proxy-only", action="store_true",
                        help="score the classic proxy (no training): fast shape-prior loop")
    parser.add_argument("--prior", default="auto", help="the classic proxy's shape prior")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: results/)")
    args = parser.parse_args()
    tag = f"proxy-{args.prior}" if args.proxy_only else f"it{args.iterations}"
    out = args.out or RESULTS / f"quality-{tag}.json"
    contact = out.with_suffix("")
    contact.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(n, args.iterations, args.proxy_only, str(contact), args.prior) for n in args.objects]
    results: list[dict] = []

    def report(r: dict) -> None:
        results.append(r)
        print(f"{r['name']:<14} " + "  ".join(
            f"{v}: IoU {s['iou']:.3f} PSNR {s['psnr']:.2f} SSIM {s['ssim']:.3f}"
            for v, s in r["versions"].items()) + f"  ({r['total_seconds']:.1f} s)", flush=True)

    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.workers, maxtasksperchild=1) as pool:
            for r in pool.imap(_run_job, jobs, chunksize=1):
                report(r)
    else:
        for j in jobs:
            report(run_object(*j))
    md = table(results)
    print(md)
    print(f"\n{len(results)} objects in {time.perf_counter() - start:.0f} s wall; contact images "
          f"in {contact}")
    out.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(md + "\n")


if __name__ == "__main__":
    if "--workers" in sys.argv:  # one numba/torch thread per worker process
        os.environ.setdefault("NUMBA_NUM_THREADS", "1")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
